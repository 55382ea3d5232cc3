"""(Re)build the stored GX file-context project rooted at checkpoints/ (files in checkpoints/gx).

It holds one pandas dataframe asset (the batch is passed at run time), the
suite `training_ingest` with the expectations of every family enabled in
the default config (every threshold written explicitly, since GX does not
store defaults), a validation definition and a checkpoint `training_ingest`.
The GX calls live in `poison_expectations.apps.scaffold`, shared with
`poison-check init`. Run from the repo root:

    python checkpoints/build_gx_project.py
    poison-check run-checkpoint training_ingest --project checkpoints --data sample_data/train_clean.csv
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from poison_expectations.core.config import load_config  # noqa: E402
from poison_expectations.gx.runner import build_expectations  # noqa: E402
from poison_expectations.apps.scaffold import ProjectNames, write_project  # noqa: E402

PROJECT = Path(__file__).resolve().parent
NAMES = ProjectNames(checkpoint="training_ingest", datasource="training_data", asset="incoming_batch",
                     batch_definition="whole_batch")
ROLES = {"data.label_column": "label", "data.id_column": "row_id", "data.source_column": "source"}


def build(project: Path = PROJECT) -> None:
    shutil.rmtree(project / "gx", ignore_errors=True)
    expectations = build_expectations(load_config(None, ROLES))
    write_project(project, NAMES, expectations)


if __name__ == "__main__":
    build()
