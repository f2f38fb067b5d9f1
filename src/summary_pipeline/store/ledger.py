"""The run ledger: one row per run, in an Iceberg table beside the outputs (``<destination>_runs`` by default).

A row is written when a run starts (status ``running``, with every table's snapshot id before it) and again
when it ends (``succeeded`` or ``failed``, with the snapshot ids after it, the watermark it committed, its
counts and timings). The ``succeeded`` write is the run's commit point: the committed watermark is the one in
the latest succeeded row, and a reader who reads the tables at that row's ``snapshots_after`` sees the state
the run left, both tables in step. A row still ``running`` whose run is gone marks work to undo.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

from pyspark.errors import AnalysisException
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from summary_pipeline.result import RunResult
from summary_pipeline.sql_text import sql_string, sql_table
from summary_pipeline.store.tables import ensure_namespace, merge, table_exists

__all__ = ["COLUMNS", "committed_watermark", "ensure_ledger", "ledger_rows", "mark", "record"]

#: The ledger's columns and their Spark types: the :class:`RunResult` fields marked ``stored``, in their order,
#: then ``details``, the whole record as JSON (what ``summary-pipeline runs --output json`` shows).
#: The RunResult fields the ledger keeps, by column name (see result.stored).
_STORED = {f.metadata["column"] or f.name: f for f in dataclasses.fields(RunResult) if "ledger" in f.metadata}
COLUMNS: tuple[tuple[str, str], ...] = (
    *((column, f.metadata["ledger"]) for column, f in _STORED.items()),
    ("details", "string"),
)
_SCHEMA = ", ".join(f"{name} {kind}" for name, kind in COLUMNS)

_PROPERTIES = {
    "format-version": "2",
    # Every run and every lock heartbeat commits new metadata: keep only the recent files.
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "50",
}


def ensure_ledger(spark: SparkSession, table: str) -> None:
    """Create the ledger table when it is missing, or add the columns a newer release records (a run racing to
    do the same is fine)."""
    if table_exists(spark, table):
        missing = [f"{name} {kind}" for name, kind in COLUMNS if name not in spark.table(table).columns]
        if missing:
            try:
                spark.sql(f"ALTER TABLE {sql_table(table)} ADD COLUMNS ({', '.join(missing)})")
            except AnalysisException:
                spark.catalog.refreshTable(table)
                if any(c.split()[0] not in spark.table(table).columns for c in missing):
                    raise
        return
    ensure_namespace(spark, table)
    props = ", ".join(f"{sql_string(k)} = {sql_string(v)}" for k, v in _PROPERTIES.items())
    try:
        spark.sql(f"CREATE TABLE {sql_table(table)} ({_SCHEMA}) USING iceberg TBLPROPERTIES ({props})")
    except AnalysisException:
        if not table_exists(spark, table):
            raise


def _stored(kind: str, value: Any) -> Any:
    """A field's value as its ledger column holds it: a dict of counts as its total (rejected rows per reason),
    any other dict under a string column as JSON (the run's arguments), maps with their values cast."""
    if isinstance(value, dict):
        if kind == "bigint":
            return sum(value.values())
        if kind == "string":
            return json.dumps(value, sort_keys=True)
        cast = float if kind.endswith("double>") else int
        return {k: None if v is None else cast(v) for k, v in value.items()}
    return value


def _row(result: RunResult) -> dict[str, Any]:
    """The run's ledger row (see :data:`COLUMNS`)."""
    row = {column: _stored(f.metadata["ledger"], getattr(result, f.name)) for column, f in _STORED.items()}
    return {**row, "details": json.dumps(result.as_dict(), default=str, sort_keys=True)}


def record(spark: SparkSession, table: str, result: RunResult, only_if_running: bool = False,
           new: bool = False) -> None:
    """Write (or overwrite) the run's row: one small MERGE commit on the ledger.

    ``only_if_running`` leaves the row alone unless it still says ``running`` (the commit point: another run
    may have judged this one dead and marked it failed meanwhile). ``new`` says the row cannot exist yet (the
    run's first record): it is appended, which reads nothing, where a MERGE would scan the ledger to join it.
    """
    rows = spark.createDataFrame([_row(result)], schema=_SCHEMA)
    if new:
        rows.select(*spark.table(table).columns).writeTo(table).append()
        return
    merge(spark, rows, table, ["run_id"], matched_if="t.status = 'running'" if only_if_running else None)


def mark(spark: SparkSession, table: str, run_ids: list[str], status: str, error: str | None = None,
         snapshots_after: dict[str, int | None] | None = None) -> None:
    """Set the status (and error text, and snapshots after) of other runs' rows, e.g. a dead run this run
    undid, or a dead rollback this run finished. Every value is an escaped literal (an error text may hold
    anything)."""
    ids = ", ".join(sql_string(r) for r in run_ids)
    note = "NULL" if error is None else sql_string(error)
    after = ""
    if snapshots_after is not None:
        pairs = ", ".join(f"{sql_string(t)}, CAST({'NULL' if v is None else int(v)} AS BIGINT)"
                          for t, v in snapshots_after.items())
        after = f", snapshots_after = map({pairs})"
    spark.sql(f"UPDATE {sql_table(table)} SET status = {sql_string(status)}, error = coalesce({note}, error), "
              f"finished_at = coalesce(finished_at, current_timestamp()){after} WHERE run_id IN ({ids})")


def ledger_rows(spark: SparkSession, table: str, status: str | None = None) -> list[dict[str, Any]]:
    """The ledger's rows (all, or those with ``status``), oldest first; empty when there is no ledger."""
    if not table_exists(spark, table):
        return []
    spark.catalog.refreshTable(table)
    df = spark.table(table)
    if status is not None:
        df = df.where(F.col("status") == status)
    # Sorted here, not by Spark: a sort is a shuffle and two more jobs, on a table of one row per run.
    rows = [r.asDict() for r in df.collect()]
    return sorted(rows, key=lambda r: (r["started_at"] is not None, r["started_at"] or dt.datetime.min, r["run_id"]))


def committed_watermark(rows: list[dict[str, Any]]) -> dt.datetime | None:
    """The watermark the latest succeeded run committed (None when none did), from ledger rows."""
    rows = [r for r in rows if r["status"] == "succeeded"]
    if not rows:
        return None
    last = max(rows, key=lambda r: (r["finished_at"] or dt.datetime.min, r["started_at"] or dt.datetime.min))
    watermark = last["watermark_committed"]
    return watermark if isinstance(watermark, dt.datetime) else None
