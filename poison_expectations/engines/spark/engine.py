"""The Spark engine's run: read, trusted side, score partitions, decide.

See the package docstring for how the work is split and where the result
approximates the pandas engine's. pyspark is imported inside the functions,
so importing this module needs no Spark.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from poison_expectations.core.errors import InputError
from poison_expectations.core.params import FAMILIES
from poison_expectations.core.params.shared import shared_values
from poison_expectations.core.tables import Options, Roles
from poison_expectations.engines.spark.params import BATCH_SECTIONS, family_params
from poison_expectations.engines.spark.scoring import (GROUP_SIGNALS, ROW_INDEX, ROW_SIGNALS, BATCH_SIGNALS,
                                                       ScoringPlan, make_signal, score_frame, score_partitions)

SAMPLE_ROWS = 20_000  # self-check: the most batch rows the driver fits the trusted side on
PROBE_ROWS = 50  # rows scored on the driver first, so an input error is one line, not a task failure
MAX_SOURCES = 1000  # per-source counts kept in the report (most flagged first)


@dataclass
class SparkOutcome:
    success: bool
    rows: int
    flagged: int
    cut: float  # a row is flagged iff poison_p <= cut
    gates: dict[str, dict]  # signal -> its batch gate
    sources: list[dict]
    skipped: list[str]  # enabled families the Spark engine does not run
    mode: str  # "profile", "reference" or "self-check (sample of N rows)"
    plan: ScoringPlan
    scored: Any  # the scored Spark DataFrame (column expressions over `cached`)
    columns: list[str]  # the input's columns
    timings: dict[str, float] = field(default_factory=dict)
    batch_names: list[str] = field(default_factory=list)  # batch families' signals with _score and _p (batch.py)
    flag_columns: list[str] = field(default_factory=list)  # bool columns flagging rows besides BH (batch.py)
    group_flags: list = field(default_factory=list)  # (row condition, reason column) of group findings (sources)
    cached: Any = None  # the persisted table `scored` reads (None: `scored` itself)

    def failed_signals(self) -> list[str]:
        return [name for name, gate in self.gates.items() if gate.get("failed")]

    def release(self) -> None:
        """Unpersist the cached scored table (once the outputs are written)."""
        (self.scored if self.cached is None else self.cached).unpersist()


def roles_options(config: dict) -> tuple[Roles, Options]:
    """The config's data roles and shared options (as the GX metrics read them)."""
    shared = shared_values(config)
    features = shared["feature_columns"]
    roles = Roles(label_column=shared["label_column"], id_column=shared["id_column"],
                  source_column=shared["source_column"], feature_columns=tuple(features) if features else None,
                  embedding_columns=tuple(shared["embedding_columns"] or ()))
    options = Options(nan_policy=shared["nan_policy"], max_onehot_categories=shared["max_onehot_categories"],
                      k=shared["k"], exact_max_rows=shared["exact_max_rows"], random_state=shared["random_state"],
                      fdr_q=shared["fdr_q"])
    return roles, options


def plan_signals(config: dict, labelled: bool) -> tuple[list[tuple[str, dict]], list[str], list[tuple[str, dict]]]:
    """(section, signal parameters) of each enabled per-row family, the
    enabled families this engine does not run (with why), and (section,
    parameters) of each enabled batch family (batch.py)."""
    run, skipped, batch = [], [], []
    trusted = bool(config["data"].get("profile") or config["data"].get("reference"))
    for family in FAMILIES:
        section = config["expectations"].get(family.section, {})
        if not section.get("enabled", True):
            continue
        if family.section in BATCH_SECTIONS:
            continue  # run from aggregates after the per-row scoring (batch.py)
        if family.section not in ROW_SIGNALS and family.section not in BATCH_SIGNALS:
            skipped.append(f"{family.section} (needs within-batch structure; not on the Spark engine)")
        elif family.needs_label and not labelled:
            skipped.append(f"{family.section} (needs a label column)")
        elif family.section in GROUP_SIGNALS and not trusted:
            skipped.append(f"{family.section} (the Spark engine judges groups against a trusted side: give "
                           "--profile or --reference)")
        else:
            planned = run if family.section in ROW_SIGNALS else batch
            planned.append((family.section, family_params(config, family)))
    if not run:
        raise InputError("no per-row family is enabled: the Spark engine runs label_consistency, outliers "
                         "and influence")
    return run, skipped, batch


