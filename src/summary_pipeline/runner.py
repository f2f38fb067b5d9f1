"""Orchestration of one run, top-down: guard, batch for the mode, prepare, plan, read state, decide, rebuild,
write, record.

The math lives in :mod:`summary_pipeline.core`; what a run reads is decided by :mod:`summary_pipeline.plan`.
This module runs the few Spark actions a run needs (counts for the report, the writes) and records the figures.

Every run that writes goes through :class:`~summary_pipeline.store.protocol.RunGuard` (lock, ledger, undo), so
a run stopped at any instant is repaired by running the same command again. A dry run reads and writes nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from summary_pipeline.config import PipelineConfig
from summary_pipeline.core.engine import (
    CLASS,
    FORWARD,
    MIXED,
    NEW,
    Computed,
    State,
    decide,
    month_name,
    outputs,
    rebuilt_rows,
)
from summary_pipeline.core.evolve import (
    COLUMNS,
    REBUILD,
    EvolvePlan,
    evolved,
    misfits,
    new_histories,
    plan_evolve,
    with_inferred,
)
from summary_pipeline.core.facts import (
    FROM_BATCH,
    KIND,
    KIND_ACTIVE,
    KIND_IGNORED_DELETE,
    KIND_TOMBSTONE,
)
from summary_pipeline.core.history import LAST_MONTH
from summary_pipeline.core.prepare import INVALID_DATES, MONTH_INDEX, RAW, REJECT, count_of, prepare
from summary_pipeline.definition import changes, check_definition, config_of, definition, recorded_definition
from summary_pipeline.errors import NotReadyError, RejectThresholdError, TablesNotEmptyError
from summary_pipeline.metrics import job_group, spark_figures
from summary_pipeline.modes import check_arguments, select_batch
from summary_pipeline.ops.audit import Staged, audit
from summary_pipeline.ops.changes import change_rows
from summary_pipeline.plan import make_plan, materialize, read_older, read_state
from summary_pipeline.preflight import check_against_source, pin_source
from summary_pipeline.progress import phase
from summary_pipeline.result import RunOptions, RunResult
from summary_pipeline.sql_text import sql_string, sql_table
from summary_pipeline.store.ledger import committed_watermark, ledger_rows
from summary_pipeline.store.lock import host_name
from summary_pipeline.store.protocol import RunGuard, StepHook, mark_definition
from summary_pipeline.store.refs import tag
from summary_pipeline.store.snapshots import NO_SNAPSHOT, partition_fields, table_properties
from summary_pipeline.store.snapshots import state as snapshot_now
from summary_pipeline.store.tables import (
    ensure_namespace,
    is_empty,
    location,
    merge,
    partition_spec,
    replace_table,
    table_exists,
    table_properties_for,
)

__all__ = ["Progress", "evolve", "read_watermark", "run"]

log = logging.getLogger(__name__)

#: Receives one human-readable progress line at a time (the console prints them; the default logs them).
Progress = Callable[[str], None]

def _log_progress(line: str) -> None:
    if line.strip():
        log.info(line.strip())


@contextmanager
def _timed(result: RunResult, name: str) -> Iterator[None]:
    """Time a phase of the run into ``result.timings`` (and name it for progress lines)."""
    start = time.monotonic()
    try:
        with phase(name.replace("_", " ")):
            yield
    finally:
        result.timings[name] = round(time.monotonic() - start, 3)


def read_watermark(spark: SparkSession, cfg: PipelineConfig,
                   ledger: list[dict[str, Any]] | None = None) -> dt.datetime | None:
    """The watermark the ledger's latest succeeded run committed; failing that (no ledger: tables built by
    another tool, or a ranged initial), the greatest ``base_ts`` in summary; None when summary is empty.

    ``ledger`` is the ledger's rows when the caller has read them already (a run reads them once)."""
    watermark = committed_watermark(ledger if ledger is not None else ledger_rows(spark, cfg.ledger_table))
    if watermark is not None:
        return watermark
    if is_empty(spark, cfg.destination_table):
        return None
    found = spark.table(cfg.destination_table).agg(F.max(cfg.ts)).collect()[0][0]
    return found if isinstance(found, dt.datetime) else None


