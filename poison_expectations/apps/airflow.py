"""Apache Airflow 3 entry point: the poisoning checkpoint as a task that
fails the DAG run.

Needs the `airflow` extra (`pip install 'poison-expectations[airflow]'`);
nothing else in the package imports Airflow. The operator runs the same job
as `poison-check validate` (`jobs.run_job`), so a DAG and a shell give the
same verdict on the same file and config; with `engine="spark"` it runs
`poison-check validate --engine spark`'s job (`apps/airflow_spark.py`).

Outcomes, and what the task does with each:
- passed: the XCom record is pushed and returned; the task succeeds.
- poisoned: the record is pushed, the verdict text is logged, then
  `PoisonDetected` (an AirflowFailException: no retries, the same data
  would fail again) fails the task and with it the DAG run.
- input error (bad file, column, config or output path): the record says
  so, the log says "INPUT ERROR (not poisoning)", and `PoisonCheckInputError`
  (also not retried) fails the task.
- anything else (out of memory, a crash) is logged as an internal error and
  re-raised unchanged, so the task's `retries` apply.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

try:
    from airflow.sdk import BaseOperator
    from airflow.sdk.exceptions import AirflowFailException
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "poison_expectations.apps.airflow needs Apache Airflow 3: pip install 'poison-expectations[airflow]'"
    ) from exc

from poison_expectations.core.errors import PoisonCheckError

PASSED, POISONED, INPUT_ERROR, INTERNAL_ERROR = "passed", "poisoned", "input_error", "internal_error"

# XCom keys the operator pushes (documented in docs/airflow.md).
XCOM_RECORD = "poison_check"  # the whole record below, one dict
XCOM_KEYS = ("verdict", "failed_expectations", "flagged_rows", "rows", "outputs", "error", "summary")


class PoisonDetected(AirflowFailException):
    """Poisoning expectations failed: the batch must not reach training."""


class PoisonCheckInputError(AirflowFailException):
    """The check could not judge the batch (file, column, config or output problem)."""


def _blank_to_none(value: Any) -> Any:
    """A rendered template of an unset param is ''; treat it as not given."""
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _columns(value: str | Sequence[str] | None) -> list[str] | None:
    value = _blank_to_none(value)
    if value is None:
        return None
    if isinstance(value, str):
        value = value.split(",")
    columns = [str(c).strip() for c in value if str(c).strip()]
    if not columns:
        raise PoisonCheckError(f"features: expected column names, got {value!r}")
    return columns


def empty_record(verdict: str, error: str | None = None,
                 outputs: Mapping[str, str | None] | None = None) -> dict:
    """The XCom record when the check did not produce a verdict on the data."""
    from poison_expectations.apps.jobs import OUTPUTS

    return {
        "verdict": verdict,
        "failed_expectations": [],
        "flagged_rows": None,
        "rows": None,
        "outputs": dict(outputs) if outputs else {name: None for name in OUTPUTS},
        "error": error,
        "summary": None,
    }


def check_batch(data_path: str | Path, *, config: str | Path | None = None, label: str | None = None,
                id_column: str | None = None, source_column: str | None = None,
                features: str | Sequence[str] | None = None, reference: str | Path | None = None,
                profile: str | Path | None = None, overrides: Mapping[str, Any] | None = None,
                outputs: Mapping[str, str | Path | None] | None = None,
                create_dirs: bool = True, engine: str = "pandas", spark_master: str | None = None,
                spark_conf: Mapping[str, Any] | None = None, spark_conn_id: str | None = None) -> tuple[dict, str]:
    """Validate one batch like `poison-check validate [--engine spark]`; return (record, verdict text).

    Usable from a TaskFlow `@task` as well as from the operator. Raises
    PoisonCheckError (input/config/output problem); never raises on poisoning.
    With engine "spark" the outputs are parquet datasets (apps/airflow_spark.py).
    """
    from poison_expectations.apps.airflow_spark import ENGINES, check_batch_spark, session_settings
    from poison_expectations.apps.console import verdict_text
    from poison_expectations.apps.jobs import check_outputs, job_config, run_job

    if engine not in ENGINES:
        raise PoisonCheckError(f"engine {engine!r}: expected one of {', '.join(ENGINES)}")
    data_path = str(data_path)
    outputs = {name: _blank_to_none(target) for name, target in (outputs or {}).items()}
    cfg = job_config(_blank_to_none(config), label_column=_blank_to_none(label),
                     id_column=_blank_to_none(id_column), source_column=_blank_to_none(source_column),
                     feature_columns=_columns(features), reference=_blank_to_none(reference),
                     profile=_blank_to_none(profile), overrides=overrides)
    if engine == "pandas":
        check_outputs(data_path, outputs, folders=not create_dirs)  # run_job checks them once created
    if create_dirs:
        for target in outputs.values():
            if target is not None:
                Path(target).parent.mkdir(parents=True, exist_ok=True)
    if engine == "spark":  # spark_job checks its outputs (parquet datasets)
        master, conf = session_settings(_blank_to_none(spark_master), spark_conf, _blank_to_none(spark_conn_id))
        return check_batch_spark(data_path, cfg, outputs, master=master, conf=conf)
    outcome, written = run_job(data_path, cfg, outputs)
    record = {
        "verdict": PASSED if outcome.success else POISONED,
        "failed_expectations": outcome.failed_expectations(),
        "flagged_rows": outcome.flagged_count,
        "rows": int(len(outcome.findings)),
        "outputs": written,
        "error": None,
        "summary": outcome.summary(),
    }
    return record, verdict_text(outcome)


class PoisonCheckOperator(BaseOperator):
    """Validate a training batch for poisoning; fail the task when it is poisoned.

    Arguments mirror `poison-check validate`: `data_path` (CSV/Parquet),
    `config` (YAML; None for the packaged default), `label`, `id_column`,
    `source_column`, `features` (list or comma-separated), `reference`
    (trusted table) or `profile` (a stored profile from `poison-check fit`:
    scored without refitting, the fast path for scheduled runs), `overrides` (dotted config keys). Outputs, all optional
    and written atomically: `findings_path`, `report_path`, `accepted_path`,
    `quarantine_path`; their folders are created. `fail_on_poison=False`
    lets the task succeed on poisoned data so a branch can route it (the
    verdict is in XCom either way). Every path and column argument is
    templated; an empty rendered string means "not given".

    `engine="spark"` runs the Spark engine (as `--engine spark`; docs/spark.md)
    in the task's process on a session built from `spark_master` and
    `spark_conf`, or from the Airflow connection `spark_conn_id` (host: the
    master URL; extras `spark.*`: the conf): DATA is a parquet file or folder
    or any path Spark reads, and the outputs are parquet datasets.
    """

    template_fields: Sequence[str] = (
        "data_path", "config", "reference", "profile", "label_column", "id_column", "source_column", "features",
        "findings_path", "report_path", "accepted_path", "quarantine_path", "spark_master", "spark_conn_id",
    )
    ui_color = "#f4d6d6"

    def __init__(self, *, data_path: str, config: str | None = None, reference: str | None = None,
                 profile: str | None = None, label: str | None = None, id_column: str | None = None,
                 source_column: str | None = None,
                 features: str | Sequence[str] | None = None, overrides: Mapping[str, Any] | None = None,
                 findings_path: str | None = None, report_path: str | None = None,
                 accepted_path: str | None = None, quarantine_path: str | None = None,
                 fail_on_poison: bool = True, engine: str = "pandas", spark_master: str | None = None,
                 spark_conf: Mapping[str, Any] | None = None, spark_conn_id: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.data_path = data_path
        self.config = config
        self.reference = reference
        self.profile = profile
        self.label_column = label  # `label` is a BaseOperator property
        self.id_column = id_column
        self.source_column = source_column
        self.features = features
        self.overrides = dict(overrides or {})
        self.findings_path = findings_path
        self.report_path = report_path
        self.accepted_path = accepted_path
        self.quarantine_path = quarantine_path
        self.fail_on_poison = fail_on_poison
        self.engine = engine
        self.spark_master = spark_master
        self.spark_conf = dict(spark_conf or {})
        self.spark_conn_id = spark_conn_id

    def _outputs(self) -> dict[str, str | None]:
        return {"findings": self.findings_path, "report": self.report_path,
                "accepted": self.accepted_path, "quarantine": self.quarantine_path}

    def execute(self, context) -> dict:
        ti = context["ti"]
        try:
            record, text = check_batch(
                self.data_path, config=self.config, label=self.label_column, id_column=self.id_column,
                source_column=self.source_column, features=self.features, reference=self.reference,
                profile=self.profile, overrides=self.overrides, outputs=self._outputs(), engine=self.engine,
                spark_master=self.spark_master, spark_conf=self.spark_conf, spark_conn_id=self.spark_conn_id)
        except PoisonCheckError as exc:
            push_record(ti, empty_record(INPUT_ERROR, str(exc)))
            self.log.error("poison-check: INPUT ERROR (not poisoning; the batch was not judged): %s", exc)
            raise PoisonCheckInputError(f"poison-check input error: {exc}") from exc
        except Exception as exc:
            push_record(ti, empty_record(INTERNAL_ERROR, f"{type(exc).__name__}: {exc}"))
            self.log.error("poison-check: INTERNAL ERROR (not poisoning; retries apply): %s: %s",
                           type(exc).__name__, exc)
            raise
        push_record(ti, record)
        self.log.info("%s", text)
        if record["verdict"] == POISONED:
            message = (f"POISONING DETECTED in {self.data_path}: failed {', '.join(record['failed_expectations'])}; "
                       f"{record['flagged_rows']} of {record['rows']} rows flagged")
            self.log.error("poison-check: %s; outputs: %s", message, record["outputs"])
            if self.fail_on_poison:
                raise PoisonDetected(message)
        else:
            self.log.info("poison-check: passed, %s of %s rows flagged", record["flagged_rows"], record["rows"])
        return record


def push_record(ti, record: dict) -> None:
    """Push the record whole and key by key, before any failure is raised,
    so downstream tasks (quarantine, notify) can read it from a failed run."""
    ti.xcom_push(key=XCOM_RECORD, value=record)
    for key in XCOM_KEYS:
        ti.xcom_push(key=key, value=record[key])
