"""Table maintenance (issue 5): compact what runs wrote, drop old snapshots, keep recent runs undoable.

One ``maintain`` is a run like any other: it takes the lock, is a ledger row (mode ``maintain``) and tags its
commits. It does three things:

1. compacts the summary partitions written since the last maintenance (all of them after a full rebuild), and
   latest_summary and the deletes table, wherever a partition has at least two files;
2. rewrites position delete files (left by merge-on-read writes, if a table uses them);
3. expires snapshots older than the oldest one a rollback of the last ``keep_runs`` runs needs, in the data
   tables and the ledger. Older runs can then no longer be rolled back; everything newer still can.

Compaction commits are Iceberg ``replace`` snapshots (the same rows in fewer files), which a rollback or a
settle steps over.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from functools import partial
from typing import Any

from pyspark.sql import SparkSession

from summary_pipeline.config import PipelineConfig
from summary_pipeline.result import RunResult
from summary_pipeline.runner import read_watermark
from summary_pipeline.store.ledger import ledger_rows
from summary_pipeline.store.protocol import RunGuard, data_tables
from summary_pipeline.store.snapshots import NO_SNAPSHOT, snapshot_time, state

__all__ = ["maintain", "procedure_target"]


def procedure_target(spark: SparkSession, name: str) -> tuple[str, str]:
    """(catalog, table) for Iceberg's ``CALL <catalog>.system.<procedure>(table => ...)``.

    A three-part name names its catalog; a two-part one lives in the session's default catalog.
    """
    parts = name.split(".")
    if len(parts) >= 3:
        return parts[0], ".".join(parts[1:])
    return spark.conf.get("spark.sql.defaultCatalog", "spark_catalog") or "spark_catalog", name


def _call(spark: SparkSession, procedure: str, table: str, **args: str) -> list[dict[str, Any]]:
    catalog, target = procedure_target(spark, table)
    extra = "".join(f", {key} => {value}" for key, value in args.items())
    return [r.asDict() for r in spark.sql(f"CALL {catalog}.system.{procedure}(table => '{target}'{extra})").collect()]


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
             say: Callable[[str], None]) -> RunResult:
    """Compact, clean up and expire (see the module docstring)."""
    with RunGuard(spark, cfg, result, say) as guard:
        rows = ledger_rows(spark, cfg.ledger_table)
        # The watermark lives in the latest succeeded row: this one carries it on unchanged.
        result.watermark_read = result.watermark_committed = read_watermark(spark, cfg, rows)
        guard.start()
        months = _months_since_last_maintenance(rows)
        compact = {"options": "map('min-input-files', '2')"}
        for table in data_tables(cfg):
            if state(spark, table) in (None, NO_SNAPSHOT):
                continue
            where: dict[str, str] = {}
            if table == cfg.destination_table and months is not None:
                if not months:
                    continue
                listed = ", ".join(f"'{m}'" for m in months)
                where = {"where": f'"{cfg.month} IN ({listed})"'}
            done = guard.tagged(partial(_call, spark, "rewrite_data_files", table, **compact, **where))
            rewritten = sum(int(r.get("rewritten_data_files_count") or 0) for r in done)
            say(f"  {table}: compacted {rewritten} data files")
            guard.tagged(partial(_call, spark, "rewrite_position_delete_files", table))
        runs = [r for r in rows if r["status"] == "succeeded" and r["mode"] not in ("maintain", "rollback")]
        keep = runs[-keep_runs:] if keep_runs > 0 else []
        cutoff = _cutoff(spark, keep)
        if cutoff is not None:
            stamp = f"TIMESTAMP '{cutoff:%Y-%m-%d %H:%M:%S.%f}Z'"
            for table in (*data_tables(cfg), cfg.ledger_table):
                if state(spark, table) in (None, NO_SNAPSHOT):
                    continue
                done = _call(spark, "expire_snapshots", table, older_than=stamp, retain_last="1")
                expired = sum(int(v or 0) for r in done for k, v in r.items() if k.startswith("deleted_"))
                say(f"  {table}: expired snapshots before {cutoff:%Y-%m-%d %H:%M:%S} ({expired} files deleted)")
        guard.succeed(dt.datetime.now())
    return result


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
