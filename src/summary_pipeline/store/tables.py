"""Reading and writing the pipeline's Iceberg tables with Spark: existence, emptiness, atomic replacement, MERGE.

Each write is one Iceberg commit; the runner makes it inside :func:`summary_pipeline.store.snapshots.tagged`, so the
snapshot carries the run id.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from summary_pipeline.sql_text import sql_in, sql_name, sql_table

__all__ = [
    "ensure_namespace",
    "is_empty",
    "location",
    "merge",
    "merge_sql",
    "partition_spec",
    "replace_table",
    "snapshot_ids",
    "table_exists",
    "table_properties_for",
]

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


def location(spark: SparkSession, config_name: str) -> str:
    """Where a run looked for its tables, for messages about a missing one: the catalog, its warehouse
    (absolute, when it is a local directory) and the config that names the tables."""
    catalog = spark.conf.get("spark.sql.defaultCatalog", "spark_catalog")
    warehouse = spark.conf.get(f"spark.sql.catalog.{catalog}.warehouse", None)
    if warehouse and "://" not in warehouse:
        warehouse = os.path.abspath(warehouse.removeprefix("file:"))
    where = f"catalog {catalog}" + (f" (warehouse {warehouse})" if warehouse else "")
    return f"{where}, as named by {config_name}"


def is_empty(spark: SparkSession, name: str) -> bool:
    """True when the table is missing or holds no row (reads at most one row)."""
    return not table_exists(spark, name) or not spark.table(name).limit(1).collect()


def ensure_namespace(spark: SparkSession, name: str) -> None:
    """Create the namespace of a ``[catalog.]namespace.table`` name when it is missing."""
    parts = name.split(".")
    if len(parts) >= 2:
        spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {sql_table('.'.join(parts[:-1]))}")


def table_properties_for(properties: Mapping[str, str] | None = None) -> dict[str, str]:
    """The properties the pipeline gives a table it creates: its defaults, then ``properties``."""
    return {**_PROPERTIES, **(properties or {})}


def partition_spec(partition_by: str | None, buckets: int = 0, bucket_by: str | None = None
                   ) -> list[tuple[str, str]]:
    """The partition spec :func:`replace_table` gives, as (source column, Iceberg transform) pairs.

    >>> partition_spec("month", 16, "acct")
    [('month', 'identity'), ('acct', 'bucket[16]')]
    """
    spec = [(partition_by, "identity")] if partition_by else []
    if buckets and bucket_by:
        spec.append((bucket_by, f"bucket[{buckets}]"))
    return spec


def replace_table(df: DataFrame, name: str, partition_by: str | None = None, *, buckets: int = 0,
                  bucket_by: str | None = None, properties: Mapping[str, str] | None = None) -> None:
    """Create or atomically replace ``name`` with ``df`` in one commit (readers see old or new, never half).

    The table is partitioned by the identity of ``partition_by`` and then, when ``buckets`` > 0, by
    ``bucket(buckets, bucket_by)``; ``properties`` are added to the pipeline's defaults.
    """
    writer = df.writeTo(name).using("iceberg")
    for key, value in table_properties_for(properties).items():
        writer = writer.tableProperty(key, value)
    spec = [F.col(partition_by)] if partition_by else []
    if buckets and bucket_by:
        spec.append(F.bucket(buckets, F.col(bucket_by)))
    if spec:
        writer = writer.partitionedBy(*spec)
    writer.createOrReplace()


def snapshot_ids(spark: SparkSession, name: str) -> list[int]:
    """Every snapshot id of a table, oldest first (empty when the table is missing)."""
    if not table_exists(spark, name):
        return []
    rows = spark.sql(f"SELECT snapshot_id FROM {sql_table(name)}.snapshots ORDER BY committed_at").collect()
    return [int(r[0]) for r in rows]


def merge_sql(target: str, source_view: str, columns: list[str], keys: list[str], *,
              months: tuple[str, list[str]] | None = None, remove_flag: str | None = None,
              update: bool = True, matched_if: str | None = None, null_safe: bool = False) -> str:
    """The MERGE statement that upserts ``source_view`` into ``target`` by ``keys``.

    ``months`` = (month column, months) adds ``t.<month> IN (...)`` so Iceberg prunes the target's partitions;
    ``remove_flag`` names a boolean source column whose true rows delete their match instead;
    ``update=False`` only inserts rows that have no match (an append that never duplicates);
    ``matched_if`` updates a match only when that condition holds.

    Keys are compared with ``=`` (the pipeline's own keys are never NULL), which lets Spark use the target's
    buckets (a storage-partitioned join) instead of shuffling the table; ``null_safe`` compares them with
    ``<=>``, for the quarantine, whose rows may lack a key. Names are backquoted, the months are escaped string
    literals, and ``target`` must be a table name (:func:`~summary_pipeline.sql_text.sql_table`).

    >>> print(merge_sql("db.t", "src", ["k", "v"], ["k"]))
    MERGE INTO db.t t USING src s
    ON t.`k` = s.`k`
    WHEN MATCHED THEN UPDATE SET t.`v` = s.`v`
    WHEN NOT MATCHED THEN INSERT (`k`, `v`) VALUES (s.`k`, s.`v`)
    """
    equals = "<=>" if null_safe else "="
    on = " AND ".join(f"t.{sql_name(k)} {equals} s.{sql_name(k)}" for k in keys)
    if months is not None:
        column, values = months
        on += f" AND t.{sql_in(column, values)}"
    sets = ", ".join(f"t.{sql_name(c)} = s.{sql_name(c)}" for c in columns if c not in keys)
    names = ", ".join(sql_name(c) for c in columns)
    inserted = ", ".join(f"s.{sql_name(c)}" for c in columns)
    lines = [f"MERGE INTO {sql_table(target)} t USING {sql_table(source_view)} s", f"ON {on}"]
    if remove_flag:
        lines.append(f"WHEN MATCHED AND s.{sql_name(remove_flag)} THEN DELETE")
    if update:
        condition = f" AND {matched_if}" if matched_if else ""
        lines.append(f"WHEN MATCHED{condition} THEN UPDATE SET {sets}")
    unless = f" AND NOT s.{sql_name(remove_flag)}" if remove_flag else ""
    lines.append(f"WHEN NOT MATCHED{unless} THEN INSERT ({names}) VALUES ({inserted})")
    return "\n".join(lines)


def merge(spark: SparkSession, df: DataFrame, target: str, keys: list[str], *, months: list[str] | None = None,
          month_column: str | None = None, remove_flag: str | None = None, update: bool = True,
          matched_if: str | None = None, null_safe: bool = False) -> None:
    """Upsert ``df`` into ``target`` in one Iceberg commit (the MERGE text comes from :func:`merge_sql`)."""
    view = f"_sp_merge_{abs(hash(target))}"
    df.createOrReplaceTempView(view)
    columns = [c for c in spark.table(target).columns]
    month_filter = (month_column, months) if months is not None and month_column else None
    try:
        spark.sql(merge_sql(target, view, columns, keys, months=month_filter, remove_flag=remove_flag,
                            update=update, matched_if=matched_if, null_safe=null_safe))
    finally:
        spark.catalog.dropTempView(view)