def _count_read(prepared: DataFrame, result: RunResult) -> dt.datetime | None:
    """Rows read, rejected rows per reason and dates made NULL (into ``result``), and the greatest timestamp
    read, in one Spark job."""
    rows = prepared.groupBy(REJECT).agg(F.count(F.lit(1)).alias("n"), F.max("_sp_ts").alias("ts"),
                                        F.sum(INVALID_DATES).alias("dates")).collect()
    result.source_rows = sum(int(r["n"]) for r in rows)
    result.rejected = {str(r[REJECT]): int(r["n"]) for r in rows if r[REJECT] is not None}
    result.metrics["invalid_dates"] = sum(int(r["dates"] or 0) for r in rows)
    return max((r["ts"] for r in rows if r["ts"] is not None), default=None)


def _quarantine(spark: SparkSession, cfg: PipelineConfig, prepared: DataFrame, run_id: str) -> None:
    """Store rejected source rows with their reason; the same rejected row written twice stays one entry
    (so a rerun after a crash adds nothing: the quarantine is a log and is never undone)."""
    rows = (prepared.where(F.col(REJECT).isNotNull())
            .select(F.col(RAW + ".*"), F.col(REJECT).alias("reject_reason")))
    keys = rows.columns
    rows = rows.dropDuplicates(keys).select("*", F.lit(run_id).alias("run_id"),
                                            F.current_timestamp().alias("quarantined_at"))
    ensure_namespace(spark, cfg.quarantine)
    if table_exists(spark, cfg.quarantine):
        merge(spark, rows, cfg.quarantine, keys, update=False, null_safe=True)
    else:
        replace_table(rows, cfg.quarantine)


def _rejected_detail(result: RunResult) -> str:
    """Rejected rows per reason, for messages: ``NULL base_ts: 1, ...``."""
    return ", ".join(f"{reason}: {count:,}" for reason, count in sorted(result.rejected.items()))


def _check_rejects(cfg: PipelineConfig, result: RunResult) -> None:
    """Stop before any write to summary or latest_summary when more rows were rejected than configured."""
    n, total = result.rejected_total, result.source_rows
    over_rows = cfg.max_rejected_rows is not None and n > cfg.max_rejected_rows
    over_fraction = cfg.max_rejected_fraction is not None and total > 0 and n / total > cfg.max_rejected_fraction
    if over_rows or over_fraction:
        raise RejectThresholdError(
            f"{n:,} of {total:,} source rows were rejected ({_rejected_detail(result)}), more than the config allows "
            f"(max_rejected_rows={cfg.max_rejected_rows}, max_rejected_fraction={cfg.max_rejected_fraction}); "
            f"nothing was written to {cfg.destination_table} or {cfg.latest_history_table}. The rows are in "
            f"{cfg.quarantine}: fix them at the source, or raise the limit.",
            rejected=dict(result.rejected), source_rows=total, quarantine=cfg.quarantine)


def _count_cases(facts: DataFrame, classes: DataFrame, cfg: PipelineConfig, result: RunResult) -> None:
    """Case counts per winning batch version (SPEC 6), deletes, duplicates, accounts and month span."""
    facts = facts.join(classes.select(cfg.key, LAST_MONTH), cfg.key)
    kind, cls, m = F.col(KIND), F.col(CLASS), F.col(MONTH_INDEX)
    won = F.col(FROM_BATCH)
    active_won = won & (kind == KIND_ACTIVE)
    per_account = facts.groupBy(cfg.key, CLASS).agg(
        F.count(F.when(active_won, 1)).alias("active"),
        F.count(F.when(active_won & (cls == FORWARD), 1)).alias("forward"),
        F.count(F.when(active_won & (cls == MIXED) & (m > F.col(LAST_MONTH)), 1)).alias("mixed_forward"),
        F.count(F.when(won & (kind == KIND_TOMBSTONE), 1)).alias("applied"),
        F.count(F.when(won & (kind == KIND_IGNORED_DELETE), 1)).alias("ignored"),
        F.sum("_sp_batch_versions").alias("versions"),
        F.count(F.when(won, 1)).alias("winners"),
        F.min(F.when(kind != KIND_IGNORED_DELETE, m)).alias("first"),
        F.max(F.when(kind != KIND_IGNORED_DELETE, m)).alias("last"),
    )
    is_new = F.col(CLASS) == NEW
    row = per_account.agg(
        F.count(F.when(is_new & (F.col("active") > 0), 1)).alias("case_i"),
        F.sum(F.when(is_new & (F.col("active") > 0), F.col("active") - 1)).alias("case_iv"),
        F.sum(F.col("forward") + F.col("mixed_forward")).alias("case_ii"),
        F.sum(F.when(F.col(CLASS) == MIXED, F.col("active") - F.col("mixed_forward"))).alias("case_iii"),
        F.sum("applied").alias("applied"),
        F.sum("ignored").alias("ignored"),
        F.sum(F.col("versions") - F.col("winners")).alias("lost"),
        F.count(F.lit(1)).alias("accounts"),
        F.min("first").alias("first"),
        F.max("last").alias("last"),
    ).collect()[0]
    result.case_i, result.case_iv = int(row["case_i"] or 0), int(row["case_iv"] or 0)
    result.case_ii, result.case_iii = int(row["case_ii"] or 0), int(row["case_iii"] or 0)
    result.soft_deletes_applied, result.soft_deletes_ignored = int(row["applied"] or 0), int(row["ignored"] or 0)
    result.duplicates_dropped = int(row["lost"] or 0)
    result.accounts = int(row["accounts"] or 0)
    result.first_month = month_name(row["first"]) if row["first"] is not None else None
    result.last_month = month_name(row["last"]) if row["last"] is not None else None


