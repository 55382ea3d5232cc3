"""Detection quality: every attack x dataset x rate, ours next to cleanlab.

For each case the poisoned batch is checked three ways:
* ``ours_self``: our default checkpoint on the batch alone;
* ``ours_ref``: the same checkpoint against the trusted reference;
* ``cleanlab``: Datalab on the batch alone (it has no reference mode).
Clean batches (several seeded splits per dataset) measure false alarms.

Records are appended to a JSON file after every case, so an interrupted run
resumes where it stopped (cases already present are skipped).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Iterable

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from .cases import ATTACK_NAMES, DATASETS, RATES, Split, poison
from .ours import run_ours

MODES = ("ours_self", "ours_ref", "cleanlab")


def row_metrics(truth: np.ndarray, scores: np.ndarray, flags: np.ndarray) -> dict:
    """Row-level quality of flags (precision, recall) and scores (AUROC, AUPRC)."""
    truth = np.asarray(truth, dtype=bool)
    n_flag = int(flags.sum())
    hits = int((flags & truth).sum())
    both = 0 < truth.sum() < len(truth)
    return {
        "n_rows": int(len(truth)),
        "n_poison": int(truth.sum()),
        "n_flagged": n_flag,
        "precision": hits / n_flag if n_flag else None,
        "recall": hits / int(truth.sum()) if truth.any() else None,
        "false_flag_rate": float(flags[~truth].mean()) if (~truth).any() else None,
        "auroc": float(roc_auc_score(truth, scores)) if both else None,
        "auprc": float(average_precision_score(truth, scores)) if both else None,
    }


def _signal_aurocs(truth: np.ndarray, signal_scores: dict) -> dict:
    if not 0 < truth.sum() < len(truth):
        return {}
    return {name: round(float(roc_auc_score(truth, s)), 4) for name, s in signal_scores.items()}


def run_mode(mode: str, split: Split, frame, truth: np.ndarray) -> dict:
    if mode == "cleanlab":
        from .cleanlab_baseline import run_cleanlab

        out = run_cleanlab(frame)
        record = {"verdict": None, "failed": [], "signal_auroc": _signal_aurocs(truth, out["issue_scores"])}
    else:
        out = run_ours(frame, split.reference if mode == "ours_ref" else None)
        record = {"verdict": "pass" if out["success"] else "FAIL", "failed": out["failed"],
                  "signal_auroc": _signal_aurocs(truth, out["signal_scores"]),
                  "signal_flagged": {k: int(v.sum()) for k, v in out["signal_flags"].items()}}
    record.update(row_metrics(truth, out["scores"], out["flags"]))
    record["wall_s"] = round(out["wall_s"], 3)
    record["timings"] = out["timings"]
    return record


def _key(r: dict) -> tuple:
    return (r["dataset"], r["attack"], r["rate"], r["seed"], r["mode"])


def load(path: Path) -> list[dict]:
    return json.loads(path.read_text()) if path.exists() else []


def save(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(records, indent=1, default=_json_default))
    tmp.replace(path)


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    raise TypeError(repr(value))


def run_quality(path: Path, datasets: Iterable[str], *, attacks: Iterable[str] = ATTACK_NAMES,
                rates: Iterable[float] = RATES, clean_seeds: int = 3, modes: Iterable[str] = MODES,
                log=print) -> list[dict]:
    records = load(path)
    done = {_key(r) for r in records}
    modes, attacks, rates = tuple(modes), tuple(attacks), tuple(rates)
    for name in datasets:
        cases = [("clean", 0.0, seed) for seed in range(clean_seeds)]
        cases += [(attack, rate, 0) for attack in attacks for rate in rates]
        splits: dict[int, Split] = {}
        for attack, rate, seed in cases:
            todo = [m for m in modes if (name, attack, rate, seed, m) not in done]
            if not todo:
                continue
            if seed not in splits:
                splits[seed] = DATASETS[name](seed)
            split = splits[seed]
            if attack == "clean":
                frame, truth, realised = split.batch, np.zeros(len(split.batch), dtype=bool), 0.0
            else:
                poisoned = poison(split, attack, rate, seed=seed)
                frame, truth, realised = poisoned.frame, poisoned.is_poison, poisoned.poison_rate
            for mode in todo:
                t0 = time.perf_counter()
                record = {"dataset": name, "attack": attack, "rate": rate, "seed": seed, "mode": mode,
                          "realised_rate": round(realised, 4)}
                try:
                    record.update(run_mode(mode, split, frame, truth))
                except Exception as exc:  # a failing case is a result to report, not a crash of the suite
                    record["error"] = f"{type(exc).__name__}: {exc}"[:300]
                records.append(record)
                save(path, records)
                log(f"{name:14s} {attack:22s} {rate:5.0%} seed={seed} {mode:9s} "
                    f"verdict={record.get('verdict')} auroc={_fmt(record.get('auroc'))} "
                    f"P={_fmt(record.get('precision'))} R={_fmt(record.get('recall'))} "
                    f"{time.perf_counter() - t0:6.1f}s {record.get('error', '')}")
    return records


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"
