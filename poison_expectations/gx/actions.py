"""A GX checkpoint action that writes the accepted and quarantined rows,
the same way `poison-check validate --accepted --quarantine` does.

    import poison_expectations  # registers the action type "poison_quarantine"
    checkpoint = gx.Checkpoint(name=..., validation_definitions=[...], actions=[
        PoisonQuarantineAction(name="quarantine", accepted_path="out/{run_name}/accepted.csv",
                               quarantine_path="out/{run_name}/quarantine.csv")])

The action needs the batch's rows. With `data_path` it reads that file (and
checks, by GX's batch fingerprint, that it is the batch validated), and
the outputs keep its format. Without it, it finds the dataframe that the
checkpoint just validated in this process; the outputs' extension then
picks the format. Row flags come from our expectations' signals, which
the validation already computed, so nothing is recomputed.
"""

from __future__ import annotations

import contextlib
import contextvars
from pathlib import Path
from typing import Iterator, Literal, Optional

from great_expectations.checkpoint.actions import ValidationAction

from poison_expectations.core.errors import InputError, PoisonCheckError
from poison_expectations.gx.paths import project_path

ACTION_TYPE = "poison_quarantine"
# The batch file of the current run, for actions stored without data_path
# (set by `poison-check run-checkpoint`; a stored checkpoint must not be edited).
_CURRENT_DATA: contextvars.ContextVar[str | None] = contextvars.ContextVar("poison_check_data", default=None)
_WRITTEN: contextvars.ContextVar[list | None] = contextvars.ContextVar("poison_check_written", default=None)


@contextlib.contextmanager
def batch_file(path: str | Path) -> Iterator[list[dict]]:
    """Within this block, quarantine actions without data_path read `path`;
    the list yielded collects each action's return value (what it wrote)."""
    written: list[dict] = []
    token, token_written = _CURRENT_DATA.set(str(path)), _WRITTEN.set(written)
    try:
        yield written
    finally:
        _CURRENT_DATA.reset(token)
        _WRITTEN.reset(token_written)


class PoisonQuarantineAction(ValidationAction):
    """Write unflagged rows to `accepted_path` and flagged rows (plus
    poison_score and reasons) to `quarantine_path`; `{run_name}` in a path
    becomes the checkpoint run's name."""

    type: Literal["poison_quarantine"] = ACTION_TYPE
    accepted_path: Optional[str] = None
    quarantine_path: Optional[str] = None
    data_path: Optional[str] = None

    def run(self, checkpoint_result, action_context=None) -> dict:
        from poison_expectations.stores.quarantine import write_split

        batches = [v for v in checkpoint_result.run_results.values() if _poison_configs(v)]
        if not batches:
            return {"accepted": None, "quarantine": None, "rows": 0, "flagged_rows": 0}
        if len(batches) > 1:
            raise PoisonCheckError(f"{self.name}: the checkpoint validated {len(batches)} batches with poison "
                                   "expectations; use one PoisonQuarantineAction per checkpoint and batch")
        validation = batches[0]
        data_path = project_path(self.data_path) or _CURRENT_DATA.get()
        frame = self._batch_frame(validation, data_path)
        findings = _findings(frame, _poison_configs(validation))
        run_name = _run_name(checkpoint_result.run_id)
        targets = {}
        for name, template in (("accepted", self.accepted_path), ("quarantine", self.quarantine_path)):
            if template:
                target = Path(project_path(template.replace("{run_name}", run_name)))
                target.parent.mkdir(parents=True, exist_ok=True)
                targets[name] = target
        written = write_split(findings, frame, data_path, **targets)
        outcome = {**written, "rows": int(len(findings)), "flagged_rows": int(findings["flagged"].sum())}
        if _WRITTEN.get() is not None:
            _WRITTEN.get().append({"action": self.name, **outcome})
        return outcome

    def _batch_frame(self, validation, data_path: str | None):
        from great_expectations.execution_engine.pandas_execution_engine import hash_pandas_dataframe

        from poison_expectations.core.context import latest
        from poison_expectations.stores.io import read_table

        fingerprint = (validation.meta or {}).get("batch_markers", {}).get("pandas_data_fingerprint")
        if data_path:
            frame = read_table(data_path)
            if fingerprint and hash_pandas_dataframe(frame) != fingerprint:
                raise InputError(f"{data_path}: not the batch this checkpoint validated "
                                 "(its content differs); set data_path to the validated file")
            return frame
        active = latest()
        frame = active.batch.frame if active is not None else None
        if frame is not None and fingerprint and hash_pandas_dataframe(frame) == fingerprint:
            return frame
        raise InputError(f"{self.name}: cannot find the validated batch in this process; "
                         "set data_path to the batch file")


def _run_name(run_id) -> str:
    """The run's name, or its start time when the run has no name."""
    name = getattr(run_id, "run_name", None)
    if name:
        return str(name)
    run_time = getattr(run_id, "run_time", None)
    return run_time.strftime("%Y%m%dT%H%M%S") if run_time is not None else "run"


def _poison_configs(validation) -> list:
    """The expectation configurations of our batch-level expectations."""
    from great_expectations.expectations.registry import get_expectation_impl

    from poison_expectations.gx.expectations.base import PoisonBatchExpectation

    configs = []
    for result in validation.results:
        config = result.expectation_config
        try:
            cls = get_expectation_impl(config.type)
        except Exception:  # noqa: BLE001 - not a registered type: not ours
            continue
        if issubclass(cls, PoisonBatchExpectation):
            configs.append(config)
    return configs


def _findings(frame, configs):
    """Row findings (flags, scores, reasons) from the expectations' signals."""
    from poison_expectations.gx.metrics.base import analysis_for
    from poison_expectations.gx.runner import build_findings

    results, analysis = {}, None
    for config in configs:
        expectation = config.to_domain_obj()
        kwargs = expectation.metric_kwargs()
        analysis = analysis_for(frame, kwargs)
        signal = expectation.signal()
        results.setdefault(signal.name, expectation.metric_class.result(analysis, signal))
    return build_findings(analysis, list(results.values()))
