"""The SparkSession: an existing cluster (`master` URL) or `local[*]`.

Executors must run this environment's Python (the plugin and its pinned
numpy/scikit-learn live there), so PYSPARK_PYTHON is set to it unless the
caller set it already (a cluster whose workers have their own path for it).
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Iterable

from poison_expectations.core.errors import InputError

DEFAULT_CONF = {
    "spark.ui.showConsoleProgress": "false",  # the CLI's stderr carries one error line at most
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # each Arrow chunk is one Analysis (encoding, kNN, models, ranking among the reference scores):
    # 50k rows instead of 10k amortise that fixed cost (about 14 MB of 35 float columns)
    "spark.sql.execution.arrow.maxRecordsPerBatch": "50000",
}


def parse_conf(pairs: Iterable[str]) -> dict[str, str]:
    """`key=value` strings (the CLI's --spark-conf) as a dict."""
    conf = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--spark-conf {pair!r}: expected key=value")
        conf[key.strip()] = value.strip()
    return conf


def configured_master() -> str | None:
    """The master spark-submit launched this driver with (the CLI as a
    spark-submit application), which local[*] must not replace. Only then
    does a JVM exist already (PYSPARK_GATEWAY_PORT): reading the conf of a
    plain process would launch it without the session's conf
    (spark.driver.memory must be set at launch)."""
    if not os.environ.get("PYSPARK_GATEWAY_PORT"):
        return None
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()  # connects to spark-submit's JVM, whose system properties hold the conf
    return SparkConf().get("spark.master", None)


def get_session(master: str | None = None, conf: dict[str, str] | None = None, app_name: str = "poison-check"):
    """The active session if there is one (conf is then left alone: changing
    it would restart the session), else a new one on `master` (default: the
    master spark-submit gave, else local[*])."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise InputError("the Spark engine needs pyspark: pip install 'poison-expectations[spark]'") from None
    active = SparkSession.getActiveSession()
    if active is not None and master is None and not conf:
        return active
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        raise InputError("the Spark engine needs a Java runtime (17 or 21): install one, e.g. "
                         "apt-get install -y openjdk-17-jre-headless, or set JAVA_HOME")
    builder = SparkSession.builder.appName(app_name)
    if master or not configured_master():
        builder = builder.master(master or "local[*]")
    for key, value in {**DEFAULT_CONF, **(conf or {})}.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