def _replaces(spark: SparkSession, options: RunOptions, table: str) -> bool:
    """A full rebuild, or a table that does not exist yet, is written whole; anything else is merged."""
    return options.mode == "initial" or not table_exists(spark, table)


def _write(spark: SparkSession, cfg: PipelineConfig, options: RunOptions, computed: Computed, result: RunResult,
           guard: RunGuard, progress: Progress) -> None:
    """One commit per table, on the run's branch of it: the whole table for a full rebuild (or a missing
    table), a MERGE otherwise."""
    layout = cfg.layout
    targets = (
        ("summary", cfg.destination_table, computed.summary, [cfg.key, cfg.month], cfg.month, layout.summary_buckets,
         layout.properties()),
        ("latest_summary", cfg.latest_history_table, computed.latest, [cfg.key], None, layout.latest_buckets,
         layout.properties(latest=True)),
    )
    for name, table, rows, keys, partition, buckets, properties in targets:
        ensure_namespace(spark, table)
        written, months, null_arrays = _figures(rows, partition, cfg)
        result.metrics["null_arrays"] = result.metrics.get("null_arrays", 0) + null_arrays
        replace = _replaces(spark, options, table)
        with _timed(result, f"write_{name}"):
            if replace:
                _write_whole(spark, guard, table, rows, partition, buckets, cfg.key, properties)
            elif written:
                guard.commit(table, partial(merge, spark, rows, guard.target(table), keys, months=months,
                                            month_column=partition))
        if name == "summary":
            result.summary_rows_written = written
            result.months_written = None if replace else months
            result.metrics["partitions_written"] = len(months)
        else:
            result.latest_rows_written = written
        committed = replace or written > 0
        progress(f"  {table}: {written:,} rows written" if committed else f"  {table}: no change, no commit")
        guard.step(name)
    with _timed(result, "write_deletes"):
        _write_deletes(spark, cfg, options, computed, guard)
    guard.step("deletes")


def _write_whole(spark: SparkSession, guard: RunGuard, table: str, rows: DataFrame, partition: str | None,
                 buckets: int, key: str, properties: dict[str, str]) -> None:
    """Write ``rows`` as the whole table, staged on the run's branch.

    A missing table is first created empty with the layout (on main: readers see an empty table where there
    was none). A table whose columns or partitioning differ from the rows' cannot stage a replacement on a
    branch (the layout is the table's, not a branch's): it is replaced on main in one commit, audited after it
    and undone if the audit fails (docs/operations.md).
    """
    layout = partial(replace_table, partition_by=partition, buckets=buckets, bucket_by=key, properties=properties)
    if not table_exists(spark, table):
        guard.commit(table, partial(layout, rows.limit(0), table))
    columns = [(f.name, f.dataType.simpleString()) for f in spark.table(table).schema]
    if (columns != [(f.name, f.dataType.simpleString()) for f in rows.schema]
            or partition_fields(spark, table) != partition_spec(partition, buckets, key)):
        guard.commit(table, partial(layout, rows, table))
        return
    wanted = table_properties_for(properties)
    changed = {k: v for k, v in wanted.items() if table_properties(spark, table).get(k) != v}
    if changed:  # metadata only: main's rows stay as they are
        listed = ", ".join(f"{sql_string(k)} = {sql_string(v)}" for k, v in changed.items())
        spark.sql(f"ALTER TABLE {sql_table(table)} SET TBLPROPERTIES ({listed})")
    target = guard.target(table)
    guard.commit(table, lambda: rows.writeTo(target).overwrite(F.lit(True)))


