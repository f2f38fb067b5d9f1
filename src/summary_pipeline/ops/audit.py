"""The audit a writing run passes before it publishes: ``validate``'s checks, restricted to what the run wrote.

A run stages its writes on a branch of each table (:mod:`summary_pipeline.store.refs`); this module checks the
staged state before main moves to it. Checking every row of the touched accounts would cost a full
``validate`` on a nightly run (nearly every account reports every month), so the checks read only the rows the
run wrote and what sits right next to them, in three passes:

* ``counts``: the rows a reader of each staged table sees, less those of main (from the snapshots' summaries:
  no file read), equal the rows the run planned to add: the summary rows it inserted, the latest_summary rows
  of accounts that had none. A duplicate, or a row lost, changes the count.
* ``rows``, one pass over the summary rows written, beside their previous month's row (written by the run, or
  staged in the month before the newest month written: the forward month's neighbours, one partition):
  ``array_length``, ``index_zero``, ``grids``, ``shifted`` (arrays moved one place from the previous row) and
  ``base_ts`` (``fact_base_ts <= base_ts <= max(fact_base_ts, the previous row's base_ts)``). A correction
  window's first row is not compared with the unchanged row before it: those rows lie in partitions of their
  own, and reading their arrays costs most of the table's (docs/operations.md, "Write, audit, publish").
* ``latest_row``: each touched account has one staged latest_summary row, with arrays H long, equal to its
  summary row of that month where the run wrote it; no active month written after it; its last month at
  least every month written; the same as the latest row the run wrote.

The exact ``base_ts`` (the greatest ``fact_base_ts`` of H months) needs H-1 months of every account:
``validate`` checks it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from summary_pipeline.config import PipelineConfig
from summary_pipeline.core.engine import month_name
from summary_pipeline.core.facts import FACT_TS
from summary_pipeline.core.history import LAST_MONTH
from summary_pipeline.core.prepare import is_active, month_index
from summary_pipeline.errors import AuditError
from summary_pipeline.ops.validate import (
    PREVIOUS,
    PROBLEM,
    CheckResult,
    grid_conditions,
    index_zero_conditions,
    length_conditions,
    problem_names,
    shift_conditions,
    with_previous,
)
from summary_pipeline.store.snapshots import live_rows

__all__ = ["Staged", "audit"]


@dataclass(frozen=True)
class Staged:
    """What the audit reads: the run's written rows and its plan's counts, where its staged tables are (branch
    identifiers, or the tables themselves when a run could not stage), and main's snapshots before the run."""

    summary_written: DataFrame
    latest_written: DataFrame
    summary_at: str
    latest_at: str
    months: list[str]
    #: Rows the run planned to add to each table (summary: rows inserted; latest_summary: new accounts).
    added: dict[str, int] = field(default_factory=dict)
    #: Each table's main snapshot before the run; the staged head is the branch's (``staged_refs``).
    before: dict[str, int | None] = field(default_factory=dict)
    staged_refs: dict[str, str | int | None] = field(default_factory=dict)
    #: The run wrote summary whole (a full rebuild): every row that exists is a row written.
    whole: bool = False


def _counts(spark: SparkSession, staged: Staged) -> list[str]:
    """'table: N rows staged, M expected' per table whose staged count is not main's plus the planned rows."""
    wrong = []
    for table, added in staged.added.items():
        before = 0 if staged.whole else live_rows(spark, table, staged.before.get(table))
        after = live_rows(spark, table, staged.staged_refs.get(table, staged.before.get(table)))
        if before is None or after is None:
            continue  # a summary without totals: nothing to compare
        if after - before != added:
            wrong.append(f"{table}: {after - before:+,} rows staged, {added:+,} planned")
    return wrong


def _fingerprint(*columns: Column | str) -> Column:
    """A 64-bit hash of the values, NULLs and their places included (Spark's own hash of an array skips NULL
    elements, so [NULL, 5] and [5, NULL] would collide). The latest_row joins then move one long per row
    instead of its arrays (docs/PERFORMANCE.md, "The audit's cost")."""
    return F.xxhash64(F.to_json(F.struct(*columns)))


def _rows(spark: SparkSession, cfg: PipelineConfig, staged: Staged) -> DataFrame:
    """The summary rows written, beside their previous month's row where the audit has it, with the checks'
    problem names."""
    written = staged.summary_written
    ts, fact = F.col(cfg.ts), F.col(FACT_TS)
    named = {f"array_length ({c.split('.')[1]})": cond for c, cond in length_conditions(cfg, "summary").items()}
    named.update({f"index_zero ({c})": cond for c, cond in index_zero_conditions(cfg).items()})
    named.update({f"grids ({c})": cond for c, cond in grid_conditions(cfg).items()})
    if staged.whole:
        # Each row alone: beside its previous month's row, a whole table is joined with itself, which costs as
        # much as building it (docs/PERFORMANCE.md, "The cost of evolve"); validate checks the shifts.
        named["base_ts"] = F.coalesce(ts < fact, F.lit(True))
        return written.select(cfg.key, cfg.month, problem_names(named).alias(PROBLEM))
    previous = written
    if staged.months:
        newest = max(staged.months)
        before = month_name(int(newest[:4]) * 12 + int(newest[5:7]) - 2)
        forward = written.where(F.col(cfg.month) == newest).select(cfg.key)
        own = written.where(F.col(cfg.month) == before).select(cfg.key)
        staged_before = (spark.table(staged.summary_at).where(F.col(cfg.month) == before)
                         .join(forward, cfg.key, "left_semi").join(own, cfg.key, "left_anti").select(*written.columns))
        previous = written.unionByName(staged_before)
    rows = with_previous(written, previous, cfg, "left")
    prev_ts = F.col(f"{PREVIOUS}{cfg.ts}")
    named.update({f"shifted ({c})": cond for c, cond in shift_conditions(cfg).items()})
    named["base_ts"] = F.coalesce(ts < fact, F.lit(True)) | (prev_ts.isNotNull() & (ts > F.greatest(fact, prev_ts)))
    return rows.select(cfg.key, cfg.month, problem_names(named).alias(PROBLEM))


