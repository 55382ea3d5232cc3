"""One validation job as the entry points run it: config with overrides, the
run, and the output files.

`poison-check validate` and the Airflow operator both go through here, so a
flag means the same thing in a shell and in a DAG, and both write the same
files the same way (atomically, never over the input).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from poison_expectations.core.errors import InputError, PoisonCheckError

if TYPE_CHECKING:
    import pandas as pd

TABLE_OUTPUTS = ("findings", "accepted", "quarantine")
OUTPUTS = ("findings", "report", "accepted", "quarantine")  # always listed in the written-outputs record
EXTRA_OUTPUTS = ("html", "data_docs")  # listed only when requested (data_docs is a folder)


def job_config(config_path: str | Path | None = None, *, label_column: str | None = None,
               id_column: str | None = None, source_column: str | None = None,
               feature_columns: list[str] | None = None, reference: str | None = None,
               profile: str | None = None, overrides: Mapping[str, Any] | None = None) -> dict:
    """The checkpoint config with the CLI's flags applied over the file's keys.

    None means "not given": the config file's value stays. `overrides` takes
    any further dotted keys (e.g. {"neighbors.k": 15}); the named flags win.
    With a profile, the data roles it was fitted with apply unless given.
    """
    from poison_expectations.core.config import load_config

    merged = dict(overrides or {})
    if profile is not None:
        from poison_expectations.stores.profiles import read_manifest

        fitted = read_manifest(profile)["roles"]
        merged.update({f"data.{role}": fitted[role] for role in ("label_column", "id_column", "source_column")
                       if fitted.get(role) is not None})
        merged["data.profile"] = str(profile)
    flags = {
        "data.label_column": label_column,
        "data.id_column": id_column,
        "data.source_column": source_column,
        "data.feature_columns": feature_columns,
        "data.reference": None if reference is None else str(reference),
    }
    merged.update({k: v for k, v in flags.items() if v is not None})
    return load_config(config_path, merged)


def check_inputs(data: str | Path, roles: Mapping[str, Any]) -> None:
    """Before GX is even imported (a second, not minutes): DATA and a
    reference file exist, are regular table files, and hold every column the
    roles name (`roles`: the config's `data` section, or the CLI's flags
    alone). Reads the CSV header or the Parquet schema only; the messages are
    those of the full check (`core.analysis`), which still runs later."""
    from poison_expectations.stores.files import table_columns

    _check_columns(table_columns(data), roles, "batch")
    reference = roles.get("reference")
    references = sys.modules.get("poison_expectations.stores.references")
    if reference and reference not in getattr(references, "_REGISTERED", {}):  # an in-process frame
        _check_columns(table_columns(reference, what="reference"), roles, "reference")


def _check_columns(names: list[str], roles: Mapping[str, Any], what: str) -> None:
    for role in ("label", "id", "source"):
        column = roles.get(f"{role}_column")
        if column is not None and column not in names:
            raise InputError(f"{what}: {role} column '{column}' not found (columns: {', '.join(names[:12])})")
    for column in roles.get("feature_columns") or ():
        if column not in names:
            raise InputError(f"{what}: feature column '{column}' not found")


def check_outputs(data: str | Path, outputs: Mapping[str, str | Path | None], *, reference: str | None = None,
                  folders: bool = True) -> None:
    """Fail before the (slow) run if an output would overwrite the input, the
    reference or another output, has an extension we cannot write, or (with
    `folders`) its folder is missing or not writable. Accepted and
    quarantined rows keep the input's format, so their extension must match it."""
    from poison_expectations.core.errors import OutputError
    from poison_expectations.stores.io import check_writable, check_writable_folder, resolved_path, table_format
    from poison_expectations.stores.quarantine import SPLIT_OUTPUTS, split_format

    seen: dict[Path, str] = {}
    protected = {resolved_path(data): "input"}
    if reference:
        protected.setdefault(resolved_path(reference), "reference")
    for name, target in outputs.items():
        if target is None:
            continue
        if name not in OUTPUTS + EXTRA_OUTPUTS:
            raise PoisonCheckError(f"unknown output '{name}'; expected one of {list(OUTPUTS + EXTRA_OUTPUTS)}")
        resolved = resolved_path(target, OutputError)
        if resolved in protected or (name == "data_docs" and any(p.is_relative_to(resolved) for p in protected)):
            raise PoisonCheckError(f"{target}: refusing to overwrite the {protected.get(resolved, 'input')} file")
        if resolved in seen:
            raise PoisonCheckError(f"{target}: used for both the {seen[resolved]} and the {name} output")
        seen[resolved] = name
        if name in SPLIT_OUTPUTS:
            split_format(data, target, name)
        elif name in TABLE_OUTPUTS:
            table_format(target)
        if folders and name == "data_docs":
            from poison_expectations.gx.data_docs import check_docs_folder

            check_docs_folder(target)  # new, empty, or a site of ours (a run adds to its index)
            check_writable_folder(target)
        elif folders:
            check_writable(target)


