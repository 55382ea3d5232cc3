"""(Re)build the stored GX file-context project rooted at checkpoints/ (files in checkpoints/gx).

It holds one pandas dataframe asset (the batch is passed at run time), the
suite `training_ingest` with our expectations (every threshold written
explicitly, since GX does not store defaults), a validation definition and a
checkpoint `training_ingest`. Run from the repo root:

    python checkpoints/build_gx_project.py
    poison-check run-checkpoint training_ingest --project checkpoints --data sample_data/train_clean.csv
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import great_expectations as gx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import poison_expectations as pe  # noqa: E402

PROJECT = Path(__file__).resolve().parent


def build(project: Path = PROJECT) -> None:
    shutil.rmtree(project / "gx", ignore_errors=True)
    context = gx.get_context(mode="file", project_root_dir=str(project))
    asset = context.data_sources.add_pandas("training_data").add_dataframe_asset("incoming_batch")
    batch = asset.add_batch_definition_whole_dataframe("whole_batch")
    suite = context.suites.add(gx.ExpectationSuite(name="training_ingest"))
    suite.add_expectation(pe.ExpectLabelInconsistencyRateToBeAtMost(
        label_column="label", id_column="row_id", source_column="source", method="both", model="hgb",
        k=10, n_folds=5, max_train_rows=100_000, max_rate=0.1, max_excess_over_reference=0.02, alpha=0.001,
        random_state=0))
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name="training_ingest_validation", data=batch, suite=suite))
    context.checkpoints.add(gx.Checkpoint(
        name="training_ingest", validation_definitions=[validation],
        result_format={"result_format": "SUMMARY"}))


if __name__ == "__main__":
    build()
