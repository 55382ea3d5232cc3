"""Where the engine keeps the tables it reads more than once (the scored
table, near duplicates' keys and rescored table, the structure pass, the
collisions' distinct rows).

Local disk by default, not the JVM heap: at 5M rows x 20 features the
in-memory copies (MEMORY_AND_DISK) ran a 4 GB driver JVM (`local[2]`: the
driver and the executors share one heap) out of heap while a new copy was
being cached beside the old one. Where executors have memory to spare, set
`--spark-conf spark.poison.persist=MEMORY_AND_DISK`."""

from __future__ import annotations

from poison_expectations.core.errors import InputError

CONF_KEY = "spark.poison.persist"
DEFAULT_LEVEL = "DISK_ONLY"


def persisted(frame):
    """`frame` persisted at the session's `spark.poison.persist` storage level."""
    from pyspark import StorageLevel

    name = str(frame.sparkSession.conf.get(CONF_KEY, DEFAULT_LEVEL)).strip().upper()
    level = getattr(StorageLevel, name, None)
    if not isinstance(level, StorageLevel):
        raise InputError(f"{CONF_KEY}={name}: not a Spark storage level (DISK_ONLY, MEMORY_AND_DISK, ...)")
    return frame.persist(level)
