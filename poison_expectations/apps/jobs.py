"""One validation job as the entry points run it: config with overrides, the
run, and the output files.

`poison-check validate` and the Airflow operator both go through here, so a
flag means the same thing in a shell and in a DAG, and both write the same
files the same way (atomically, never over the input).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from poison_expectations.core.errors import PoisonCheckError

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


def check_outputs(data: str | Path, outputs: Mapping[str, str | Path | None], *, reference: str | None = None,
                  folders: bool = True) -> None:
    """Fail before the (slow) run if an output would overwrite the input, the
    reference or another output, has an extension we cannot write, or (with
    `folders`) its folder is missing or not writable. Accepted and
    quarantined rows keep the input's format, so their extension must match it."""
    from poison_expectations.stores.io import check_writable, table_format
    from poison_expectations.stores.quarantine import SPLIT_OUTPUTS, split_format

    seen: dict[Path, str] = {}
    protected = {Path(data).resolve(): "input"}
    if reference:
        protected.setdefault(Path(reference).resolve(), "reference")
    for name, target in outputs.items():
        if target is None:
            continue
        if name not in OUTPUTS + EXTRA_OUTPUTS:
            raise PoisonCheckError(f"unknown output '{name}'; expected one of {list(OUTPUTS + EXTRA_OUTPUTS)}")
        resolved = Path(target).resolve()
        if resolved in protected or (name == "data_docs" and any(p.is_relative_to(resolved) for p in protected)):
            raise PoisonCheckError(f"{target}: refusing to overwrite the {protected.get(resolved, 'input')} file")
        if resolved in seen:
            raise PoisonCheckError(f"{target}: used for both the {seen[resolved]} and the {name} output")
        seen[resolved] = name
        if name in SPLIT_OUTPUTS:
            split_format(data, target, name)
        elif name in TABLE_OUTPUTS:
            table_format(target)
        if folders:
            check_writable(target)


def split_rows(outcome) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(accepted, quarantined) in memory: the input rows as read, flagged ones
    apart; the quarantined rows carry `poison_score` and `reasons`."""
    from poison_expectations.stores.quarantine import split_frames

    return split_frames(outcome.data, outcome.findings)


def write_outputs(outcome, outputs: Mapping[str, str | Path | None],
                  before_commit: Callable[[], Any] | None = None) -> dict[str, str | None]:
    """Write the requested outputs.

    Findings, report, accepted and quarantine rows are all or none: each goes
    to a temporary file first; `before_commit` (e.g. the run's after-run
    hooks, which record the reputation ledger) runs once every file is
    complete, and only then are they renamed into place together. An error
    or interrupt before that leaves no output and no temporary file. The HTML
    report and Data Docs follow, each written atomically on its own.
    Accepted/quarantine rows are cut from the input file itself, in its format.
    Returns {output: path or None}.
    """
    from poison_expectations.stores.io import staged_outputs, table_format, table_writer, text_writer
    from poison_expectations.stores.quarantine import write_split

    written: dict[str, str | None] = {name: None for name in OUTPUTS}
    with staged_outputs() as stage:
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
        if before_commit is not None:
            before_commit()
    if outputs.get("html") is not None:
        from poison_expectations.apps.html_report import write_html_report

        write_html_report(outcome, outputs["html"])
        written["html"] = str(outputs["html"])
    if outputs.get("data_docs") is not None:
        from poison_expectations.gx.data_docs import build_data_docs

        page = build_data_docs(outcome.checkpoint_result, outputs["data_docs"])
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
    """Check the outputs, validate `data`, write the outputs.

    Returns (RunOutcome, {output: path or None}).
    """
    from poison_expectations.gx.runner import run_after_hooks, run_validation

    outputs = dict(outputs or {})
    check_outputs(data, outputs, reference=config["data"]["reference"])
    outcome = run_validation(data, config, progress=progress, after_run=False)
    return outcome, write_outputs(outcome, outputs, before_commit=lambda: run_after_hooks(outcome))