def read_data(spark, path):
    """A parquet file or folder, a CSV file (header row), or any path Spark reads
    as parquet; a Spark DataFrame as it is (a GX batch: gx/metrics/spark.py)."""
    if not isinstance(path, (str, os.PathLike)) and hasattr(path, "mapInPandas"):
        return path
    text = str(path)
    local = Path(text)
    if "://" not in text and not local.exists():
        raise InputError(f"{text}: not found")
    try:
        if local.suffix.lower() == ".csv":
            return spark.read.csv(text, header=True, inferSchema=True)
        return spark.read.parquet(text)
    except Exception as exc:  # noqa: BLE001 - AnalysisException and friends: one line, exit 2
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"{text}: Spark cannot read it ({first[:200]})") from None


def check_columns(columns: list[str], roles: Roles) -> None:
    for role, column in (("label", roles.label_column), ("id", roles.id_column), ("source", roles.source_column)):
        if column is not None and column not in columns:
            raise InputError(f"batch: {role} column '{column}' not found (columns: {', '.join(columns[:12])})")
    for column in roles.feature_columns or ():
        if column not in columns:
            raise InputError(f"batch: feature column '{column}' not found")
    if not roles.id_column and ROW_INDEX in columns:
        raise InputError(f"batch: a column is named '{ROW_INDEX}'; name it as the id column (--id-column)")


def trusted_bytes(spark, sdf, config: dict, roles: Roles, options: Options, signals, *,
                  sample_rows: int = SAMPLE_ROWS, seed: int = 0, extra=()) -> tuple[bytes, str]:
    """(profile file bytes, mode): the stored profile, or one fitted on the
    driver from the reference table or a bounded random sample of the batch."""
    data = config["data"]
    if data.get("profile"):
        path = Path(data["profile"])
        if not path.is_file():
            raise InputError(f"{path}: profile not found")
        return path.read_bytes(), "profile"
    if data.get("reference"):
        from poison_expectations.stores.io import read_table

        frame = read_table(data["reference"], max_rows=config["limits"]["max_rows"],
                           max_memory_mb=config["limits"]["max_memory_mb"])
        return _fitted_bytes(frame, roles, options, signals, config, str(data["reference"]), extra), "reference"
    total = sdf.count()
    fraction = min(1.0, 1.2 * sample_rows / max(total, 1))
    frame = sdf.sample(withReplacement=False, fraction=fraction, seed=seed).limit(sample_rows).toPandas()
    if len(frame) < options.k + 1:
        raise InputError(f"self-check: the batch sample has {len(frame)} rows; at least k+1={options.k + 1} needed")
    return (_fitted_bytes(frame, roles, options, signals, config, "<sample of the batch>"),
            f"self-check (trusted side fitted on a random sample of {len(frame)} of {total} rows)")


def _fitted_bytes(frame, roles: Roles, options: Options, signals, config: dict, name: str, extra=()) -> bytes:
    from poison_expectations.core.fitting import fit_profile
    from poison_expectations.core.version import VERSION
    from poison_expectations.stores.profiles import save_profile

    meta = {"plugin_version": VERSION, "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "trusted_file": name, "config": {k: v for k, v in config.items() if k != "expectations"}}
    fitted_roles = Roles(roles.label_column, roles.id_column if roles.id_column in frame.columns else None,
                         roles.source_column if roles.source_column in frame.columns else None,
                         roles.feature_columns, roles.embedding_columns)
    chosen = [make_signal(s, p) for s, p in signals] + list(extra)
    profile = fit_profile(frame, fitted_roles, options, chosen, meta=meta,
                          max_memory_mb=config["limits"]["max_memory_mb"])
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "fitted.profile"
        save_profile(profile, target)
        return target.read_bytes()


def partition_offsets(sdf) -> dict[int, int]:
    """First 0-based row position of each partition (a count per partition)."""
    from pyspark.sql import functions as F

    counts = sdf.groupBy(F.spark_partition_id().alias("p")).count().collect()
    sizes = {int(r["p"]): int(r["count"]) for r in counts}
    offsets, running = {}, 0
    for part in sorted(sizes):
        offsets[part] = running
        running += sizes[part]
    return offsets


def score(sdf, plan: ScoringPlan):
    """The scored DataFrame: the input's columns plus the plan's output columns."""
    import functools

    from pyspark.sql.types import StructType

    schema = StructType.fromDDL(", ".join(f"`{name}` {kind}" for name, kind in plan.output_columns()))
    out = StructType(list(sdf.schema.fields) + list(schema.fields))  # a new schema: never mutate sdf.schema
    return sdf.mapInPandas(functools.partial(score_partitions, plan), out)


def probe(sdf, plan: ScoringPlan) -> None:
    """Score the first rows on the driver: a bad batch or a profile that does
    not match fails here with its one-line InputError."""
    head = sdf.limit(PROBE_ROWS).toPandas()
    if len(head) == 0:
        raise InputError("batch: the table has no rows")
    score_frame(plan, head, [plan.seed, 2**32 - 1])
