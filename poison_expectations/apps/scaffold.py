"""`poison-check init`: write our suite, a validation definition and a
checkpoint into a GX file-context project (new or existing).

The suite holds every enabled family's expectations from a checkpoint
config, with every threshold written explicitly (GX drops defaults). The
batch is a pandas dataframe asset, so the stored checkpoint validates
whatever table it is given at run time:

    poison-check run-checkpoint NAME --project DIR --data FILE
    # or plain GX (import poison_expectations first: it registers our types)
    context = gx.get_context(mode="file", project_root_dir=DIR)
    context.checkpoints.get(NAME).run(batch_parameters={"dataframe": frame})

`checkpoints/build_gx_project.py` builds the repository's stored project
with the same function.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from poison_expectations.core.errors import ConfigError


@dataclass(frozen=True)
class ProjectNames:
    """The GX objects one scaffold writes; all derive from the checkpoint name."""

    checkpoint: str
    datasource: str = "poison_check"
    asset: str | None = None  # default: "<checkpoint>_batch"
    batch_definition: str = "whole_batch"

    @property
    def suite(self) -> str:
        return self.checkpoint

    @property
    def validation(self) -> str:
        return f"{self.checkpoint}_validation"

    @property
    def asset_name(self) -> str:
        return self.asset or f"{self.checkpoint}_batch"


def file_context(project_dir: str | Path):
    """The project's file context, created (gx/) when missing."""
    import logging

    import great_expectations as gx

    import poison_expectations.gx.register  # noqa: F401  (our expectation and action types, before GX reads the stores)

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    Path(project_dir).mkdir(parents=True, exist_ok=True)
    return gx.get_context(mode="file", project_root_dir=str(project_dir))


def write_project(project_dir: str | Path, names: ProjectNames, expectations: Sequence, *,
                  actions: Sequence = (), replace: bool = False, meta: dict[str, Any] | None = None,
                  result_format: str = "SUMMARY"):
    """Add (or with `replace`, overwrite) suite, validation definition and
    checkpoint `names` in the project; return the context."""
    import great_expectations as gx

    context = file_context(project_dir)
    _make_room(context, names, replace)
    try:
        source = context.data_sources.get(names.datasource)
    except (KeyError, ValueError):
        source = context.data_sources.add_pandas(names.datasource)
    asset = next((a for a in source.assets if a.name == names.asset_name), None)
    if asset is None:
        asset = source.add_dataframe_asset(names.asset_name)
    elif getattr(asset, "type", "") != "dataframe":
        raise ConfigError(f"asset '{names.asset_name}' in {project_dir} is not a dataframe asset; "
                          "pick another --name")
    batch = next((b for b in asset.batch_definitions if b.name == names.batch_definition), None)
    if batch is None:
        batch = asset.add_batch_definition_whole_dataframe(names.batch_definition)
    suite = context.suites.add(gx.ExpectationSuite(name=names.suite, meta=dict(meta or {})))
    for expectation in expectations:
        suite.add_expectation(expectation)
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name=names.validation, data=batch, suite=suite))
    context.checkpoints.add(gx.Checkpoint(
        name=names.checkpoint, validation_definitions=[validation], actions=list(actions),
        result_format={"result_format": result_format}))
    return context


def _make_room(context, names: ProjectNames, replace: bool) -> None:
    existing = {
        "checkpoint": names.checkpoint in {c.name for c in context.checkpoints.all()},
        "validation definition": names.validation in {v.name for v in context.validation_definitions.all()},
        "suite": names.suite in {s.name for s in context.suites.all()},
    }
    if any(existing.values()) and not replace:
        kinds = ", ".join(kind for kind, found in existing.items() if found)
        raise ConfigError(f"'{names.checkpoint}' already exists in the project ({kinds}); choose another "
                          "--name or pass --force to replace it")
    if existing["checkpoint"]:
        context.checkpoints.delete(names.checkpoint)
    if existing["validation definition"]:
        context.validation_definitions.delete(names.validation)
    if existing["suite"]:
        context.suites.delete(names.suite)


def scaffold(project_dir: str | Path, data: str | Path, config: dict, names: ProjectNames, *,
             accepted: str | None = None, quarantine: str | None = None, replace: bool = False) -> dict:
    """`poison-check init`: check DATA against the config's roles, then write
    the suite of every enabled family, the validation definition and the
    checkpoint (with a quarantine action when asked). Returns what was written."""
    from poison_expectations.gx.actions import PoisonQuarantineAction
    from poison_expectations.gx.runner import build_expectations, load_inputs, prepare_analysis

    reference = config["data"]["reference"]
    if reference:  # stored suites run from anywhere: keep an absolute path
        config = {**config, "data": {**config["data"], "reference": str(Path(reference).resolve())}}
    frame, _ = load_inputs(data, config)
    prepare_analysis(frame, config)  # the roles fit the data: columns, label, ids (an InputError otherwise)
    expectations = build_expectations(config)
    actions = []
    if accepted or quarantine:
        actions.append(PoisonQuarantineAction(name="poison_quarantine", accepted_path=accepted,
                                              quarantine_path=quarantine))
    meta = {"poison_check": {"created_from": str(data), "label_column": config["data"]["label_column"]}}
    write_project(project_dir, names, expectations, actions=actions, replace=replace, meta=meta)
    return {
        "project": str(Path(project_dir)),
        "checkpoint": names.checkpoint,
        "suite": names.suite,
        "validation_definition": names.validation,
        "asset": f"{names.datasource}/{names.asset_name}",
        "expectations": [e.expectation_type for e in expectations],
    }
