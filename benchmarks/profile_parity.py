"""Detection with a stored profile against detection with --reference.

For each benchmark dataset, attack and rate (benchmarks/cases.py), the
poisoned batch is validated twice: against the trusted reference table (the
signals fit on it inside the run) and against a profile fitted on that table,
written to disk and read back. Both should rank the poison alike: the issue
allows the profile's mean AUROC per attack to be at most 0.005 lower.

    python benchmarks/profile_parity.py [--datasets breast_cancer,wine] [--rates 0.03]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cases import ATTACK_NAMES, DATASETS, ID, LABEL, QUICK_DATASETS, SOURCE, poison  # noqa: E402
from benchmarks.harness import machine_line, markdown_table  # noqa: E402

RESULTS = Path(__file__).with_name("results_profile_parity.md")


def auroc_pair(split, attack: str, rate: float, folder: Path) -> tuple[float, float, bool, bool]:
    from poison_expectations.core.config import load_config
    from poison_expectations.core.fitting import fit_profile
    from poison_expectations.gx.metrics.base import options_from, roles_from
    from poison_expectations.gx.runner import build_expectations, run_validation, shared_kwargs
    from poison_expectations.stores.profiles import save_profile

    poisoned = poison(split, attack, rate)
    roles = {"data.label_column": LABEL, "data.id_column": ID, "data.source_column": SOURCE}
    config = load_config(None, roles)
    with_reference = run_validation(poisoned.frame, config, reference=split.reference, after_run=False)
    shared = shared_kwargs(config)
    signals = list({s.cache_key(): s for s in (e.signal() for e in build_expectations(config))}.values())
    profile = fit_profile(split.reference, roles_from(shared), options_from(shared), signals, meta={"config": config})
    path = save_profile(profile, folder / "trusted.profile")
    with_profile = run_validation(poisoned.frame, load_config(None, {**roles, "data.profile": str(path)}),
                                  after_run=False)
    truth = poisoned.is_poison
    score = lambda outcome: float(roc_auc_score(truth, outcome.findings["poison_score"]))  # noqa: E731
    return score(with_reference), score(with_profile), with_reference.success, with_profile.success


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(QUICK_DATASETS))
    parser.add_argument("--rates", default="0.03,0.1")
    args = parser.parse_args()
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets.split(","):
            split = DATASETS[name](0)
            for attack in ATTACK_NAMES:
                for rate in map(float, args.rates.split(",")):
                    ref, prof, ref_ok, prof_ok = auroc_pair(split, attack, rate, Path(tmp))
                    records.append({"dataset": name, "attack": attack, "rate": rate, "auroc_reference": ref,
                                    "auroc_profile": prof, "same_verdict": ref_ok == prof_ok})
                    print(json.dumps(records[-1]), flush=True)
    by_attack = []
    for attack in ATTACK_NAMES:
        rows = [r for r in records if r["attack"] == attack]
        ref, prof = np.mean([r["auroc_reference"] for r in rows]), np.mean([r["auroc_profile"] for r in rows])
        by_attack.append({"attack": attack, "cases": len(rows), "mean AUROC --reference": f"{ref:.4f}",
                          "mean AUROC --profile": f"{prof:.4f}", "difference": f"{prof - ref:+.4f}",
                          "same verdict": f"{sum(r['same_verdict'] for r in rows)}/{len(rows)}"})
    RESULTS.write_text("\n".join([
        "# Detection with a profile vs with --reference", "", machine_line(),
        f"load average before: {os.getloadavg()[0]:.2f}", "",
        f"Datasets {args.datasets}; rates {args.rates}; seed 0. Target: the profile's mean AUROC per attack at "
        "most 0.005 below --reference.", "", markdown_table(by_attack), "",
        "Per case:", "", markdown_table(records)]) + "\n")


if __name__ == "__main__":
    main()