def _figures(rows: DataFrame, partition: str | None, cfg: PipelineConfig) -> tuple[int, list[str], int]:
    """Rows to write, their months (when partitioned) and how many have a NULL history array, in one job.

    The counts are rows inserted or updated, not Iceberg's added-records, which counts every row of the files
    a copy-on-write MERGE rewrites.
    """
    nulls = [F.col(c).isNull().cast("int") for c in cfg.history_columns]
    by = [partition] if partition else []
    got = rows.groupBy(*by).agg(F.count(F.lit(1)).alias("n"),
                                F.sum(count_of(nulls)).alias("nulls")).collect()
    months = sorted(r[partition] for r in got) if partition else []
    return sum(int(r["n"]) for r in got), months, sum(int(r["nulls"] or 0) for r in got)


def _write_deletes(spark: SparkSession, cfg: PipelineConfig, options: RunOptions, computed: Computed,
                   guard: RunGuard) -> None:
    """The deletes table: winning deletes in full, so later runs rank against them."""
    table = cfg.deletes_table
    if _replaces(spark, options, table):
        _write_whole(spark, guard, table, computed.deletes_upsert, cfg.month, 0, cfg.key, {})
        return
    upsert = computed.deletes_upsert.withColumn("_sp_remove", F.lit(False))
    # A handful of rows, computed once: their months prune the MERGE to the partitions they touch.
    rows = materialize(upsert.unionByName(computed.deletes_remove.withColumn("_sp_remove", F.lit(True)),
                                          allowMissingColumns=True))
    months = sorted(r[0] for r in rows.select(cfg.month).distinct().collect())
    if months:
        target = guard.target(table)
        guard.commit(table, lambda: merge(spark, rows, target, [cfg.key, cfg.month], months=months,
                                          month_column=cfg.month, remove_flag="_sp_remove"))


def _write_changes(spark: SparkSession, cfg: PipelineConfig, options: RunOptions, computed: Computed,
                   state: State, result: RunResult, guard: RunGuard) -> dict[str, int]:
    """The run's change record, staged like the tables; returns the rows the run adds to each table (for the
    audit's counts). A full rebuild (initial) records no keys: every row may have changed, and downstream reads
    the tables whole."""
    if options.mode == "initial":
        return {cfg.destination_table: result.summary_rows_written,
                cfg.latest_history_table: result.latest_rows_written}
    if not (result.summary_rows_written or result.latest_rows_written):
        return {}
    table = cfg.changes_table
    rows = materialize(change_rows(cfg, computed.summary, computed.latest, state.window, result.run_id))
    counts = rows.groupBy("kind").agg(F.count(F.lit(1)).alias("n"), F.count(F.when(F.col("_sp_new"), 1)).alias("new"))
    found = {str(r["kind"]): (int(r["n"]), int(r["new"])) for r in counts.collect()}
    result.metrics.update({f"changes_{k.replace(' ', '_')}": n for k, (n, _) in found.items()})
    rows = rows.drop("_sp_new")
    if not table_exists(spark, table):
        ensure_namespace(spark, table)
        guard.commit(table, partial(replace_table, rows.limit(0), table, partition_by="run_id"))
    target = guard.target(table)
    guard.commit(table, lambda: rows.writeTo(target).append())
    new_accounts = computed.latest
    if state.latest is not None:
        new_accounts = new_accounts.join(state.latest.select(cfg.key), cfg.key, "left_anti")
    return {cfg.destination_table: sum(new for _, new in found.values()),
            cfg.latest_history_table: new_accounts.count()}


