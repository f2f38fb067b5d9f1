"""The audit a writing run passes before it publishes: ``validate``'s checks, restricted to what the run wrote.

A run stages its writes on a branch of each table (:mod:`summary_pipeline.store.refs`); this module checks the
staged state before main moves to it. Checking every row of the touched accounts would cost a full
``validate`` on a nightly run (nearly every account reports every month), so each check reads only what it
needs next to the rows the run wrote:

* ``staged_rows``: each summary row the run wrote is in the staged table exactly once (a scan of the key
  columns of the months written, as the MERGE's own), and the staged table holds as many of them as the run
  counted;
* ``array_length``, ``index_zero``, ``grids``: on the rows written, as ``validate`` checks them;
* ``shifted``: each row written against its previous month's row, staged (read for those keys in the months
  just before the rows written) or written by the run;
* ``latest_row``: each touched account has one staged latest_summary row, equal to its summary row of that
  month, and no active row written after it; the latest rows written are the staged ones;
* ``base_ts``: within its bounds, ``fact_base_ts <= base_ts <= max(fact_base_ts, previous row's base_ts)``
  (the window's exact maximum needs H-1 months of each account: ``validate`` checks that).

Each check gives the rows that break it with a ``problem``, as :mod:`summary_pipeline.ops.validate`'s do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from summary_pipeline.config import PipelineConfig
from summary_pipeline.core.facts import FACT_TS
from summary_pipeline.core.history import LAST_MONTH
from summary_pipeline.core.prepare import is_active, month_index
from summary_pipeline.errors import AuditError
from summary_pipeline.ops.validate import PROBLEM, CheckResult, array_length, grids, index_zero, shifted
from summary_pipeline.plan import materialize

__all__ = ["Staged", "audit"]

_PREV = "_sp_prev_month"


@dataclass(frozen=True)
class Staged:
    """What the audit reads: the run's written rows, and where its staged tables are (branch identifiers, or the
    tables themselves when a run could not stage)."""

    summary_written: DataFrame
    latest_written: DataFrame
    summary_at: str
    latest_at: str
    months: list[str]
    #: The run wrote summary whole (a full rebuild): every row that exists is a row written.
    whole: bool = False


def _month_string(index: Column) -> Column:
    return F.format_string("%04d-%02d", F.floor(index / 12).cast("int"), (index % 12 + 1).cast("int"))


def _staged_rows(spark: SparkSession, cfg: PipelineConfig, staged: Staged) -> DataFrame:
    """Written (account, month) pairs not in the staged summary exactly once."""
    keys = [cfg.key, cfg.month]
    there = (spark.table(staged.summary_at).where(F.col(cfg.month).isin(staged.months)).select(*keys)
             .groupBy(*keys).agg(F.count(F.lit(1)).alias("_sp_n")))
    joined = staged.summary_written.select(*keys).join(there, keys, "left")
    n = F.coalesce(F.col("_sp_n"), F.lit(0))
    return (joined.where(n != 1)
            .select(*keys, F.when(n == 0, F.lit("not in the staged table"))
                    .otherwise(F.format_string("%d staged rows", n)).alias(PROBLEM)))


def _neighbours(spark: SparkSession, cfg: PipelineConfig, staged: Staged, wanted: DataFrame) -> DataFrame:
    """Staged summary rows at the (account, month) pairs of ``wanted`` that the run did not write."""
    keys = [cfg.key, cfg.month]
    if staged.whole:
        return staged.summary_written.limit(0)
    missing = wanted.select(*keys).distinct().join(staged.summary_written.select(*keys), keys, "left_anti")
    months = sorted(r[0] for r in missing.select(cfg.month).distinct().collect())
    if not months:
        return staged.summary_written.limit(0)
    rows = spark.table(staged.summary_at).where(F.col(cfg.month).isin(months))
    # Computed once: the shifted and base_ts checks both read them, and they are few rows from many files.
    return materialize(rows.join(missing, keys, "left_semi").select(*staged.summary_written.columns))


def _base_ts(cfg: PipelineConfig, rows: DataFrame, written: DataFrame) -> DataFrame:
    """Written rows whose base_ts is outside its bounds (see the module docstring)."""
    month = month_index(F.col(cfg.month))
    prev = rows.select(F.col(cfg.key).alias("_sp_k"), (month + 1).alias("_sp_next"),
                       F.col(cfg.ts).alias("_sp_prev_ts"))
    joined = written.join(prev, (F.col(cfg.key) == F.col("_sp_k")) & (month == F.col("_sp_next")), "left")
    ts, fact = F.col(cfg.ts), F.col(FACT_TS)
    low = ts < fact
    high = F.col("_sp_prev_ts").isNotNull() & (ts > F.greatest(fact, F.col("_sp_prev_ts")))
    broken = F.coalesce(low | high, ts.isNull())
    return joined.where(broken).select(cfg.key, cfg.month, F.lit(cfg.ts).alias(PROBLEM))


def _latest(spark: SparkSession, cfg: PipelineConfig, staged: Staged, rows: DataFrame) -> DataFrame:
    """Touched accounts whose staged latest_summary row is missing, duplicated, not its month's summary row,
    older than an active row written, or not the latest row the run wrote."""
    key, month = cfg.key, cfg.month
    touched = (staged.summary_written.select(key).unionByName(staged.latest_written.select(key)).distinct())
    latest = spark.table(staged.latest_at).join(touched, key, "left_semi").select(*cfg.latest_columns, LAST_MONTH)
    columns = [c for c in cfg.latest_columns if c not in (key, month)]
    at_month = _neighbours(spark, cfg, staged, latest.select(key, month)).unionByName(staged.summary_written)
    s = at_month.select(key, month, F.lit(True).alias("_sp_s_found"),
                        *(F.col(c).alias(f"_sp_s_{c}") for c in columns))
    w = staged.latest_written.select(key, *(F.col(c).alias(f"_sp_w_{c}") for c in [month, *columns, LAST_MONTH]))
    newest = (staged.summary_written.groupBy(key).agg(
        F.max(F.when(is_active(cfg), month_index(F.col(month)))).alias("_sp_active"),
        F.max(month_index(F.col(month))).alias("_sp_any")))
    counted = latest.groupBy(key).agg(F.count(F.lit(1)).alias("_sp_n"))
    joined = (touched.join(counted, key, "left").join(latest, key, "left").join(s, [key, month], "left")
              .join(w, key, "left").join(newest, key, "left"))
    m = month_index(F.col(month))
    named = {
        "no latest row": F.col("_sp_n").isNull(),
        "more than one latest row": F.col("_sp_n") > 1,
        "no summary row at its month": F.col(month).isNotNull() & F.col("_sp_s_found").isNull(),
        "an active month written after it": F.col("_sp_active") > m,
        LAST_MONTH: F.col("_sp_any") > F.col(LAST_MONTH),
    }
    named.update({f"differs from summary in {c}": F.col(f"_sp_s_{c}").isNotNull() & ~F.col(c).eqNullSafe(
        F.col(f"_sp_s_{c}")) for c in columns if c in cfg.history_columns or c in (cfg.ts, FACT_TS)})
    named.update({f"not the row written ({c})": F.col(f"_sp_w_{month}").isNotNull()
                  & ~F.col(c).eqNullSafe(F.col(f"_sp_w_{c}")) for c in [month, *columns, LAST_MONTH]})
    problems = F.concat_ws(", ", *(F.when(cond, F.lit(name)) for name, cond in named.items()))
    return (joined.select(key, F.coalesce(F.col(month), F.col(f"_sp_w_{month}")).alias(month),
                          problems.alias(PROBLEM)).where(F.col(PROBLEM) != "").distinct())


Check = Callable[[], DataFrame]


def audit(spark: SparkSession, cfg: PipelineConfig, staged: Staged, examples: int = 5,
          say: Callable[[str], None] = lambda _line: None) -> list[CheckResult]:
    """Run the audit's checks on the staged state; raises AuditError naming the offending keys when any fails.

    Returns every check's result when all pass."""
    written = staged.summary_written
    previous = written.select(cfg.key, _month_string(month_index(F.col(cfg.month)) - 1).alias(cfg.month))
    rows = written.unionByName(_neighbours(spark, cfg, staged, previous))
    none = spark.table(staged.latest_at).limit(0)
    checks: list[tuple[str, str, Check]] = [
        ("staged_rows", "each row written is in the staged summary exactly once",
         lambda: _staged_rows(spark, cfg, staged)),
        ("array_length", "every history array written has history_length elements",
         lambda: array_length(written, staged.latest_written, cfg)),
        ("index_zero", "history index 0 is the row's own value", lambda: index_zero(written, none, cfg)),
        ("shifted", "row m index k equals row m-1 index k-1", lambda: shifted(rows, none, cfg)),
        ("grids", "grid columns equal their arrays", lambda: grids(written, none, cfg)),
        ("latest_row", "each touched account's latest row is its newest month's summary row",
         lambda: _latest(spark, cfg, staged, rows)),
        ("base_ts", "base_ts within fact_base_ts and the previous row's base_ts",
         lambda: _base_ts(cfg, rows, written)),
    ]
    results = []
    for name, description, check in checks:
        say(f"  auditing {name}: {description}")
        bad = check()
        shown = [r.asDict() for r in bad.orderBy(*bad.columns[:-1]).limit(examples).collect()]
        count = bad.count() if shown else 0
        results.append(CheckResult(name, description, count, shown))
    failed = [r for r in results if not r.ok]
    if failed:
        detail = "; ".join(f"{r.name}: {r.violations:,} row(s), e.g. " + ", ".join(
            f"{e[cfg.key]}" + (f" {e[cfg.month]}" if e.get(cfg.month) else "") + f" ({e[PROBLEM]})"
            for e in r.examples[:3]) for r in failed)
        keys = sorted({str(e[cfg.key]) for r in failed for e in r.examples})
        raise AuditError(f"the audit found {detail}", checks=[r.name for r in failed], accounts=keys)
    return results
