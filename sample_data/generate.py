"""Regenerate the sample data: `python sample_data/generate.py` from the repo root.

Every file is a deterministic function of SEED (see README.md).  Ground truth
goes to sample_data/truth/, never into the training files.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from poison_expectations.testing import (  # noqa: E402
    Poisoned,
    backdoor,
    bad_source,
    make_tabular,
    near_duplicate_flood,
    random_flips,
)

SEED = 20240
N_TRAIN = 3000
N_REFERENCE = 3000
SHAPE = dict(n_numeric=8, n_categorical=2, n_classes=2, n_sources=7, class_sep=1.5, label_noise=0.01)
REFERENCE_ID_OFFSET = 100_000  # reference ids r100000.. never clash with training ids


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _write_poisoned(out: Path, name: str, poisoned: Poisoned) -> None:
    poisoned.frame.to_csv(out / f"{name}.csv", index=False)
    truth = pd.DataFrame({"row_id": poisoned.frame["row_id"], "is_poison": poisoned.is_poison})
    truth.to_csv(out / "truth" / f"{name}.csv", index=False)
    meta = {
        "file": f"{name}.csv",
        "description": poisoned.description,
        "n_rows": int(len(poisoned.frame)),
        "n_poison": int(poisoned.is_poison.sum()),
        "details": _jsonable(poisoned.details),
    }
    (out / "truth" / f"{name}.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"{name}.csv: {poisoned.description}")


def main(out: Path = HERE) -> None:
    (out / "truth").mkdir(parents=True, exist_ok=True)

    train = make_tabular(N_TRAIN, **SHAPE, random_state=SEED, distribution_seed=SEED)
    reference = make_tabular(N_REFERENCE, **SHAPE, random_state=SEED + 1, distribution_seed=SEED)
    reference["row_id"] = "r" + pd.Series(np.arange(N_REFERENCE) + REFERENCE_ID_OFFSET).astype(str)
    assert not set(reference["row_id"]) & set(train["row_id"])

    train.to_csv(out / "train_clean.csv", index=False)
    train.to_parquet(out / "train_clean.parquet", index=False)
    reference.to_csv(out / "reference.csv", index=False)
    print(f"train_clean.csv / .parquet: {len(train)} rows; reference.csv: {len(reference)} rows")

    _write_poisoned(out, "train_poisoned_flips", random_flips(train, rate=0.05, random_state=SEED))
    _write_poisoned(
        out, "train_poisoned_backdoor", backdoor(train, rate=0.05, n_trigger_features=3, random_state=SEED)
    )
    _write_poisoned(
        out, "train_poisoned_flood",
        near_duplicate_flood(train, rate=0.02, n_seeds=3, noise=0.02, random_state=SEED),
    )
    # One small source (<= 8% of rows) whose labels are mostly flipped: 4% of all rows.
    _write_poisoned(
        out, "train_poisoned_source",
        bad_source(train, rate=0.04, n_bad_sources=1, source_column="source", random_state=SEED),
    )


if __name__ == "__main__":
    main()