def _audit_and_publish(spark: SparkSession, cfg: PipelineConfig, options: RunOptions, computed: Computed,
                       added: dict[str, int], result: RunResult, guard: RunGuard, say: Progress) -> None:
    """Check the staged state (unless the run or the config turned the audit off), then publish it."""
    wanted = cfg.audit if options.audit is None else options.audit
    if wanted and (result.summary_rows_written or result.latest_rows_written):
        say("Auditing the staged writes...")
        summary, latest = cfg.destination_table, cfg.latest_history_table
        with _timed(result, "audit"):
            checks = audit(spark, cfg, Staged(
                summary_written=computed.summary.select(*spark.table(summary).columns),
                latest_written=computed.latest.select(*spark.table(latest).columns),
                summary_at=guard.staged_at(summary), latest_at=guard.staged_at(latest),
                months=result.months_written or [], added=added, before=dict(result.snapshots_before),
                staged_refs={t: guard.branch if t in guard.staged else snapshot_now(spark, t)
                             for t in (summary, latest)},
                whole=result.months_written is None))
        result.metrics["audit_checks"] = len(checks)
        say(f"  passed: {', '.join(c.name for c in checks)}")
    guard.step("audited")
    with _timed(result, "publish"):
        guard.publish()


def _tag(spark: SparkSession, cfg: PipelineConfig, options: RunOptions, result: RunResult, say: Progress) -> None:
    """Tag the snapshots the run published (config ``tags``): after the commit point, so a failure only warns."""
    if not cfg.tags.enabled or options.mode == "backfill" or not result.last_month:
        return
    if not (result.summary_rows_written or result.latest_rows_written):
        return
    name = cfg.tags.name.format(month=result.last_month, run_id=result.run_id)
    try:
        made = [table for table, snapshot in result.snapshots_after.items()
                if snapshot not in (None, NO_SNAPSHOT) and table != cfg.changes_table
                and tag(spark, table, name, int(snapshot), cfg.tags.retain_days)]
    except Exception as err:
        result.warnings.append(f"could not tag the published snapshots as {name}: {err}")
        log.warning("could not tag %s: %s", name, err)
        return
    if made:
        result.tags.append(name)
        say(f"Tagged the published state {name}")


def next_watermark(options: RunOptions, previous: dt.datetime | None, read_max: dt.datetime | None
                   ) -> dt.datetime | None:
    """The watermark after a run: only incremental and an unranged initial move it, and only forward (SPEC 6).

    >>> t1, t2 = dt.datetime(2026, 1, 1), dt.datetime(2026, 2, 1)
    >>> next_watermark(RunOptions(mode="incremental"), t2, t1) == t2
    True
    >>> next_watermark(RunOptions(mode="backfill"), t1, t2) == t1
    True
    """
    ranged = options.mode == "initial" and bool(options.start_month or options.end_month)
    if options.mode == "incremental" or (options.mode == "initial" and not ranged):
        return max((t for t in (previous, read_max) if t is not None), default=None)
    return previous


def _refuse(spark: SparkSession, cfg: PipelineConfig, options: RunOptions, watermark: dt.datetime | None,
            config_name: str, ledger: list[dict[str, Any]]) -> None:
    """Refusals that depend on the tables' state: checked under the lock, before anything is recorded.

    Every mode but initial (which builds everything under its config) refuses a config whose definition
    differs from the one the ledger records for the tables (docs/operations.md, "Changing the config")."""
    if options.mode != "initial":
        check_definition(cfg, ledger, config_name)
    tables = (cfg.destination_table, cfg.latest_history_table)
    if options.mode == "initial" and not options.replace and not all(is_empty(spark, t) for t in tables):
        raise TablesNotEmptyError(
            f"initial refuses to replace {cfg.destination_table} / {cfg.latest_history_table}: they already "
            "hold data. Run incremental to add new versions, or pass --replace to rebuild them from the source.",
            tables=list(tables))
    if options.mode == "incremental" and watermark is None:
        raise NotReadyError(f"{cfg.destination_table} is empty or missing in {location(spark, config_name)}: "
                            "run --mode initial first, "
                            "then incremental keeps it up to date", table=cfg.destination_table)


def new_result(mode: str, cfg: PipelineConfig, arguments: dict[str, object], dry_run: bool = False) -> RunResult:
    """A fresh RunResult for a run (or a rollback) started now by this process."""
    return RunResult(run_id=uuid.uuid4().hex[:16], mode=mode, dry_run=dry_run, arguments=arguments,
                     ignored_config_keys=cfg.ignored_keys(), host=host_name(), pid=os.getpid(),
                     started_at=dt.datetime.now())


