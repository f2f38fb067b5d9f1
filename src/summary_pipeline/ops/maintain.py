"""Table maintenance (issue 5): compact what runs wrote, drop old snapshots, keep recent runs undoable.

One ``maintain`` is a run like any other: it takes the lock and is a ledger row (mode ``maintain``). It does
three things, one data table after the other:

1. compacts the summary partitions written since the last maintenance (all of them after a full rebuild), and
   latest_summary and the deletes table, wherever a partition has at least two files;
2. rewrites position delete files (left by merge-on-read writes, if a table uses them);
3. expires snapshots older than the oldest one a rollback of the last ``keep_runs`` runs needs, in the data
   tables and the ledger. Older runs can then no longer be rolled back; everything newer still can.

Compaction commits are Iceberg ``replace`` snapshots (the same rows in fewer files), which a rollback or a
settle steps over. They do not carry the run id: Iceberg's procedures commit without the commit properties a
run's writes carry (:func:`~summary_pipeline.store.snapshots.tagged`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from pyspark.sql import SparkSession

from summary_pipeline.config import PipelineConfig
from summary_pipeline.result import RunResult
from summary_pipeline.runner import read_watermark
from summary_pipeline.sql_text import sql_in, sql_name, sql_string, sql_table
from summary_pipeline.store.ledger import ledger_rows
from summary_pipeline.store.protocol import RunGuard, StepHook, data_tables
from summary_pipeline.store.snapshots import NO_SNAPSHOT, snapshot_time, state

__all__ = ["maintain", "procedure_target"]


def procedure_target(spark: SparkSession, name: str) -> tuple[str, str]:
    """(catalog, table) for Iceberg's ``CALL <catalog>.system.<procedure>(table => ...)``.

    A three-part name names its catalog; a two-part one lives in the session's default catalog.
    """
    parts = sql_table(name).split(".")
    if len(parts) >= 3:
        return parts[0], ".".join(parts[1:])
    return spark.conf.get("spark.sql.defaultCatalog", "spark_catalog") or "spark_catalog", name


def _call(spark: SparkSession, procedure: str, table: str, **args: str) -> list[dict[str, Any]]:
    """``CALL`` an Iceberg procedure on ``table``; ``args`` are SQL text the caller built from escaped parts."""
    catalog, target = procedure_target(spark, table)
    extra = "".join(f", {key} => {value}" for key, value in args.items())
    text = f"CALL {sql_name(catalog)}.system.{procedure}(table => {sql_string(target)}{extra})"
    return [r.asDict() for r in spark.sql(text).collect()]


def _months_since_last_maintenance(rows: list[dict[str, Any]]) -> list[str] | None:
    """Summary months the succeeded runs wrote since the last maintenance; None when one replaced the table."""
    months: set[str] = set()
    for row in reversed(rows):
        if row["status"] != "succeeded":
            continue
        if row["mode"] == "maintain":
            break
        if row["mode"] == "rollback":
            return None
        written = json.loads(row["details"] or "{}").get("months_written", [])
        if written is None:
            return None
        months.update(written)
    return sorted(months)


def maintain(spark: SparkSession, cfg: PipelineConfig, result: RunResult, keep_runs: int,
             say: Callable[[str], None], on_step: StepHook | None = None) -> RunResult:
    """Compact, clean up and expire (see the module docstring).

    After each table the run passes the step named like it (summary, latest_summary, deletes, changes of
    :data:`~summary_pipeline.store.protocol.STEPS`), where ``on_step`` sees it as a run's, so tests can kill it
    between tables. Whatever a kill leaves (a table compacted or not, its snapshots expired or not) holds the
    same rows and commits only ``replace`` snapshots, which a settle steps over: the rerun does it all again."""
    with RunGuard(spark, cfg, result, say, on_step) as guard:
        rows = ledger_rows(spark, cfg.ledger_table)
        # The watermark lives in the latest succeeded row: this one carries it on unchanged.
        result.watermark_read = result.watermark_committed = read_watermark(spark, cfg, rows)
        guard.start()
        months = _months_since_last_maintenance(rows)
        runs = [r for r in rows if r["status"] == "succeeded" and r["mode"] not in ("maintain", "rollback")]
        cutoff = _cutoff(spark, runs[-keep_runs:] if keep_runs > 0 else [])
        for table, step in zip(data_tables(cfg), ("summary", "latest_summary", "deletes", "changes"), strict=True):
            if state(spark, table) not in (None, NO_SNAPSHOT):
                where = months if table == cfg.destination_table else None
                if where != []:  # no summary month was written since the last maintenance
                    _compact(spark, table, cfg.month, where, say)
                _expire(spark, table, cutoff, say)
            guard.step(step)
        _expire(spark, cfg.ledger_table, cutoff, say)
        guard.succeed(dt.datetime.now())
    return result


def _compact(spark: SparkSession, table: str, month: str, months: list[str] | None,
             say: Callable[[str], None]) -> None:
    """Rewrite the table's small files (only the partitions of ``months``, when given), then its position
    delete files."""
    where: dict[str, str] = {}
    if months is not None:
        # The months come from the ledger: literals inside a literal, each escaped.
        where = {"where": sql_string(sql_in(month, months))}
    done = _call(spark, "rewrite_data_files", table, options="map('min-input-files', '2')", **where)
    rewritten = sum(int(r.get("rewritten_data_files_count") or 0) for r in done)
    say(f"  {table}: compacted {rewritten} data files")
    _call(spark, "rewrite_position_delete_files", table)


def _expire(spark: SparkSession, table: str, cutoff: dt.datetime | None, say: Callable[[str], None]) -> None:
    """Expire the table's snapshots older than ``cutoff`` (None: keep them all), keeping at least the current."""
    if cutoff is None or state(spark, table) in (None, NO_SNAPSHOT):
        return
    stamp = f"TIMESTAMP '{cutoff:%Y-%m-%d %H:%M:%S.%f}Z'"
    done = _call(spark, "expire_snapshots", table, older_than=stamp, retain_last="1")
    expired = sum(int(v or 0) for r in done for k, v in r.items() if k.startswith("deleted_"))
    say(f"  {table}: expired snapshots before {cutoff:%Y-%m-%d %H:%M:%S} ({expired} files deleted)")


def _cutoff(spark: SparkSession, keep: list[dict[str, Any]]) -> dt.datetime | None:
    """The commit time of the oldest snapshot a rollback of the kept runs needs (None: keep everything)."""
    if not keep:
        return None
    times = []
    for row in keep:
        for table, snapshot in (row["snapshots_before"] or {}).items():
            if snapshot is not None and snapshot != NO_SNAPSHOT:
                at = snapshot_time(spark, table, snapshot)
                if at is None:
                    return None  # already gone: be conservative
                times.append(at)
    return min(times) if times else None
