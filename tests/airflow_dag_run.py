"""Run the example retrain-guard DAG with `dag.test()` and print what happened as JSON.

tests/test_airflow.py runs this in a fresh process: Airflow reads
AIRFLOW_HOME and its config when first imported and reconfigures logging, so
it must not share the pytest process. Usage:

    AIRFLOW_HOME=<tmp> AIRFLOW__CORE__DAGS_FOLDER=checkpoints/airflow \\
        python tests/airflow_dag_run.py '<json list of {"name": ..., "conf": {...}}>'

Prints one JSON line per case, prefixed by RESULT: the DagRun state, every
task instance's state, the validate task's XCom record and the run's files.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def migrate() -> float:
    """Create the SQLite metadata DB like `airflow db migrate`."""
    from airflow.utils.db import upgradedb

    start = time.perf_counter()
    upgradedb()
    return time.perf_counter() - start


def load_dag(dag_file: Path):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(dag_file))
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    return bag.get_dag("poison_retrain_guard")


def _state(state) -> str | None:
    """States are str enums in some places and plain strings in others."""
    return None if state is None else str(getattr(state, "value", state))


def run_case(dag, conf: dict) -> dict:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    start = time.perf_counter()
    run = dag.test(run_conf=conf)
    seconds = time.perf_counter() - start
    with create_session() as session:
        tis = run.get_task_instances(session=session)
        states = {ti.task_id: _state(ti.state) for ti in tis}
        rows = session.query(XComModel).filter(XComModel.run_id == run.run_id).all()
        xcoms = {f"{row.task_id}.{row.key}": row.value for row in rows}
    record = xcoms.get("validate.poison_check")
    record = json.loads(record) if isinstance(record, str) else record
    files = []
    if record and record.get("outputs", {}).get("findings"):
        folder = Path(record["outputs"]["findings"]).parent
        files = sorted(p.name for p in folder.iterdir())
    return {
        "run_id": run.run_id,
        "dag_run_state": _state(run.state),
        "task_states": states,
        "record": record,
        "xcom_keys": sorted(xcoms),
        "files": files,
        "seconds": round(seconds, 1),
    }


def main(argv: list[str]) -> None:
    cases = json.loads(argv[1])
    dag_file = Path(__file__).resolve().parents[1] / "checkpoints" / "airflow" / "retrain_guard_dag.py"
    print("MIGRATE:" + json.dumps({"seconds": round(migrate(), 1)}), flush=True)
    dag = load_dag(dag_file)
    for case in cases:
        result = run_case(dag, case["conf"])
        result["name"] = case["name"]
        print("RESULT:" + json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    main(sys.argv)
