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

from .errors import PoisonCheckError

if TYPE_CHECKING:
    import pandas as pd

TABLE_OUTPUTS = ("findings", "accepted", "quarantine")
OUTPUTS = ("findings", "report", "accepted", "quarantine")  # always listed in the written-outputs record
EXTRA_OUTPUTS = ("html", "data_docs")  # listed only when requested (data_docs is a folder)


def job_config(config_path: str | Path | None = None, *, label_column: str | None = None,
               id_column: str | None = None, source_column: str | None = None,
               feature_columns: list[str] | None = None, reference: str | None = None,
               overrides: Mapping[str, Any] | None = None) -> dict:
    """The checkpoint config with the CLI's flags applied over the file's keys.

    None means "not given": the config file's value stays. `overrides` takes
    any further dotted keys (e.g. {"neighbors.k": 15}); the named flags win.
    """
    from .config import load_config

    merged = dict(overrides or {})
    flags = {
        "data.label_column": label_column,
        "data.id_column": id_column,
        "data.source_column": source_column,
        "data.feature_columns": feature_columns,
        "data.reference": None if reference is None else str(reference),
    }
    merged.update({k: v for k, v in flags.items() if v is not None})
    return load_config(config_path, merged)


def check_outputs(data: str | Path, outputs: Mapping[str, str | Path | None]) -> None:
    """Fail before the (slow) run if an output would overwrite the input or
    another output, or has an extension we cannot write. Accepted and
    quarantined rows keep the input's format, so their extension must match it."""
    from .io import table_format
    from .quarantine import SPLIT_OUTPUTS, split_format

    seen: dict[Path, str] = {}
    source = Path(data).resolve()
    for name, target in outputs.items():
        if target is None:
            continue
        if name not in OUTPUTS + EXTRA_OUTPUTS:
            raise PoisonCheckError(f"unknown output '{name}'; expected one of {list(OUTPUTS + EXTRA_OUTPUTS)}")
        resolved = Path(target).resolve()
        if resolved == source or (name == "data_docs" and source.is_relative_to(resolved)):
            raise PoisonCheckError(f"{target}: refusing to overwrite the input file")
        if resolved in seen:
            raise PoisonCheckError(f"{target}: used for both the {seen[resolved]} and the {name} output")
        seen[resolved] = name
        if name in SPLIT_OUTPUTS:
            split_format(data, target, name)
        elif name in TABLE_OUTPUTS:
            table_format(target)


def split_rows(outcome) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(accepted, quarantined) in memory: the input rows as read, flagged ones
    apart; the quarantined rows carry `poison_score` and `reasons`."""
    from .quarantine import split_frames

    return split_frames(outcome.data, outcome.findings)


def write_outputs(outcome, outputs: Mapping[str, str | Path | None]) -> dict[str, str | None]:
    """Write each requested output atomically; return {output: path or None}.

    Accepted/quarantine rows are cut from the input file itself, in its format.
    """
    from .io import write_table_atomic, write_text_atomic
    from .quarantine import write_split

    written: dict[str, str | None] = {name: None for name in OUTPUTS}
    if outputs.get("findings") is not None:
        write_table_atomic(outputs["findings"], outcome.findings)
        written["findings"] = str(outputs["findings"])
    if outputs.get("report") is not None:
        write_text_atomic(outputs["report"], json.dumps(report_document(outcome), indent=2, default=str))
        written["report"] = str(outputs["report"])
    split = write_split(outcome.findings, outcome.data, outcome.data_path,
                        accepted=outputs.get("accepted"), quarantine=outputs.get("quarantine"))
    written.update({name: path for name, path in split.items() if path is not None})
    if outputs.get("html") is not None:
        from .html_report import write_html_report

        write_html_report(outcome, outputs["html"])
        written["html"] = str(outputs["html"])
    if outputs.get("data_docs") is not None:
        from .data_docs import build_data_docs

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
    from .runner import run_validation

    outputs = dict(outputs or {})
    check_outputs(data, outputs)
    outcome = run_validation(data, config, progress=progress)
    return outcome, write_outputs(outcome, outputs)
