"""Generated attacks under the verdicts (issue 15): re-run ours, keep the stored cleanlab records.

    PYTHONPATH=. python3 benchmarks/verdicts_quality.py run      # ~25 min on 2 cores (load ~2-3)
    PYTHONPATH=. python3 benchmarks/verdicts_quality.py report   # benchmarks/results/verdicts_quality.md

`run` copies the cleanlab records of benchmarks/results/quality.json (Datalab on the batch alone;
not re-run: cleanlab is the `bench` extra) and runs our default checkpoint with and without the
reference on the quick datasets, every attack at 1%, 3% and 10%, and 5 clean batches each, into
benchmarks/results/quality_verdicts.json. `report` states the issue-15 targets from it.
"""
import json
import sys
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
SOURCE, OUT = RESULTS / "quality.json", RESULTS / "quality_verdicts.json"


def run() -> None:
    from benchmarks.cases import QUICK_DATASETS
    from benchmarks.quality import run_quality

    OUT.write_text(json.dumps([r for r in json.loads(SOURCE.read_text()) if r["mode"] == "cleanlab"]))
    run_quality(OUT, QUICK_DATASETS, clean_seeds=5, modes=("ours_ref", "ours_self"),
                log=lambda s: print(s, flush=True))


def report(r: list[dict]) -> str:
    out = ["# Generated attacks under the verdicts (issue 15)", "",
           "Quick datasets (breast_cancer, wine, digits, tabular_5k), every attack at 1%, 3% and 10%, 5 clean",
           "batches per dataset; `ours_ref` against the trusted split, `ours_self` alone; cleanlab 2.9 Datalab",
           "records are the stored ones (batch alone). Source: `benchmarks/results/quality.json`.", ""]
    def fail(sub): return sum(x["verdict"] == "FAIL" for x in sub)
    out += ["## Batches failed", "", "| attack | rate | ours_ref failed | ours_self failed |", "|---|---|---|---|"]
    attacks = sorted({x["attack"] for x in r if x["attack"] != "clean"})
    for a in ["clean"] + attacks:
        for rate in sorted({x["rate"] for x in r if x["attack"] == a}):
            cells = []
            for mode in ("ours_ref", "ours_self"):
                sub = [x for x in r if x["attack"] == a and x["rate"] == rate and x["mode"] == mode]
                cells.append(f"{fail(sub)}/{len(sub)}")
            out.append(f"| {a} | {rate:.0%} | {cells[0]} | {cells[1]} |")
    for rates, label in (((0.03, 0.10), "3% and 10%"), ((0.01, 0.03, 0.10), "all rates")):
        sub = [x for x in r if x["mode"] == "ours_ref" and x["attack"] != "clean" and x["rate"] in rates]
        out.append(f"\nPoisoned batches failed with a reference at {label}: {fail(sub)}/{len(sub)}"
                   f" ({fail(sub) / max(len(sub), 1):.0%}; target at 3% and 10%: >= 90%).")
    clean = [x for x in r if x["mode"] == "ours_ref" and x["attack"] == "clean"]
    out.append(f"Clean batches failed with a reference: {fail(clean)}/{len(clean)}; causes: "
               + ", ".join(sorted({e for x in clean for e in x['failed']})) + ".")
    out += ["", "## AUPRC on random flips (poison_score; cleanlab: its label-issue score)", "",
            "| rate | ours_ref | ours_self | cleanlab |", "|---|---|---|---|"]
    for rate in (0.01, 0.03, 0.10):
        cells = []
        for mode in ("ours_ref", "ours_self", "cleanlab"):
            v = [x["auprc"] for x in r if x["attack"] == "random_flips" and x["rate"] == rate and x["mode"] == mode
                 and x.get("auprc") is not None]
            cells.append(f"{np.mean(v):.3f}" if v else "-")
        out.append(f"| {rate:.0%} | " + " | ".join(cells) + " |")
    fdp = [0.0 if x["precision"] is None else 1 - x["precision"] for x in r
           if x["mode"] == "ours_ref" and x["attack"] != "clean"]
    out.append(f"\nShare of clean rows among the flagged, averaged over poisoned runs with a reference: "
               f"{np.mean(fdp):.3f} (target <= q + 0.05 = 0.15).")
    return "\n".join(out)


if __name__ == "__main__":
    if sys.argv[1:] == ["run"]:
        run()
    text = report(json.loads(OUT.read_text()))
    (RESULTS / "verdicts_quality.md").write_text(text + "\n")
    print(text)