def _latest(spark: SparkSession, cfg: PipelineConfig, staged: Staged) -> DataFrame:
    """Touched accounts whose staged latest_summary row breaks a rule (see the module docstring)."""
    key, month = cfg.key, cfg.month
    written = staged.summary_written
    columns = [c for c in cfg.latest_columns if c not in (key, month)]
    touched = written.select(key).unionByName(staged.latest_written.select(key)).distinct()
    lengths = {f"array_length ({c.split('.')[1]})": cond
               for c, cond in length_conditions(cfg, "latest_summary").items()}
    latest = (spark.table(staged.latest_at).join(touched, key, "left_semi")
              .select(key, month, LAST_MONTH, _fingerprint(*columns).alias("_sp_h"),
                      problem_names(lengths).alias("_sp_own")))
    # Only the written rows of a latest row's month can be compared with it: hash just those.
    s = (written.join(latest.select(key, month), [key, month], "left_semi")
         .select(key, month, _fingerprint(*columns).alias("_sp_s_h")))
    w = staged.latest_written.select(key, F.col(month).alias("_sp_w_month"), F.col(LAST_MONTH).alias("_sp_w_last"),
                                     _fingerprint(*columns).alias("_sp_w_h"))
    newest = written.groupBy(key).agg(F.max(F.when(is_active(cfg), month_index(F.col(month)))).alias("_sp_active"),
                                      F.max(month_index(F.col(month))).alias("_sp_any"))
    counted = latest.groupBy(key).agg(F.count(F.lit(1)).alias("_sp_n"))
    joined = (touched.join(counted, key, "left").join(latest, key, "left").join(s, [key, month], "left")
              .join(w, key, "left").join(newest, key, "left"))
    written_here = F.col("_sp_w_month").isNotNull()
    named = {
        "no latest row": F.col("_sp_n").isNull(),
        "more than one latest row": F.col("_sp_n") > 1,
        "an active month written after it": F.col("_sp_active") > month_index(F.col(month)),
        LAST_MONTH: F.col("_sp_any") > F.col(LAST_MONTH),
        "not its month's summary row": F.col("_sp_s_h").isNotNull() & (F.col("_sp_s_h") != F.col("_sp_h")),
        "not the row written": written_here & ((F.col("_sp_w_h") != F.col("_sp_h"))
                                               | ~F.col("_sp_w_month").eqNullSafe(F.col(month))
                                               | ~F.col("_sp_w_last").eqNullSafe(F.col(LAST_MONTH))),
    }
    problems = F.concat_ws(", ", F.when(F.col("_sp_own") != "", F.col("_sp_own")), problem_names(named))
    return joined.select(key, F.coalesce(F.col(month), F.col("_sp_w_month")).alias(month), problems.alias(PROBLEM))


def _check(name: str, description: str, rows: DataFrame, examples: int) -> CheckResult:
    """Count the rows with a problem in one pass; read a few of them only when there are any."""
    bad = rows.where(F.col(PROBLEM) != "")
    count = int(bad.agg(F.count(F.lit(1))).collect()[0][0])
    shown = [r.asDict() for r in bad.orderBy(*bad.columns[:-1]).limit(examples).collect()] if count else []
    return CheckResult(name, description, count, shown)


def audit(spark: SparkSession, cfg: PipelineConfig, staged: Staged, examples: int = 5,
          say: Callable[[str], None] = lambda _line: None) -> list[CheckResult]:
    """Run the audit on the staged state; raises AuditError naming the offending keys when a check fails, else
    returns every check's result."""
    say("  auditing counts: each staged table holds the rows it had plus the rows the run planned to add")
    wrong = _counts(spark, staged)
    results = [CheckResult("counts", "staged rows = rows before + rows planned", len(wrong),
                           [{cfg.key: "", PROBLEM: w} for w in wrong])]
    say("  auditing rows: array_length, index_zero, grids, shifted, base_ts of the summary rows written")
    results.append(_check("rows", "the summary rows written pass validate's row checks",
                          _rows(spark, cfg, staged), examples))
    say("  auditing latest_row: each touched account's latest row")
    results.append(_check("latest_row", "each touched account's latest row is its newest month's summary row",
                          _latest(spark, cfg, staged), examples))
    failed = [r for r in results if not r.ok]
    if failed:
        def example(e: dict[str, object]) -> str:
            where = " ".join(str(e[k]) for k in (cfg.key, cfg.month) if e.get(k))
            return f"{where} ({e[PROBLEM]})" if where else str(e[PROBLEM])
        detail = "; ".join(f"{r.name}: {r.violations:,} row(s), e.g. " + ", ".join(example(e) for e in r.examples[:3])
                           for r in failed)
        keys = sorted({str(e[cfg.key]) for r in failed for e in r.examples if e.get(cfg.key)})
        branches = sorted({str(r) for r in staged.staged_refs.values() if isinstance(r, str)})
        kept = (f"; the staged writes stay on branch {branches[0]} for inspection (inspect --run-id, or "
                f"<table>.branch_{branches[0]} in SQL)") if branches else ""
        raise AuditError(f"the audit found {detail}. Nothing was published{kept}. Fix the cause, then run the "
                         "same command again.", checks=[r.name for r in failed], accounts=keys)
    return results