def run(spark: SparkSession, cfg: PipelineConfig, options: RunOptions, *, progress: Progress | None = None,
        config_name: str = "config", on_step: StepHook | None = None) -> RunResult:
    """Run one mode end to end and return its figures. ``on_step`` is called at each step boundary of the run
    (:data:`~summary_pipeline.store.protocol.STEPS`): tests inject faults with it.

    Raises:
        SummaryPipelineError: for every failure a user can act on (bad config against the source, missing
            source, tables not ready or not empty, a bad backfill filter, another run holding the lock, too
            many rejected rows, a concurrent writer).
    """
    say = progress or _log_progress
    result = new_result(options.mode, cfg, dataclasses.asdict(options), options.dry_run)
    result.definition = json.dumps(definition(cfg), sort_keys=True)
    start = time.monotonic()
    source, result.source_snapshot = pin_source(spark, cfg, config_name)
    check_against_source(source, cfg, config_name)
    check_arguments(source, options)
    with job_group(spark, result.run_id, options.mode):
        if options.dry_run:
            ledger = ledger_rows(spark, cfg.ledger_table)
            watermark = read_watermark(spark, cfg, ledger)
            _refuse(spark, cfg, options, watermark, config_name, ledger)
            _execute(spark, cfg, options, source, watermark, result, None, say)
            result.status = "planned"
            result.metrics.update(spark_figures(spark, result.run_id))
        else:
            with RunGuard(spark, cfg, result, say, on_step) as guard:
                watermark = read_watermark(spark, cfg, guard.ledger)
                _refuse(spark, cfg, options, watermark, config_name, guard.ledger)
                result.watermark_read = result.watermark_committed = watermark
                guard.start(when_writing=True)
                _execute(spark, cfg, options, source, watermark, result, guard, say)
                result.metrics.update(spark_figures(spark, result.run_id))
                result.timings["total"] = round(time.monotonic() - start, 3)
                guard.succeed(dt.datetime.now())
                _tag(spark, cfg, options, result, say)
                _mark(spark, cfg, result, guard.ledger)
    result.timings["total"] = round(time.monotonic() - start, 3)
    return result


def _mark(spark: SparkSession, cfg: PipelineConfig, result: RunResult, ledger: list[dict[str, Any]]) -> None:
    """After the commit point, give the tables the run's definition as properties, when it wrote or when the
    tables had none recorded yet (their adoption: docs/operations.md, "Changing the config")."""
    found, defn = recorded_definition(ledger), definition(cfg)
    if result.summary_rows_written or result.latest_rows_written or found is None or result.mode == "evolve" \
            or found[0] != defn:
        mark_definition(spark, cfg, defn)


def evolve(spark: SparkSession, cfg: PipelineConfig, options: RunOptions, *, progress: Progress | None = None,
           config_name: str = "config", on_step: StepHook | None = None) -> RunResult:
    """Apply a config change to the tables as one run (``summary-pipeline evolve``): plan it
    (:func:`~summary_pipeline.core.evolve.plan_evolve`), then recompute the changed columns from the rows the
    tables hold, or rebuild every row from the source as ``initial`` does. Staged, audited and published like
    every run; a dry run prints the plan and writes nothing."""
    say = progress or _log_progress
    result = new_result("evolve", cfg, dataclasses.asdict(options), options.dry_run)
    result.definition = json.dumps(definition(cfg), sort_keys=True)
    start = time.monotonic()
    source, result.source_snapshot = pin_source(spark, cfg, config_name)
    check_against_source(source, cfg, config_name)
    with job_group(spark, result.run_id, "evolve"):
        if options.dry_run:
            _evolve(spark, cfg, options, source, ledger_rows(spark, cfg.ledger_table), result, None, say,
                    config_name)
            result.status = "planned"
        else:
            with RunGuard(spark, cfg, result, say, on_step) as guard:
                _evolve(spark, cfg, options, source, guard.ledger, result, guard, say, config_name)
                result.timings["total"] = round(time.monotonic() - start, 3)
                guard.succeed(dt.datetime.now())
                _mark(spark, cfg, result, guard.ledger)
    result.timings["total"] = round(time.monotonic() - start, 3)
    return result


