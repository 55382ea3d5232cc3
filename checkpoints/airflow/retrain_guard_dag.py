"""Retrain guard: check an incoming training batch for poisoning before it
reaches training.

    validate ──(passed)──> retrain
             └─(poisoned)─> quarantine ──> notify

`validate` runs the poisoning checkpoint (the same job as `poison-check
validate`). On a clean batch it succeeds and `retrain` fits a model on the
accepted rows. On a poisoned batch it fails, which fails the DAG run (so
alerting and the UI show it), `retrain` never runs (upstream_failed), and
`quarantine` (trigger rule all_failed) holds the batch for review: it writes
a hold manifest next to the findings, report and the flagged rows, then
`notify` posts the message. If `validate` failed for another reason (bad
file, column or config) `quarantine` and `notify` are skipped: there is
nothing to quarantine, and the task log says "INPUT ERROR".

Copy this file into your dags folder and pass the params as the run's conf
(or give them defaults here): `data_path` and `label` are required (a run
without them is refused, naming the param); the others have defaults that
work anywhere (no reference: a self-check; the packaged config). Replace `notify` with your channel (for example an
SmtpNotifier or a Slack operator). See docs/airflow.md.
"""

from __future__ import annotations

import json
import logging
import os
import re
from datetime import datetime, timezone
from pathlib import Path

from airflow.sdk import DAG, Param, TriggerRule, task
from airflow.sdk.exceptions import AirflowSkipException

from poison_expectations.apps.airflow import POISONED, XCOM_RECORD, PoisonCheckOperator
from poison_expectations.stores.io import write_text_atomic

log = logging.getLogger(__name__)

_OUTPUT = os.environ.get("POISON_GUARD_OUTPUT_DIR",
                         str(Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser() / "poison_guard"))


def slug(value: object) -> str:
    """A run id as a folder name (run ids contain ':' and '+')."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(value)).strip("_")


def _encode(features):
    """Numbers as they are, categoricals one-hot (the model needs numbers)."""
    import pandas as pd

    return pd.get_dummies(features, dtype=float)


with DAG(
    dag_id="poison_retrain_guard",
    description="Validate a training batch for poisoning, then retrain or quarantine it",
    schedule=None,
    start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    tags=["poison_expectations", "data-quality"],
    user_defined_filters={"slug": slug},
    params={
        # no default: a copied file has no sample data beside it, and a guessed path fails late
        "data_path": Param(type="string", minLength=1,
                           description="Incoming training batch (CSV or Parquet). Required."),
        "reference": Param("", type="string", description="Trusted reference table; '' for a self-check only."),
        "config": Param("", type="string", description="Checkpoint config YAML; '' for the packaged default."),
        "label": Param(type="string", minLength=1, description="Label column. Required."),
        "id_column": Param("", type="string", description="Row id column; '' for row_index."),
        "source_column": Param("", type="string", description="Contributor column; '' when there is none."),
        "output_dir": Param(_OUTPUT, type="string",
                            description="Findings, reports, split rows and models go under <output_dir>/<run>."),
    },
) as dag:
    run_dir = "{{ params.output_dir }}/{{ run_id | slug }}"

    validate = PoisonCheckOperator(
        task_id="validate",
        data_path="{{ params.data_path }}",
        reference="{{ params.reference }}",
        config="{{ params.config }}",
        label="{{ params.label }}",
        id_column="{{ params.id_column }}",
        source_column="{{ params.source_column }}",
        findings_path=run_dir + "/findings.csv",
        report_path=run_dir + "/report.json",
        accepted_path=run_dir + "/accepted.csv",
        quarantine_path=run_dir + "/quarantine.csv",
        # On Spark (docs/airflow.md, "On Spark"): engine="spark", spark_conn_id="spark_default" (or
        # spark_master=..., spark_conf={...}); data_path is then parquet and the outputs parquet datasets
        # (folders, e.g. run_dir + "/accepted"), so `retrain` reads them with pandas.read_parquet.
    )

    @task
    def retrain(record: dict, params: dict | None = None) -> str:
        """Fit the model on the accepted rows; return the model's path."""
        import joblib
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        from poison_expectations.stores.io import read_table

        accepted = record["outputs"]["accepted"]
        frame = read_table(accepted)
        label = params["label"]
        drop = [c for c in (label, params["id_column"], params["source_column"]) if c]
        X = _encode(frame.drop(columns=drop))
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, frame[label])
        target = Path(accepted).with_name("model.joblib")
        joblib.dump({"model": model, "columns": list(X.columns)}, target)
        log.info("retrained on %d accepted rows of %s (training accuracy %.3f): %s",
                 len(frame), params["data_path"], model.score(X, frame[label]), target)
        return str(target)

    @task(trigger_rule=TriggerRule.ALL_FAILED)
    def quarantine(ti=None, params: dict | None = None, run_id: str | None = None) -> dict:
        """Hold a poisoned batch for review; skip when validate failed for another reason."""
        record = ti.xcom_pull(task_ids="validate", key=XCOM_RECORD)
        if not record or record["verdict"] != POISONED:
            verdict = record["verdict"] if record else "no verdict"
            raise AirflowSkipException(f"validate failed without a poisoning verdict ({verdict}); nothing to hold")
        manifest = {
            "held_at": datetime.now(timezone.utc).isoformat(),
            "run_id": run_id,
            "batch": params["data_path"],
            "failed_expectations": record["failed_expectations"],
            "flagged_rows": record["flagged_rows"],
            "rows": record["rows"],
            "outputs": record["outputs"],
        }
        hold = Path(record["outputs"]["report"] or record["outputs"]["findings"]).with_name("HOLD.json")
        write_text_atomic(hold, json.dumps(manifest, indent=2))
        manifest["hold_manifest"] = str(hold)
        log.warning("batch %s held for review: %s", params["data_path"], hold)
        return manifest

    @task
    def notify(manifest: dict) -> str:
        """The message for the data owners; swap the log call for your channel."""
        message = (f"Poisoned training batch held: {manifest['batch']} "
                   f"({manifest['flagged_rows']} of {manifest['rows']} rows flagged; "
                   f"failed: {', '.join(manifest['failed_expectations'])}). "
                   f"Review {manifest['outputs']['quarantine']} and {manifest['hold_manifest']}.")
        log.warning("%s", message)
        return message

    retrain(validate.output)
    held = quarantine()
    validate >> held
    notify(held)
