"""``changes``: the keys a run changed, for downstream systems that want the rows that changed, not a re-read.

Every writing run (but a full rebuild) records, in the change record table (``<destination>_changes``), one
row per row it wrote: (run id, account, month, table, kind), kind one of ``inserted``, ``updated``,
``tombstoned`` (summary) and ``latest moved`` (latest_summary). The record is written, staged and published
with the tables, so it exists exactly when the run's rows do: a failed run leaves none, and rolling a run back
removes its record with its rows. Downstream joins it with the tables (docs/operations.md, "What changed").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from summary_pipeline.config import PipelineConfig
from summary_pipeline.core.prepare import is_active
from summary_pipeline.errors import SummaryPipelineError
from summary_pipeline.store.ledger import ledger_rows
from summary_pipeline.store.tables import table_exists

__all__ = ["INSERTED", "LATEST_MOVED", "TOMBSTONED", "UPDATED", "ChangeRecord", "change_rows", "read_changes"]

#: The change record's kinds (docs/operations.md, "What changed").
INSERTED, UPDATED, TOMBSTONED, LATEST_MOVED = "inserted", "updated", "tombstoned", "latest moved"


def change_rows(cfg: PipelineConfig, summary: DataFrame, latest: DataFrame, existed: DataFrame | None,
                run_id: str) -> DataFrame:
    """(run id, account, month, table, kind) of every row a run wrote (``summary`` and ``latest`` rows).

    A summary row is ``tombstoned`` when it is a deleted month's tombstone, else ``updated`` when its (account,
    month) is in ``existed`` (the summary rows the run read before writing: every row it rewrites lies in the
    windows it read, and a forward or new account's rows are new), else ``inserted``; each latest_summary row
    written is ``latest moved``."""
    keys = [cfg.key, cfg.month]
    written = summary.select(*keys, is_active(cfg).alias("_sp_active"))
    was = F.lit(False)
    if existed is not None:
        written = written.join(existed.select(*keys).withColumn("_sp_was", F.lit(True)), keys, "left")
        was = F.coalesce(F.col("_sp_was"), F.lit(False))
    kind = (F.when(~F.coalesce(F.col("_sp_active"), F.lit(False)), F.lit(TOMBSTONED))
            .when(was, F.lit(UPDATED)).otherwise(F.lit(INSERTED)))
    rows = written.select(*keys, F.lit("summary").alias("table_name"), kind.alias("kind"),
                          (~was).alias("_sp_new")).unionByName(
        latest.select(*keys, F.lit("latest_summary").alias("table_name"), F.lit(LATEST_MOVED).alias("kind"),
                      F.lit(None).cast("boolean").alias("_sp_new")))
    return rows.select(F.lit(run_id).alias("run_id"), *rows.columns)


@dataclass
class ChangeRecord:
    """A run's change record: its counts per (table, kind), and its rows (all, or the first ``limit``)."""

    run_id: str
    mode: str
    status: str
    table: str
    counts: dict[str, int] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    note: str | None = None

    @property
    def total(self) -> int:
        """Rows in the record."""
        return sum(self.counts.values())


def read_changes(spark: SparkSession, cfg: PipelineConfig, run_id: str, limit: int | None = None) -> ChangeRecord:
    """The change record of ``run_id`` (its first ``limit`` rows, or all with None).

    Raises SummaryPipelineError when the ledger has no such run."""
    run = next((r for r in ledger_rows(spark, cfg.ledger_table) if r["run_id"] == run_id), None)
    if run is None:
        raise SummaryPipelineError(f"no run {run_id} in {cfg.ledger_table}; `summary-pipeline runs` lists them")
    record = ChangeRecord(run_id, run["mode"], run["status"], cfg.changes_table)
    if run["mode"] == "initial":
        record.note = "a full rebuild (initial): every row may have changed, so it records no keys; read the tables"
    elif run["status"] == "rolled_back":
        record.note = "rolled back: its changes were undone, and its record with them"
    elif run["status"] != "succeeded":
        record.note = f"{run['status']}: it published nothing, so it changed nothing"
    if not table_exists(spark, cfg.changes_table):
        return record
    spark.catalog.refreshTable(cfg.changes_table)
    rows = spark.table(cfg.changes_table).where(F.col("run_id") == run_id)
    record.counts = {f"{r['table_name']} {r['kind']}": int(r["count"])
                     for r in rows.groupBy("table_name", "kind").count().collect()}
    ordered = rows.orderBy("table_name", cfg.key, cfg.month)
    record.rows = [r.asDict() for r in (ordered.limit(limit) if limit is not None else ordered).collect()]
    return record