def _evolve(spark: SparkSession, cfg: PipelineConfig, options: RunOptions, source: DataFrame,
            ledger: list[dict[str, Any]], result: RunResult, guard: RunGuard | None, say: Progress,
            config_name: str) -> None:
    """Plan the change and carry it out (with a guard) or count what it would write (a dry run)."""
    if is_empty(spark, cfg.destination_table):
        raise NotReadyError(f"{cfg.destination_table} is empty or missing in {location(spark, config_name)}: there "
                            "is nothing to evolve; run --mode initial to build it under this config",
                            table=cfg.destination_table)
    watermark = read_watermark(spark, cfg, ledger)
    result.watermark_read = result.watermark_committed = watermark
    found = recorded_definition(ledger)
    if found is None:
        old, plan = None, EvolvePlan((), REBUILD, "no run recorded the definition that built the tables (they "
                                     "predate this release): every row is built again")
    else:
        diff = changes(found[0], definition(cfg))
        if not diff:
            say("Nothing to evolve: the tables were built under this config's definition "
                f"(recorded by run {found[1]['run_id']})")
            result.message = "nothing to evolve"
            if guard is not None:
                guard.start(when_writing=True)
            return
        old = config_of(cfg, found[0])
        plan = plan_evolve(cfg, old, diff, spark.table(cfg.destination_table))
    if plan.path == COLUMNS:
        plan = _fits(spark, cfg, plan, result)
    result.message = f"{plan.path} path"
    for line in plan.lines(cfg):
        say(line)
    if guard is not None:
        guard.start(when_writing=True)
    if plan.path == COLUMNS and old is not None:
        _evolve_columns(spark, cfg, old, plan, options, result, guard, say)
    else:
        _execute(spark, cfg, dataclasses.replace(options, mode="initial", replace=True), source, watermark,
                 result, guard, say)


def _fits(spark: SparkSession, cfg: PipelineConfig, plan: EvolvePlan, result: RunResult) -> EvolvePlan:
    """The plan, or the rebuild path when a new rolling value of a summary or deletes row does not fit its
    type: its version would be rejected under the new config (SPEC 9), which changes R."""
    if not plan.rolling:
        return plan
    with _timed(result, "read"):
        bad = sum(int(spark.table(t).transform(lambda rows: with_inferred(rows, cfg, plan))
                      .agg(misfits(cfg, plan)).collect()[0][0]) for t in (cfg.destination_table, cfg.deletes_table))
    if not bad:
        return plan
    return dataclasses.replace(plan, path=REBUILD, why=f"{bad:,} rows have a new rolling value that does not fit "
                               "its type: their versions are rejected under the new config, which changes R")


#: Spark settings under which a join of two tables partitioned alike by month leaves each side's rows where they
#: are (a storage-partitioned join): the evolved rows meet their new arrays without a shuffle of their others.
_BY_MONTH = {"spark.sql.sources.v2.bucketing.enabled": "true",
             "spark.sql.iceberg.planning.preserve-data-grouping": "true",
             "spark.sql.requireAllClusterKeysForCoPartition": "false"}


def _evolve_columns(spark: SparkSession, cfg: PipelineConfig, old: PipelineConfig, plan: EvolvePlan,
                    options: RunOptions, result: RunResult, guard: RunGuard | None, say: Progress) -> None:
    """The columns path: the new arrays from a narrow projection of the rows, kept in a table partitioned like
    summary, then the three tables written whole, each row beside its arrays."""
    if guard is None:  # a dry run: the evolved tables have the rows the tables have
        result.summary_rows_written = spark.table(cfg.destination_table).count()
        result.latest_rows_written = spark.table(cfg.latest_history_table).count()
        return
    # Read as they are now, however late a step reads them: the writes replace them.
    summary, latest, deletes = (spark.read.option("snapshot-id", str(snapshot_now(spark, t))).table(t)
                                for t in (cfg.destination_table, cfg.latest_history_table, cfg.deletes_table))
    arrays = f"{cfg.destination_table}_sp_evolve_{result.run_id}"
    saved = {k: spark.conf.get(k, None) for k in _BY_MONTH}
    try:
        for key, value in _BY_MONTH.items():
            spark.conf.set(key, value)
        with _timed(result, "rebuild"):
            histories = None
            if plan.rolling:
                rows = new_histories(summary, cfg, plan)
                guard.write(lambda: replace_table(rows, arrays, partition_by=cfg.month))
                histories = spark.table(arrays)
            computed = evolved(cfg, old, plan, summary, latest, deletes, histories)
            # Joined once: the write, its figures and the audit each read the rows again.
            computed = dataclasses.replace(computed, summary=materialize(computed.summary),
                                           latest=materialize(computed.latest),
                                           deletes_upsert=materialize(computed.deletes_upsert))
        _finish(spark, cfg, dataclasses.replace(options, mode="initial", replace=True), computed, State(), result,
                guard, say, "Writing the evolved tables (one commit per table)...")
    finally:
        for key, previous in saved.items():
            if previous is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, previous)
        spark.sql(f"DROP TABLE IF EXISTS {sql_table(arrays)}")


