"""The Airflow operator's Spark engine (`PoisonCheckOperator(engine="spark")`).

It runs what `poison-check validate --engine spark` runs
(`apps/spark_validate.spark_job`): the same parquet outputs, the same
verdict, and an XCom record with the pandas path's keys (the summary is the
Spark engine's). Airflow is imported only to read a connection, so the rest
works (and is tested) without it.

Session: `spark_master` and `spark_conf`, or an Airflow connection
(`spark_conn_id`) whose host is the master URL (a `spark` connection's
host and port, e.g. spark://host:7077, yarn, local[4]) and whose extras
with keys `spark.*` are the conf; explicit arguments win over the
connection. Neither: the active session, else local[*].
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from poison_expectations.core.errors import PoisonCheckError

ENGINES = ("pandas", "spark")
SCHEMES = ("spark://", "local", "yarn", "k8s://", "mesos://", "sc://")


def master_url(conn_type: str | None, host: str | None, port: int | None) -> str | None:
    """The master URL of a connection: its host as it is when it names a
    master (spark://..., yarn, local[4], k8s://...), else spark://host, with
    the port appended when one is set."""
    if not host:
        return None
    host = host.strip()
    if not host.startswith(SCHEMES) and (conn_type or "spark").startswith("spark"):
        host = f"spark://{host}"
    return f"{host}:{port}" if port else host


def connection_settings(conn_id: str) -> tuple[str | None, dict[str, str]]:
    """(master, conf) from Airflow connection `conn_id` (see the module docstring)."""
    from airflow.sdk import BaseHook

    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception as exc:  # noqa: BLE001 - AirflowNotFoundException and friends: an input error
        raise PoisonCheckError(f"spark_conn_id {conn_id!r}: {type(exc).__name__}: {exc}") from None
    conf = {str(k): str(v) for k, v in (conn.extra_dejson or {}).items() if str(k).startswith("spark.")}
    return master_url(conn.conn_type, conn.host, conn.port), conf


def session_settings(master: str | None, conf: Mapping[str, Any] | None,
                     conn_id: str | None) -> tuple[str | None, dict[str, str]]:
    """The master and conf to build the session with: the connection's, overridden by the explicit ones."""
    conn_master, conn_conf = connection_settings(conn_id) if conn_id else (None, {})
    return master or conn_master, {**conn_conf, **{str(k): str(v) for k, v in (conf or {}).items()}}


def failed_expectations(signals: Sequence[str]) -> list[str]:
    """The GX expectation types of the failed signals' batch expectations (as the pandas record names them)."""
    from poison_expectations.gx import expectations

    names = []
    for cls_name in expectations.__all__:
        cls = getattr(expectations, cls_name)
        metric = getattr(cls, "metric_class", None)
        if metric is not None and metric.signal_class.name in signals:
            names.append(cls.expectation_type)
    return sorted(names)


def check_batch_spark(data_path: str | Path, cfg: dict, outputs: Mapping[str, str | None], *,
                      master: str | None = None, conf: Mapping[str, str] | None = None,
                      spark=None) -> tuple[dict, str]:
    """Validate one batch on Spark like `poison-check validate --engine spark`;
    return (record, verdict text). `outputs`: findings, accepted, quarantine
    (parquet datasets) and report (JSON), their folders already made. Raises
    PoisonCheckError on an input problem; never raises on poisoning."""
    from poison_expectations.apps.spark_validate import TABLE_OUTPUTS, spark_job, verdict_lines

    data = str(data_path)
    targets = {name: (str(outputs[name]) if outputs.get(name) else None) for name in (*TABLE_OUTPUTS, "report")}
    outcome, written, report = spark_job(data, cfg, targets, master=master, conf=conf, spark=spark)
    record = {
        "verdict": "passed" if outcome.success else "poisoned",  # airflow.PASSED / POISONED
        "failed_expectations": failed_expectations(outcome.failed_signals()),
        "flagged_rows": outcome.flagged,
        "rows": outcome.rows,
        "outputs": written,
        "error": None,
        "summary": report,
    }
    return record, "\n".join(verdict_lines(outcome, data, report["top_rows"]))
