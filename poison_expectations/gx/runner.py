"""The checkpoint runner: config -> GX context, suite, validation definition
and checkpoint; run; collect results and row-level findings.

The CLI and the Airflow operator both call `run_validation`. Input is
checked (and every signal computed, with progress) before GX sees the data,
so a bad file is an InputError with a clear message rather than a GX
`exception_info`; GX's metrics then reuse the cached results.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from poison_expectations.core.analysis import Analysis, build_analysis, ordered_by_inputs
from poison_expectations.core.context import active
from poison_expectations.core.errors import ConfigError, InputError, PoisonCheckError
from poison_expectations.core.findings import (FINDINGS_COLUMNS, build_findings, flagging_summary,  # noqa: F401
                                               top_rows)
from poison_expectations.gx.expectations.base import jsonable
from poison_expectations.stores.io import read_table
from poison_expectations.stores.references import load_trusted, register_reference, unregister_reference
from poison_expectations.gx.metrics.base import options_from, roles_from, trusted_name
from poison_expectations.core.progress import finish, notify
from poison_expectations.core.registry import families
from poison_expectations.core.signals.base import SignalResult

SUMMARY_SCHEMA_VERSION = 1
TOP_ROWS = 20


@dataclass
class ExpectationOutcome:
    expectation: str
    signal: str
    success: bool
    observed_value: Any
    limit: dict
    unexpected_count: int
    details: dict

    def as_dict(self) -> dict:
        return jsonable(self.__dict__)


@dataclass
class RunOutcome:
    success: bool
    expectations: list[ExpectationOutcome]
    findings: pd.DataFrame
    results: dict[str, SignalResult]
    analysis: Analysis
    data: pd.DataFrame
    checkpoint_result: Any
    config: dict
    data_path: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    run_id: str = ""
    skipped: list[str] = field(default_factory=list)  # families not run (no label column)

    @property
    def flagged_count(self) -> int:
        return int(self.findings["flagged"].sum())

    def failed_expectations(self) -> list[str]:
        return [e.expectation for e in self.expectations if not e.success]

    def summary(self) -> dict:
        """The stable JSON summary (documented in the README)."""
        top = top_rows(self.findings, self.analysis.id_name, TOP_ROWS)
        return jsonable({
            "schema_version": SUMMARY_SCHEMA_VERSION,
            "run_id": self.run_id,
            "success": self.success,
            "data": self.data_path,
            "reference": self.config["data"]["reference"],
            "profile": self.config["data"].get("profile"),
            "reference_lacks": list(self.analysis.reference_lacks),  # roles without a column in the reference
            "rows": int(len(self.findings)),
            "flagged_rows": self.flagged_count,
            "flagging": flagging_summary(self.findings, self.config["verdicts"]["q"]),
            "failed_expectations": self.failed_expectations(),
            "skipped_families": self.skipped,
            "dropped_feature_columns": list(self.analysis.encoder.dropped),  # empty in the fitted table
            "expectations": [e.as_dict() for e in self.expectations],
            "signals": {
                name: {"flagged": r.flagged_count, "flagged_rate": r.flagged_rate, "summary": r.summary}
                for name, r in self.results.items()
            },
            "top_rows": top.to_dict(orient="records"),
            "timings_seconds": self.timings,
        })


def shared_kwargs(config: dict) -> dict[str, Any]:
    """Keyword arguments every poison expectation takes, from the config."""
    data, feats, nbrs = config["data"], config["features"], config["neighbors"]
    return {
        "label_column": data["label_column"],
        "feature_columns": data["feature_columns"],
        "id_column": data["id_column"],
        "source_column": data["source_column"],
        "embedding_columns": data["embedding_columns"] or None,
        "reference": data["reference"],
        "profile": data.get("profile"),
        "nan_policy": feats["nan_policy"],
        "max_onehot_categories": feats["max_onehot_categories"],
        "k": nbrs["k"],
        "exact_max_rows": nbrs["exact_max_rows"],
        "random_state": config["random_state"],
        "fdr_q": config["verdicts"]["q"],
        "gate_alpha": config["verdicts"]["alpha"],
        "min_effect": config["verdicts"]["min_effect"],
    }


def build_expectations(config: dict, skipped: list[str] | None = None) -> list:
    """GX expectation instances for every enabled family, thresholds explicit.

    Families that need a label are skipped when no label column is set (and
    named in `skipped`, which the verdict prints), so a label-free table can
    still be checked for floods, outliers and sources.
    """
    shared = shared_kwargs(config)
    built = _build(config, shared, skipped)
    # Bonferroni over the checkpoint's F gating expectations: each tests at alpha / F, so the
    # checkpoint's false-alarm rate on a batch exchangeable with its reference is <= alpha (set
    # in a self-check too: a stored suite may meet a profile later, and the trigger and source
    # tests of a self-check take the same level)
    shared["gate_alpha"] = config["verdicts"]["alpha"] / max(1, sum(e.counts_in_alpha() for e in built))
    return _build(config, shared, None)


def _build(config: dict, shared: dict, skipped: list[str] | None) -> list:
    built = []
    for family in families():
        section = config["expectations"].get(family.section, {})
        if not section.get("enabled", True):
            continue
        if family.needs_label and not shared["label_column"]:
            if skipped is not None:
                skipped.append(family.section)
            continue
        built.extend(family.build(section, shared))
    if not built:
        raise ConfigError("no expectation can run: enable one in the config, or pass --label for the "
                          "label-based ones")
    return built


def load_inputs(data: pd.DataFrame | str | Path, config: dict) -> tuple[pd.DataFrame, str | None]:
    """The batch, read within limits.max_rows and the memory budget (the
    trusted side is read the same way by `prepare_analysis`)."""
    limits = config["limits"]
    path = None
    if not isinstance(data, pd.DataFrame):
        path = str(data)
        data = read_table(data, max_rows=limits["max_rows"], max_memory_mb=limits["max_memory_mb"])
    elif len(data) > limits["max_rows"]:
        raise InputError(f"data: {len(data)} rows exceed limits.max_rows={limits['max_rows']}; split the batch "
                         "or raise the limit in the config")
    return data, path


def prepare_analysis(frame: pd.DataFrame, config: dict, expectations: list | None = None) -> Analysis:
    """The batch's Analysis (the run context), against the configured
    reference table or profile, with the roles checked against the data."""
    shared, limits = shared_kwargs(config), config["limits"]
    roles, options = roles_from(shared), options_from(shared)  # exactly as the GX metrics build them
    reference, profile = load_trusted(shared["reference"], shared["profile"], max_rows=limits["max_rows"],
                                      max_memory_mb=limits["max_memory_mb"])
    analysis = build_analysis(frame, roles, options, reference, profile=profile,
                              max_memory_mb=limits["max_memory_mb"])
    reserved = set(FINDINGS_COLUMNS) | {f"{e.signal().name}_score" for e in expectations or ()}
    if roles.id_column in reserved:
        raise InputError(f"id column '{roles.id_column}' has the name of a findings column; rename it "
                         f"(reserved: {', '.join(sorted(reserved))})")
    if analysis.n_classes == 1:
        raise InputError(f"label column '{roles.label_column}' has a single class ({analysis.classes[0]!r}); "
                         "poisoning checks need two or more")
    min_rows = options.k + 1
    for table, what in ((analysis.batch, "batch"), (analysis.reference, "reference")):
        if table is not None and table.n < min_rows:
            raise InputError(f"the {what} has {table.n} rows; neighbour checks need at least k+1={min_rows}")
    return analysis


def run_validation(data: pd.DataFrame | str | Path, config: dict,
                   progress: Callable[[str], Any] | None = None,
                   reference: pd.DataFrame | None = None, after_run: bool = True) -> RunOutcome:
    """Validate one batch with the configured expectations through a GX checkpoint.

    The reference is `config["data"]["reference"]` (a CSV/Parquet path), or
    the `reference` frame given here (registered under that name, or
    "<reference>" when the config names none). With `after_run=False` the
    families' after-run hooks (e.g. the reputation ledger) are left to the
    caller: `jobs.run_job` runs them once the output files are complete.
    """
    name = None
    if reference is not None:
        name = config["data"]["reference"] or "<reference>"
        register_reference(name, reference)
        config = {**config, "data": {**config["data"], "reference": name}}
    try:
        return _run(data, config, progress, after_run)
    finally:
        if name is not None:
            unregister_reference(name)
        finish(progress)


def _run(data, config: dict, progress, after_run: bool) -> RunOutcome:
    timings: dict[str, float] = {}
    run_id = uuid.uuid4().hex[:12]
    start = time.perf_counter()
    notify(progress, "prepare", 0, 0)  # step count unknown until the expectations are built
    frame, path = load_inputs(data, config)
    skipped: list[str] = []
    expectations = build_expectations(config, skipped)
    analysis = prepare_analysis(frame, config, expectations)
    timings["prepare"] = time.perf_counter() - start
    with active(analysis, trusted_name(shared_kwargs(config))):
        results = compute_signals(analysis, expectations, progress, timings)
        total = len(results) + 2
        t0 = time.perf_counter()
        notify(progress, "gx_checkpoint", total - 1, total)
        checkpoint_result = run_checkpoint(frame, expectations, run_name=f"poison-check-{run_id}")
    timings["gx_checkpoint"] = time.perf_counter() - t0
    outcomes = collect_outcomes(checkpoint_result, expectations)
    findings = build_findings(analysis, list(results.values()), config["verdicts"]["combine"])
    timings["total"] = time.perf_counter() - start
    outcome = RunOutcome(
        success=all(o.success for o in outcomes), expectations=outcomes, findings=findings, results=results,
        analysis=analysis, data=frame, checkpoint_result=checkpoint_result, config=config, data_path=path,
        timings=timings, run_id=run_id, skipped=skipped,
    )
    if after_run:
        run_after_hooks(outcome)
    return outcome


def compute_signals(analysis: Analysis, expectations: list, progress: Callable | None = None,
                    timings: dict[str, float] | None = None) -> dict[str, SignalResult]:
    """Each distinct signal of `expectations` once, before GX runs (so input
    errors surface as InputError, and GX's metrics reuse the cached results).
    A name used with two parameter sets keeps the first result."""
    metrics = {e.signal().cache_key(): (e.signal(), e.metric_class) for e in expectations}
    signals = ordered_by_inputs([signal for signal, _ in metrics.values()])
    total = len(signals) + 2  # prepare, each signal, the GX checkpoint
    results: dict[str, SignalResult] = {}
    for index, signal in enumerate(signals, start=1):
        t0 = time.perf_counter()
        notify(progress, signal.name, index, total)
        results.setdefault(signal.name, metrics[signal.cache_key()][1].result(analysis, signal))
        if timings is not None:
            timings[signal.name] = timings.get(signal.name, 0.0) + time.perf_counter() - t0
    return results


def run_after_hooks(outcome: RunOutcome) -> None:
    """Let enabled families act on the finished run (e.g. record a ledger)."""
    for family in families():
        section = outcome.config["expectations"].get(family.section, {})
        if family.after_run is not None and section.get("enabled", True):
            family.after_run(section, outcome)


def ephemeral_context():
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def run_checkpoint(frame: pd.DataFrame, expectations: list, *, context=None, name: str = "poison_check",
                   run_name: str | None = None):
    """An ordinary GX checkpoint over a dataframe batch with our suite."""
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    context = context or ephemeral_context()
    source = context.data_sources.add_pandas(f"{name}_source")
    asset = source.add_dataframe_asset(f"{name}_batch")
    batch_definition = asset.add_batch_definition_whole_dataframe(f"{name}_whole")
    suite = context.suites.add(gx.ExpectationSuite(name=f"{name}_suite", expectations=expectations))
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{name}_validation", data=batch_definition, suite=suite))
    checkpoint = context.checkpoints.add(gx.Checkpoint(
        name=name, validation_definitions=[validation], result_format={"result_format": "SUMMARY"}))
    run_id = RunIdentifier(run_name=run_name) if run_name else None
    return checkpoint.run(batch_parameters={"dataframe": frame}, run_id=run_id)


def collect_outcomes(checkpoint_result, expectations: list) -> list[ExpectationOutcome]:
    outcomes = []
    for validation in checkpoint_result.run_results.values():
        raise_first_exception(validation)
        for result in validation.results:
            body = result.result or {}
            details = body.get("details", {})
            outcomes.append(ExpectationOutcome(
                expectation=result.expectation_config.type,
                signal=details.get("signal", ""),
                success=bool(result.success),
                observed_value=body.get("observed_value"),
                limit=details.get("limit", {}),
                unexpected_count=int(body.get("unexpected_count") or 0),
                details={k: v for k, v in details.items() if k not in ("signal", "limit")},
            ))
    return outcomes


def raise_first_exception(validation) -> None:
    """GX turns an error inside a metric into a failed expectation with
    `exception_info`; a failure that is really an error must not read as
    "poisoning found", so raise it (one line) instead."""
    for result in validation.results:
        info = result.exception_info or {}
        # expectation-level errors are flat; metric errors are keyed by metric id
        entries = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
        for entry in entries:
            if entry.get("raised_exception"):
                message = (entry.get("exception_message") or "unknown error").strip().splitlines() or ["?"]
                raise PoisonCheckError(f"{result.expectation_config.type}: {message[0]}")