def _finish(spark: SparkSession, cfg: PipelineConfig, options: RunOptions, computed: Computed, state: State,
            result: RunResult, guard: RunGuard | None, say: Progress, heading: str) -> None:
    """Write what the run computed, its change record, then audit and publish; a dry run (no guard) counts."""
    if guard is None:
        result.summary_rows_written = computed.summary.count()
        result.latest_rows_written = computed.latest.count()
        return
    say("")
    say(heading)
    _write(spark, cfg, options, computed, result, guard, say)
    with _timed(result, "write_changes"):
        added = _write_changes(spark, cfg, options, computed, state, result, guard)
    guard.step("changes")
    _audit_and_publish(spark, cfg, options, computed, added, result, guard, say)


def _execute(spark: SparkSession, cfg: PipelineConfig, options: RunOptions, source: DataFrame,
             watermark: dt.datetime | None, result: RunResult, guard: RunGuard | None, say: Progress) -> None:
    """Read the mode's batch, classify, rebuild and (with a guard) write; a dry run (no guard) only counts."""
    if options.mode == "incremental":
        say(f"Processing new data since: {watermark:%Y-%m-%d %H:%M:%S}")
    elif options.mode == "initial":
        say(f"Building from every version in {cfg.source_table}")
    prepared: DataFrame | None = None
    try:
        with _timed(result, "read"):
            prepared = materialize(prepare(select_batch(source, cfg, options, watermark), cfg))
            read_max = _count_read(prepared, result)
        result.watermark_committed = next_watermark(options, watermark, read_max)
        if result.source_rows == 0 and options.mode != "initial":
            say("No new records to process")
            result.message = "no new records"
            return
        say(f"New records to process: {result.source_rows:,}")
        if result.rejected:
            say(f"Rejected rows: {result.rejected_total:,} ({_rejected_detail(result)}), kept in {cfg.quarantine}")
            if guard is not None:
                guard.write(lambda: _quarantine(spark, cfg, prepared, result.run_id))
                guard.step("quarantine")
            _check_rejects(cfg, result)
        batch = prepared.where(F.col(REJECT).isNull()).drop(REJECT, RAW, INVALID_DATES)
        say("")
        say("Classifying records...")
        with _timed(result, "classify"):
            plan = make_plan(spark, cfg, batch, full_rebuild=options.mode == "initial")
            log.info("plan: %s", plan.describe())
            state = read_state(spark, cfg, plan, batch)
            facts = materialize(decide(batch, plan.classes, state, cfg))
            _count_cases(facts, plan.classes, cfg, result)
        say(f"Case I (New accounts): {result.case_i:,}")
        say(f"Case II (Forward entries): {result.case_ii:,}")
        say(f"Case III (Backfill): {result.case_iii:,}")
        say(f"Case IV (New accounts' later months): {result.case_iv:,}")
        say(f"Soft deletes: {result.soft_deletes_applied:,} applied, {result.soft_deletes_ignored:,} ignored")
        say(f"Duplicate or superseded versions dropped: {result.duplicates_dropped:,}")
        with _timed(result, "rebuild"):
            built = materialize(rebuilt_rows(facts, state, cfg))
            computed = outputs(built, facts, state, read_older(spark, cfg, plan, facts), cfg)
            computed = dataclasses.replace(computed, latest=materialize(computed.latest))
        _finish(spark, cfg, options, computed, state, result, guard, say,
                "Rebuilding history arrays and writing (one commit per table, staged on the run's branch)...")
    finally:
        try:
            if prepared is not None:
                prepared.unpersist()
        except Exception as err:  # Spark stopped under the run: the error that stopped it is the one to report
            log.debug("could not unpersist the batch: %s", err)
