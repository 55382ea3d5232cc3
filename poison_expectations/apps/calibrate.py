"""`poison-check calibrate TRUSTED`: limits from trusted data.

Every enabled family's signals run on the trusted table (self-check: the
trusted table is the baseline, so no reference is used). A signal's clean
flagged rate depends on the batch size (neighbourhoods are wider in a small
batch), so the trusted rows are also cut into G = rows // batch_rows random
disjoint batches of exactly `batch_rows` rows, and every signal runs on each.
With the default batch size (the whole table) that is the one run.

Each family with a `calibrate` hook (registry.ExpectationFamily.calibrate)
gets its config section and a `CalibrationRun`: {signal name: result of
the whole-table run}, plus `.batches` {signal name: [result per trusted
batch]}, `.batch_rows` and `.confidence` (0.999). It returns the section keys
to overwrite; families without a hook keep their configured limits. The
output is a complete config (every key explicit) whose header says what was
measured and changed.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from poison_expectations.core.config import dump_config, validate
from poison_expectations.core.errors import ConfigError, InputError
from poison_expectations.core.gates import dispersion_index
from poison_expectations.core.registry import families

CONFIDENCE = 0.999


class CalibrationRun(dict):
    """{signal name: SignalResult on the whole trusted table}, plus per-batch
    results at `batch_rows` and the confidence of every margin."""

    def __init__(self, results: dict, batches: dict, batch_rows: int, confidence: float) -> None:
        super().__init__(results)
        self.batches = batches
        self.batch_rows = batch_rows
        self.confidence = confidence


@dataclass
class Calibration:
    config: dict
    trusted: str
    rows: int
    run: CalibrationRun
    changes: list[tuple[str, Any, Any]] = field(default_factory=list)  # (key, old, new)
    uncalibrated: list[str] = field(default_factory=list)  # enabled families without a hook

    def header(self) -> str:
        run = self.run
        used = sum(b.n_rows for b in next(iter(run.batches.values()), []))
        lines = [
            f"# Calibrated by `poison-check calibrate` on {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
            f"# trusted data: {self.trusted} ({self.rows} rows); limits are for clean batches of "
            f"{run.batch_rows} rows or more,",
            f"# with {run.confidence:.1%} margins (docs/user_outputs.md, Calibration). Baselines over "
            f"{used} rows in batches of {run.batch_rows}:",
        ]
        for signal, batches in run.batches.items():
            counts, sizes = [b.flagged_count for b in batches], [b.n_rows for b in batches]
            lines.append(f"#   {signal}: {sum(counts)} of {sum(sizes)} flagged ({sum(counts) / max(sum(sizes), 1):.4f})"
                         f" in {len(batches)} batch(es), dispersion {dispersion_index(counts, sizes):.2f}")
        for key, old, new in self.changes:
            lines.append(f"# {key}: {old} -> {new}")
        if self.uncalibrated:
            lines.append(f"# kept as configured (no calibrate hook): {', '.join(self.uncalibrated)}")
        return "\n".join(lines) + "\n"

    def yaml(self) -> str:
        return self.header() + dump_config(self.config)


def _signal_results(frame, config: dict) -> dict:
    from poison_expectations.gx.runner import build_expectations, compute_signals, prepare_analysis

    expectations = build_expectations(config)
    return compute_signals(prepare_analysis(frame, config, expectations), expectations)


def trusted_run(trusted: str | Path, config: dict, batch_rows: int | None,
                confidence: float) -> tuple[int, CalibrationRun]:
    """Run every enabled signal on the whole table and on batches of `batch_rows`."""
    from poison_expectations.gx.runner import load_inputs

    frame, _ = load_inputs(trusted, config)
    rows = len(frame)
    batch_rows = batch_rows or rows
    if batch_rows > rows:
        raise InputError(f"{trusted}: {rows} rows, fewer than --batch-rows {batch_rows}")
    whole = _signal_results(frame, config)
    if batch_rows == rows:
        return rows, CalibrationRun(whole, {name: [r] for name, r in whole.items()}, batch_rows, confidence)
    order = np.random.default_rng(config["random_state"]).permutation(rows)
    batches: dict[str, list] = {name: [] for name in whole}
    for start in range(0, rows - batch_rows + 1, batch_rows):
        part = frame.iloc[np.sort(order[start:start + batch_rows])].reset_index(drop=True)
        for name, result in _signal_results(part, config).items():
            batches.setdefault(name, []).append(result)
    return rows, CalibrationRun(whole, batches, batch_rows, confidence)


def calibrate(trusted: str | Path, config: dict, *, batch_rows: int | None = None,
              confidence: float = CONFIDENCE) -> Calibration:
    """Run the enabled families on TRUSTED and apply their calibrate hooks."""
    if not 0.5 < confidence < 1.0:
        raise ConfigError(f"confidence {confidence} must be between 0.5 and 1")
    if batch_rows is not None and batch_rows < 1:
        raise ConfigError(f"batch rows {batch_rows} must be at least 1")
    self_check = {**config, "data": {**config["data"], "reference": None}}
    rows, run = trusted_run(trusted, self_check, batch_rows, confidence)
    calibrated = copy.deepcopy(config)
    outcome = Calibration(calibrated, str(trusted), rows, run)
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
