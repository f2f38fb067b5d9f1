"""Orchestration of one run: choose the input for the mode, compute, write, report.

The math lives in :mod:`prepare`, :mod:`facts` and :mod:`history`; this module only decides what to read, runs
the few Spark actions a run needs (counts for the report, the writes) and records the figures.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from summary_pipeline.config import PipelineConfig
from summary_pipeline.errors import NotReadyError, TablesNotEmptyError
from summary_pipeline.facts import KIND, KIND_ACTIVE, KIND_IGNORED_DELETE, KIND_TOMBSTONE, select_facts
from summary_pipeline.history import latest_rows, summary_rows
from summary_pipeline.preflight import check_against_source, read_source
from summary_pipeline.prepare import REJECT, prepare
from summary_pipeline.result import RunOptions, RunResult
from summary_pipeline.tables import current_snapshot, ensure_namespace, is_empty, replace_table

__all__ = ["Progress", "run"]

log = logging.getLogger(__name__)

#: Receives one human-readable progress line at a time (the console prints them; the default logs them).
Progress = Callable[[str], None]


def _log_progress(line: str) -> None:
    if line.strip():
        log.info(line.strip())


@contextmanager
def _timed(result: RunResult, phase: str) -> Iterator[None]:
    start = time.monotonic()
    try:
        yield
    finally:
        result.timings[phase] = round(time.monotonic() - start, 3)


def _count_rejects(prepared: DataFrame) -> tuple[int, dict[str, int]]:
    """All rows read, and rejected rows per reason, in one Spark job."""
    rows = prepared.groupBy(REJECT).count().collect()
    total = sum(int(r["count"]) for r in rows)
    return total, {str(r[REJECT]): int(r["count"]) for r in rows if r[REJECT] is not None}


def _count_initial_cases(facts: DataFrame, cfg: PipelineConfig, result: RunResult) -> None:
    """Fill the case counts of a full rebuild: every account is new (Case I once, Case IV for later months)."""
    kind = F.col(KIND)
    row = facts.agg(
        F.sum("_sp_versions").alias("versions"),
        F.count(F.when(kind == KIND_ACTIVE, 1)).alias("active"),
        F.count(F.when(kind == KIND_TOMBSTONE, 1)).alias("tombstones"),
        F.count(F.when(kind == KIND_IGNORED_DELETE, 1)).alias("ignored"),
        F.countDistinct(F.when(kind == KIND_ACTIVE, F.col(cfg.key))).alias("new_accounts"),
        F.countDistinct(F.when(kind != KIND_IGNORED_DELETE, F.col(cfg.key))).alias("accounts"),
        F.min(F.when(kind != KIND_IGNORED_DELETE, F.col(cfg.month))).alias("first"),
        F.max(F.when(kind != KIND_IGNORED_DELETE, F.col(cfg.month))).alias("last"),
        F.count(F.lit(1)).alias("keys"),
    ).collect()[0]
    result.case_i = int(row["new_accounts"] or 0)
    result.case_iv = int(row["active"] or 0) - result.case_i
    result.soft_deletes_applied = int(row["tombstones"] or 0)
    result.soft_deletes_ignored = int(row["ignored"] or 0)
    result.duplicates_dropped = int(row["versions"] or 0) - int(row["keys"] or 0)
    result.accounts = int(row["accounts"] or 0)
    result.first_month, result.last_month = row["first"], row["last"]


def _run_initial(spark: SparkSession, cfg: PipelineConfig, options: RunOptions, source: DataFrame,
                 result: RunResult, progress: Progress) -> None:
    """Full rebuild (SPEC 6 ``initial``): R := every version (of months A..B); replace both tables."""
    tables = (cfg.destination_table, cfg.latest_history_table)
    if not options.replace and not all(is_empty(spark, t) for t in tables):
        raise TablesNotEmptyError(
            f"initial refuses to replace {cfg.destination_table} / {cfg.latest_history_table}: they already "
            "hold data. Run incremental to add new versions, or pass --replace to rebuild them from the source."
        )
    batch = source
    if options.start_month:
        batch = batch.where(F.col(cfg.month) >= options.start_month)
    if options.end_month:
        batch = batch.where(F.col(cfg.month) <= options.end_month)
    span = f" for months {options.start_month or '...'} to {options.end_month or '...'}" if (
        options.start_month or options.end_month) else ""
    progress(f"Building from every version in {cfg.source_table}{span}")
    prepared = prepare(batch, cfg)
    with _timed(result, "read"):
        result.source_rows, result.rejected = _count_rejects(prepared)
    progress(f"New records to process: {result.source_rows:,}")
    if result.rejected:
        progress(f"Rejected rows: {result.rejected_total:,} "
                 + ", ".join(f"{reason}: {n:,}" for reason, n in sorted(result.rejected.items())))
    valid = prepared.where(F.col(REJECT).isNull()).repartition(cfg.key)
    facts = select_facts(valid, cfg).persist()
    try:
        progress("")
        progress("Classifying records...")
        with _timed(result, "classify"):
            _count_initial_cases(facts, cfg, result)
        progress(f"Case I (New accounts): {result.case_i:,}")
        progress(f"Case IV (New accounts' history months): {result.case_iv:,}")
        progress(f"Soft deletes: {result.soft_deletes_applied:,} applied, "
                 f"{result.soft_deletes_ignored:,} ignored")
        progress(f"Duplicate versions dropped: {result.duplicates_dropped:,}")
        if options.dry_run:
            result.summary_rows_written = result.case_i + result.case_iv + result.soft_deletes_applied
            result.latest_rows_written = result.accounts
            return
        progress("")
        progress("Building history arrays...")
        summary = summary_rows(facts.where(F.col(KIND) != KIND_IGNORED_DELETE), cfg)
        for table in tables:
            ensure_namespace(spark, table)
        with _timed(result, "write_summary"):
            replace_table(summary, cfg.destination_table, result.run_id, partition_by=cfg.month)
        progress(f"  {cfg.destination_table} written")
    finally:
        facts.unpersist()
    with _timed(result, "write_latest"):
        replace_table(latest_rows(spark.table(cfg.destination_table), cfg), cfg.latest_history_table,
                      result.run_id)
    progress(f"  {cfg.latest_history_table} written")
    for name, table in (("summary", cfg.destination_table), ("latest_summary", cfg.latest_history_table)):
        snap = current_snapshot(spark, table) or {}
        result.snapshots[name] = int(snap["snapshot-id"]) if "snapshot-id" in snap else None
        written = int(snap.get("added-records", 0))
        if name == "summary":
            result.summary_rows_written = written
        else:
            result.latest_rows_written = written


def run(spark: SparkSession, cfg: PipelineConfig, options: RunOptions, *, progress: Progress | None = None,
        config_name: str = "config") -> RunResult:
    """Run one mode end to end and return its figures.

    Raises:
        SummaryPipelineError: for every failure a user can act on (bad config against the source, missing
            source, tables not ready or not empty).
    """
    say = progress or _log_progress
    result = RunResult(run_id=uuid.uuid4().hex[:16], mode=options.mode, dry_run=options.dry_run,
                       ignored_config_keys=cfg.ignored_keys())
    start = time.monotonic()
    source = read_source(spark, cfg)
    check_against_source(source, cfg, config_name)
    if options.mode != "initial":
        raise NotReadyError(f"mode {options.mode!r} is not available yet in this version; run --mode initial")
    _run_initial(spark, cfg, options, source, result, say)
    result.timings["total"] = round(time.monotonic() - start, 3)
    result.status = "planned" if options.dry_run else "succeeded"
    return result
