"""`poison-check calibrate TRUSTED`: limits from trusted data.

Every enabled family's signal runs once on the trusted table (self-check:
the trusted table is the baseline, so no reference is used). Each family
with a `calibrate` hook (registry.ExpectationFamily.calibrate) receives its
config section and the results by signal name, and returns the section keys
to overwrite; families without a hook keep their configured limits. The
result is a complete config (every key explicit) with a header saying what
was measured and changed.

The results mapping also carries `batch_rows` (the batch size the limits are
for; default the trusted table's size) and `confidence` (0.999), which hooks
pass to `gates.calibrated_rate_limit` or their own bound.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import dump_config, validate
from .errors import ConfigError
from .registry import families

CONFIDENCE = 0.999


class CalibrationRun(dict):
    """{signal name: SignalResult} of the trusted run, plus the calibration's settings."""

    def __init__(self, results: dict, batch_rows: int, confidence: float) -> None:
        super().__init__(results)
        self.batch_rows = batch_rows
        self.confidence = confidence


@dataclass
class Calibration:
    config: dict
    trusted: str
    rows: int
    batch_rows: int
    confidence: float
    baselines: dict[str, tuple[int, int]]  # signal -> (flagged, rows)
    changes: list[tuple[str, Any, Any]] = field(default_factory=list)  # (key, old, new)
    uncalibrated: list[str] = field(default_factory=list)  # enabled families without a hook

    def header(self) -> str:
        lines = [
            "# Calibrated by `poison-check calibrate` on "
            f"{dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
            f"# trusted data: {self.trusted} ({self.rows} rows); limits are for batches of "
            f"{self.batch_rows} rows or more,",
            f"# each with a {self.confidence:.1%} margin (see docs/user_outputs.md, Calibration).",
        ]
        for signal, (flagged, rows) in self.baselines.items():
            lines.append(f"# baseline {signal}: {flagged} of {rows} rows flagged ({flagged / max(rows, 1):.4f})")
        for key, old, new in self.changes:
            lines.append(f"# {key}: {old} -> {new}")
        if self.uncalibrated:
            lines.append(f"# kept as configured (no calibrate hook): {', '.join(self.uncalibrated)}")
        return "\n".join(lines) + "\n"

    def yaml(self) -> str:
        return self.header() + dump_config(self.config)


def calibrate(trusted: str | Path, config: dict, *, batch_rows: int | None = None,
              confidence: float = CONFIDENCE) -> Calibration:
    """Run the enabled families on TRUSTED and apply their calibrate hooks."""
    from .runner import _analysis, build_expectations, load_inputs

    if not 0.5 < confidence < 1.0:
        raise ConfigError(f"confidence {confidence} must be between 0.5 and 1")
    self_check = {**config, "data": {**config["data"], "reference": None}}
    frame, _ = load_inputs(trusted, self_check)
    analysis = _analysis(frame, self_check)
    expectations = build_expectations(self_check)
    results = {}
    for expectation in expectations:
        signal = expectation.signal()
        results.setdefault(signal.name, analysis.result(signal))
    rows = analysis.batch.n
    if batch_rows is not None and batch_rows < 1:
        raise ConfigError(f"batch rows {batch_rows} must be at least 1")
    run = CalibrationRun(results, batch_rows or rows, confidence)
    calibrated = copy.deepcopy(config)
    outcome = Calibration(calibrated, str(trusted), rows, run.batch_rows, confidence,
                          {name: (r.flagged_count, r.n_rows) for name, r in results.items()})
    for family in families():
        section = calibrated["expectations"].get(family.section, {})
        if not section.get("enabled", True):
            continue
        if family.calibrate is None:
            outcome.uncalibrated.append(family.section)
            continue
        for key, value in (family.calibrate(dict(section), run) or {}).items():
            if key not in family.params:
                raise ConfigError(f"calibrate hook of '{family.section}' returned unknown key '{key}'")
            path = f"expectations.{family.section}.{key}"
            value = family.params[key].check(path, value)
            outcome.changes.append((path, section.get(key), value))
            section[key] = value
    outcome.config = validate(calibrated)
    return outcome
