"""`poison-check validate DATA --engine spark`: the Spark engine's job.

Same exit codes as the pandas engine (0 passed, 1 failed, 2 input error).
`--findings`, `--accepted` and `--quarantine` are parquet datasets (folders)
written by the executors into staging folders beside their targets, then
renamed into place together at one commit point (an existing dataset of that
name is replaced then); an error before it leaves no output. Output paths
must be on a file system the driver can rename in (local or shared).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Mapping

from poison_expectations.core.errors import OutputError, PoisonCheckError

TABLE_OUTPUTS = ("findings", "accepted", "quarantine")
SHOW_ROWS = 10


def check_spark_outputs(data: str, outputs: Mapping[str, str | None]) -> None:
    """Before the (slow) run: no output over the input or another output, a
    folder that exists, and no regular file where a dataset folder goes."""
    seen: dict[Path, str] = {Path(data).resolve(): "input"}
    for name, target in outputs.items():
        if target is None:
            continue
        path = Path(target).resolve()
        if path in seen:
            raise PoisonCheckError(f"{target}: used for both the {seen[path]} and the {name} output")
        seen[path] = name
        if not path.parent.is_dir():
            raise OutputError(f"{target}: output folder {path.parent} does not exist")
        if name in TABLE_OUTPUTS and path.exists() and not path.is_dir():
            raise OutputError(f"{target}: exists and is a file; the Spark engine writes a parquet dataset (folder)")
        if not os.access(path.parent, os.W_OK):
            raise OutputError(f"{target}: cannot write to {path.parent}")


def run_spark_job(data: str, config: dict, outputs: Mapping[str, str | None], *, master: str | None = None,
                  conf: Mapping[str, str] | None = None):
    """Check the outputs, run the engine, write the outputs. Returns (outcome, {output: path or None})."""
    outcome, written, _ = spark_job(data, config, outputs, master=master, conf=conf)
    return outcome, written


def spark_job(data: str, config: dict, outputs: Mapping[str, str | None], *, master: str | None = None,
              conf: Mapping[str, str] | None = None, spark=None):
    """`run_spark_job` that also returns the summary, taken (with its top rows)
    while the scored table is still persisted, so nothing is scored twice: the
    CLI and the Airflow operator. `spark`: a session (else `get_session(master, conf)`)."""
    from poison_expectations.engines.spark.run import run_spark
    from poison_expectations.engines.spark.session import get_session

    check_spark_outputs(str(data), outputs)
    spark = spark or get_session(master, dict(conf or {}))
    outcome = run_spark(spark, data, config)
    try:
        report = summary(outcome, str(data))
        written = publish(outcome, outputs, str(data), report)
    finally:
        outcome.release()
    return outcome, written, report


def publish(outcome, outputs: Mapping[str, str | None], data: str, report: dict | None = None) -> dict[str, str | None]:
    """Stage every output, then rename them all into place (see the module docstring)."""
    from poison_expectations.engines.spark.run import flagged_frames, write_dataset
    from poison_expectations.stores.staging import signals_deferred, text_writer

    staged: list[tuple[Path, Path]] = []
    written: dict[str, str | None] = {name: None for name in (*TABLE_OUTPUTS, "report")}
    try:
        frames = flagged_frames(outcome) if any(outputs.get(n) for n in TABLE_OUTPUTS) else {}
        for name in TABLE_OUTPUTS:
            if outputs.get(name):
                tmp = _staging(outputs[name])
                staged.append((tmp, Path(outputs[name])))
                write_dataset(frames[name], tmp)
                written[name] = str(outputs[name])
        if outputs.get("report"):
            tmp = _staging(outputs["report"])
            staged.append((tmp, Path(outputs["report"])))
            text_writer(json.dumps({"summary": report or summary(outcome, data)}, indent=2, default=str))(tmp)
            written["report"] = str(outputs["report"])
        with signals_deferred():
            for tmp, target in staged:
                _replace(tmp, target)
        staged.clear()
    except OSError as exc:
        raise OutputError(f"cannot write the outputs ({exc.strerror or exc})") from exc
    finally:
        for tmp, _ in staged:
            shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
    return written


def _staging(target: str | os.PathLike) -> Path:
    target = Path(target)
    return target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.tmp"


def _replace(tmp: Path, target: Path) -> None:
    """Rename `tmp` onto `target`; an existing dataset folder is moved aside first, then removed."""
    old = None
    if target.is_dir():
        old = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.old"
        os.rename(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def top_rows(outcome, count: int = SHOW_ROWS) -> list[dict[str, Any]]:
    """The most suspicious flagged rows (a sorted limit: `count` rows reach the driver)."""
    from poison_expectations.engines.spark.run import flagged_frames

    if outcome.flagged == 0:
        return []
    findings = flagged_frames(outcome)["findings"]
    rows = findings.where("flagged").orderBy("poison_p").limit(count).collect()
    id_name = outcome.plan.id_name
    return [{id_name: r[id_name], "poison_score": float(r["poison_score"]), "reasons": r["reasons"]} for r in rows]


def summary(outcome, data: str) -> dict[str, Any]:
    """The JSON summary (`--format json`, `--report`)."""
    return {
        "schema_version": 1,
        "engine": "spark",
        "success": outcome.success,
        "data": str(data),
        "trusted_side": outcome.mode,
        "rows": outcome.rows,
        "flagged_rows": outcome.flagged,
        "flag_rule": f"Benjamini-Hochberg on the Cauchy-combined conformal p-value: poison_p <= {outcome.cut:.6g}",
        "failed_signals": outcome.failed_signals(),
        "skipped_families": outcome.skipped,
        "gates": outcome.gates,
        "sources": outcome.sources,
        "top_rows": top_rows(outcome),
        "timings_seconds": outcome.timings,
    }


def verdict_lines(outcome, data: str, top: list[dict] | None = None) -> list[str]:
    """The verdict text; `top`: the summary's top rows (else read again from the scored table)."""
    verdict = "PASSED" if outcome.success else "FAILED"
    lines = [f"poison-check {verdict} (spark): {data} — {outcome.rows} rows, {outcome.flagged} flagged",
             f"  trusted side: {outcome.mode}"]
    if outcome.mode.startswith("self-check"):
        lines.append("  note: a self-check compares the batch with a sample of itself; give --profile or "
                     "--reference for a test of poisoning")
    for name, gate in outcome.gates.items():
        status = "FAIL" if gate.get("failed") else "PASS"
        if "patterns" in gate:  # trigger patterns: a count of confirmed patterns, not a p-value gate
            lines.append(f"  {status}  {name}: {gate['patterns']} trigger pattern(s) (at most {gate['max_patterns']}); "
                         f"{gate['method']}")
            continue
        if "line" in gate:  # a batch family's own test (engines/spark/batch.py)
            lines.append(f"  {status}  {name}: {gate['line']}")
            continue
        lines.append(f"  {status}  {name}: Higher Criticism {gate.get('statistic', 0):.3g}, "
                     f"p={gate.get('p_value', 1):.2g} (alpha {gate.get('alpha', 0):g}); "
                     f"at least {gate.get('lower_bound', 0)} rows contaminated "
                     f"(confidence 1 - alpha)")
    for skipped in outcome.skipped:
        lines.append(f"  SKIP  {skipped}")
    top = top_rows(outcome) if top is None else top
    if top:
        id_name = outcome.plan.id_name
        lines.append(f"Most suspicious rows ({id_name}, score, reasons):")
        lines.extend(f"  {row[id_name]}  {row['poison_score']:.3f}  {row['reasons']}" for row in top)
    return lines


def validate_command(data, flags: dict, profile_path, config_path, outputs: dict, *, master, conf_pairs,
                     output_format: str) -> int:
    """The CLI's `validate --engine spark`: returns the exit code."""
    from poison_expectations.apps.jobs import job_config
    from poison_expectations.engines.spark.session import parse_conf

    unsupported = [name for name in ("html", "data_docs") if outputs.get(name)]
    if unsupported:
        raise PoisonCheckError(f"--{unsupported[0].replace('_', '-')} is not available with --engine spark "
                               "(no GX checkpoint result to render)")
    conf = parse_conf(conf_pairs)
    config = job_config(config_path, **flags, profile=profile_path)
    table_outputs = {name: outputs.get(name) for name in (*TABLE_OUTPUTS, "report")}
    outcome, written, report = spark_job(str(data), config, table_outputs, master=master, conf=conf)
    import click

    if output_format == "json":
        click.echo(json.dumps(report, indent=2, default=str))
    else:
        click.echo("\n".join(verdict_lines(outcome, str(data), report["top_rows"])))
        for name, path in written.items():
            if path is not None:
                click.echo(f"{name}: {path}")
    return 0 if outcome.success else 1
