"""Reading and writing the pipeline's Iceberg tables: existence, emptiness, atomic replacement, snapshots.

Each write is one Iceberg commit that carries the run id in its snapshot summary, so every snapshot can be
traced back to the run that made it.
"""

from __future__ import annotations

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

__all__ = [
    "RUN_ID_PROPERTY",
    "current_snapshot",
    "ensure_namespace",
    "is_empty",
    "replace_table",
    "snapshot_ids",
    "table_exists",
]

RUN_ID_PROPERTY = "summary-pipeline.run-id"

_PROPERTIES = {
    "format-version": "2",
    "write.distribution-mode": "hash",
    "write.parquet.compression-codec": "zstd",
}


def table_exists(spark: SparkSession, name: str) -> bool:
    """True when the table resolves in the session's catalogs."""
    try:
        spark.table(name)
    except AnalysisException:
        return False
    return True


def is_empty(spark: SparkSession, name: str) -> bool:
    """True when the table is missing or holds no row (reads at most one row)."""
    return not table_exists(spark, name) or not spark.table(name).limit(1).collect()


def ensure_namespace(spark: SparkSession, name: str) -> None:
    """Create the namespace of a ``[catalog.]namespace.table`` name when it is missing."""
    parts = name.split(".")
    if len(parts) >= 2:
        spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {'.'.join(parts[:-1])}")


def replace_table(df: DataFrame, name: str, run_id: str, partition_by: str | None = None) -> None:
    """Create or atomically replace ``name`` with ``df`` in one commit (readers see old or new, never half)."""
    writer = df.writeTo(name).using("iceberg").option(f"snapshot-property.{RUN_ID_PROPERTY}", run_id)
    for key, value in _PROPERTIES.items():
        writer = writer.tableProperty(key, value)
    if partition_by:
        writer = writer.partitionedBy(F.col(partition_by))
    writer.createOrReplace()


def snapshot_ids(spark: SparkSession, name: str) -> list[int]:
    """Every snapshot id of a table, oldest first (empty when the table is missing)."""
    if not table_exists(spark, name):
        return []
    rows = spark.sql(f"SELECT snapshot_id FROM {name}.snapshots ORDER BY committed_at").collect()
    return [int(r[0]) for r in rows]


def current_snapshot(spark: SparkSession, name: str) -> dict[str, str] | None:
    """The current snapshot's summary (Iceberg's counters, our run id), or None for a missing/empty table."""
    if not table_exists(spark, name):
        return None
    rows = spark.sql(
        f"SELECT s.snapshot_id, s.summary FROM {name}.snapshots s JOIN {name}.history h "
        "ON s.snapshot_id = h.snapshot_id WHERE h.is_current_ancestor ORDER BY h.made_current_at DESC LIMIT 1"
    ).collect()
    if not rows:
        return None
    summary = dict(rows[0]["summary"] or {})
    summary["snapshot-id"] = str(rows[0]["snapshot_id"])
    return summary