def split_rows(outcome) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(accepted, quarantined) in memory: the input rows as read, flagged ones
    apart; the quarantined rows carry `poison_score` and `reasons`."""
    from poison_expectations.stores.quarantine import split_frames

    return split_frames(outcome.data, outcome.findings)


def write_outputs(outcome, outputs: Mapping[str, str | Path | None],
                  before_commit: Callable[[], Any] | None = None) -> dict[str, str | None]:
    """Write the requested outputs: all or none, with one commit point.

    Every output is rendered into staging first: findings, report, accepted
    and quarantine rows and the HTML report to temporary files beside their
    targets, Data Docs to a temporary folder beside its folder. Only when all
    are complete does `before_commit` run (the after-run hooks, which record
    the reputation ledger), and then everything is renamed into place at
    once. An error or interrupt before that leaves no output, no temporary
    file and no ledger record. Accepted/quarantine rows are cut from the
    input file itself, in its format. Returns {output: path or None}.
    """
    from poison_expectations.stores.io import staged_outputs, table_format, table_writer, text_writer
    from poison_expectations.stores.quarantine import write_split

    written: dict[str, str | None] = {name: None for name in OUTPUTS}
    with staged_outputs(before_publish=before_commit) as stage:
        for name in ("findings", "report"):
            target = outputs.get(name)
            if target is None:
                continue
            if name == "report":
                writer = text_writer(json.dumps(report_document(outcome), indent=2, default=str))
            else:
                writer = table_writer(outcome.findings, table_format(target))
            writer(stage.path(target))
            written[name] = str(target)
        split = write_split(outcome.findings, outcome.data, outcome.data_path, accepted=outputs.get("accepted"),
                            quarantine=outputs.get("quarantine"), stage=stage)
        written.update({name: path for name, path in split.items() if path is not None})
        if outputs.get("html") is not None:
            from poison_expectations.apps.html_report import render_html

            text_writer(render_html(outcome))(stage.path(outputs["html"]))
            written["html"] = str(outputs["html"])
        if outputs.get("data_docs") is not None:
            from poison_expectations.gx.data_docs import build_data_docs

            target = outputs["data_docs"]
            page = build_data_docs(outcome.checkpoint_result, target, staging=stage.folder(target))
            written["data_docs"] = str(page)  # the run's validation page inside the site
    return written


def report_document(outcome) -> dict:
    """--report: our summary plus the GX checkpoint result."""
    result = outcome.checkpoint_result
    return {
        "summary": outcome.summary(),
        "checkpoint_result": {
            "name": result.name,
            "success": bool(result.success),
            "run_id": str(result.run_id),
            "validation_results": [r.to_json_dict() for r in result.run_results.values()],
        },
    }


def run_job(data: str | Path, config: dict, outputs: Mapping[str, str | Path | None] | None = None,
            progress: Callable[[str], Any] | None = None):
    """Check the inputs and outputs, validate `data`, write the outputs.

    The checks run before GX is imported, so a bad path or column fails at
    once. Returns (RunOutcome, {output: path or None}).
    """
    outputs = dict(outputs or {})
    check_inputs(data, config["data"])
    check_outputs(data, outputs, reference=config["data"]["reference"])
    from poison_expectations.gx.runner import run_after_hooks, run_validation

    outcome = run_validation(data, config, progress=progress, after_run=False)
    return outcome, write_outputs(outcome, outputs, before_commit=lambda: run_after_hooks(outcome))
