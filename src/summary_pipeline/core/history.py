"""History arrays, grids, row ``base_ts`` and latest_summary (SPEC 5). Pure Column/DataFrame code.

Every summary row of an account looks back over the same window: months ``m-H+1 .. m``. Once an account's
facts are dense (a filler row for each month missing between two facts), the row k rows back is exactly k
months back, so position k of every history array, and the k-th candidate for the row's ``base_ts``, is one
``lag`` over a window partitioned by account and ordered by month. Everything else is plain expressions, which
Spark compiles (higher-order functions such as ``transform`` run interpreted, element by element, and were the
build's main cost).

A fact row may also carry a *base*: the arrays of the account's latest_summary row. Months the window has no
fact for are then read from the base, so a forward month needs only the account's latest row, never the
summary partitions before it. (Base and facts never cover the same month: a base is only given to accounts
whose every fact is after their last month.)
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from summary_pipeline.config import GridColumn, PipelineConfig
from summary_pipeline.core.facts import FACT_TS, VERSION
from summary_pipeline.core.prepare import ACTIVE, MONTH_INDEX, is_active, rolling_field

__all__ = [
    "BASE_MONTH",
    "BASE_TS",
    "BASE_TS_MONTH",
    "EMIT",
    "LAST_MONTH",
    "TS_HISTORY",
    "base_history",
    "grid",
    "latest_rows",
    "summary_rows",
]

#: Fact-row columns describing a base (all NULL when there is none).
BASE_MONTH = "_sp_base_m"  # month index the base arrays are anchored at (the latest row's month)
BASE_TS = "_sp_base_ts"  # fact_base_ts of the account's rows, anchored at BASE_TS_MONTH
BASE_TS_MONTH = "_sp_base_ts_m"  # the account's last month (tombstones included)
#: Fact-row flag: build and return this row (otherwise the fact only feeds its neighbours' windows).
EMIT = "_sp_emit"
#: Internal latest_summary columns: the account's last month and the fact_base_ts of its last H months.
LAST_MONTH = "_sp_last_month"
TS_HISTORY = "_sp_ts_history"


def base_history(name: str) -> str:
    """Fact-row column holding the base array of a history column."""
    return f"_sp_base_{name}"


def grid(history: Column, spec: GridColumn, h: int) -> Column:
    """A grid string from an H-element history array: each element as a string, NULL shown as the placeholder,
    joined by the separator. For example ``['0', NULL, '1']`` with placeholder ``?`` and separator ``''`` gives
    ``'0?1'``.

    Written as H plain expressions rather than a ``transform`` lambda: Spark compiles these to Java, while
    higher-order functions run interpreted, element by element (the difference is several times the build).
    """
    placeholder = F.lit(spec.placeholder)
    return F.concat_ws(spec.separator, *(F.coalesce(history[k].cast("string"), placeholder) for k in range(h)))


def _anchored(array: Column, anchor: Column, month: Column, h: int) -> Column:
    """Element of a history ``array`` anchored at month index ``anchor`` for month index ``month`` (or NULL)."""
    j = anchor - month
    return F.when((j >= 0) & (j < h), F.element_at(array, j + 1))


def _slot(cfg: PipelineConfig) -> Column:
    """What a fact row gives the rows after it: its rolling values (NULL unless active) and its timestamp."""
    return F.struct(*(F.when(F.col(ACTIVE), F.col(rolling_field(i))).alias(rolling_field(i))
                      for i in range(len(cfg.rolling_columns))), F.col(FACT_TS).alias(FACT_TS))


def _shifted(own: Column, base: Column, gap: Column, h: int, kind: str) -> Column:
    """The history of a row ``gap`` months after the row whose history is ``base``, when no month in between
    has a fact: ``[own, NULL x (gap-1), base...]`` cut to H. With no base (NULL), ``[own, NULL, ...]``.

    Three array functions, which Spark compiles, instead of H element expressions: fused with the join that
    brings the base, H expressions per array overflow Java's 64 KB method limit.
    """
    nulls = F.array_repeat(F.lit(None).cast(kind), F.least(F.coalesce(gap, F.lit(h)), F.lit(h)) - 1)
    older = F.coalesce(base, F.array().cast(f"array<{kind}>"))
    return F.slice(F.concat(F.array(own.cast(kind)), nulls, older), 1, h)


def _dense(facts: DataFrame, cfg: PipelineConfig) -> DataFrame:
    """``facts`` plus a filler row (``_sp_slot`` NULL, not emitted) for every month missing between two facts
    of an account, so that the k-th row before a row is exactly k months earlier.

    Each fact row is exploded into itself and the fillers up to its account's next fact: a narrow step that
    keeps the rows where the shuffle by account put them. A gap longer than H-1 months gets only H-1 fillers:
    the next fact's H-1 lags then all land on fillers, which is right, as its window lies inside the gap.
    """
    by_month = Window.partitionBy(cfg.key).orderBy(MONTH_INDEX)
    gap = F.least(F.coalesce(F.lead(MONTH_INDEX).over(by_month) - F.col(MONTH_INDEX) - 1, F.lit(0)),
                  F.lit(cfg.history_length - 1))
    step = F.explode(F.sequence(F.lit(0), F.col("_sp_gap"))).alias("_sp_step")
    filled = facts.withColumn("_sp_gap", gap).select("*", _slot(cfg).alias("_sp_slot"), step).drop("_sp_gap")
    real = F.col("_sp_step") == 0
    return filled.withColumns({
        MONTH_INDEX: F.col(MONTH_INDEX) + F.col("_sp_step"),
        EMIT: real & F.col(EMIT),
        "_sp_slot": F.when(real, F.col("_sp_slot")),
    }).drop("_sp_step")


def summary_rows(facts: DataFrame, cfg: PipelineConfig, *, alone: bool = False) -> DataFrame:
    """Summary rows (SPEC 5) for the fact rows flagged ``_sp_emit`` (every row when there is no such column).

    ``facts`` must hold, per account, every fact in the H-1 months before each row to build, or a base for
    the months it lacks. Rows to emit must be active facts or tombstones.

    With the months made dense (:func:`_dense`), position k of a row's history is the row k rows earlier: H-1
    ``lag`` columns, which Spark computes in one sorted pass per account, with no per-row collection.

    ``alone`` says every account has a single fact row (with its base): the usual next month of a nightly
    run. Its history is its own values and its base's, so the rows are built where they are, with no shuffle,
    sort or window. An active alone row is then also its account's new latest_summary row (its month is after
    every month the account has), so it carries that row's internal columns too: ``_sp_last_month`` (its
    month) and ``_sp_ts_history`` (its timestamp, then the base's, shifted like the arrays); both are NULL for a
    tombstone, whose account's latest row :func:`latest_rows` must choose.
    """
    h = cfg.history_length
    if EMIT not in facts.columns:
        facts = facts.withColumn(EMIT, F.lit(True))
    for name, kind in ((BASE_MONTH, "int"), (BASE_TS_MONTH, "int"), (BASE_TS, "array<timestamp>")):
        if name not in facts.columns:
            facts = facts.withColumn(name, F.lit(None).cast(kind))
    for r in cfg.rolling_columns:
        if base_history(r.history_column) not in facts.columns:
            facts = facts.withColumn(base_history(r.history_column), F.lit(None).cast(f"array<{r.spark_type}>"))
    m = F.col(MONTH_INDEX)
    types = {r.history_column: r.spark_type for r in cfg.rolling_columns}
    if alone:
        # The row's own value, the months between it and its base (none of them a fact: NULL), then the base.
        slot, gap = _slot(cfg), m - F.col(BASE_MONTH)
        histories = {name: _shifted(slot[rolling_field(i)], F.col(base_history(name)), gap, h, types[name])
                     for i, name in enumerate(types)}
        # The base's fact timestamps still inside this row's window: its first H-(m - last month).
        kept = F.greatest(F.lit(h) - (m - F.col(BASE_TS_MONTH)), F.lit(0))
        rows, row_ts = facts, F.greatest(F.col(FACT_TS), F.array_max(F.slice(F.col(BASE_TS), F.lit(1), kept)))
        ts_history = _shifted(F.col(FACT_TS), F.col(BASE_TS), m - F.col(BASE_TS_MONTH), h, "timestamp")
        latest: dict[str, Column] = {LAST_MONTH: F.when(F.col(ACTIVE), m),
                                     TS_HISTORY: F.when(F.col(ACTIVE), ts_history)}
    else:
        by_month = Window.partitionBy(cfg.key).orderBy(MONTH_INDEX)
        back = [F.col("_sp_slot")] + [F.lag("_sp_slot", k).over(by_month) for k in range(1, h)]
        rows = _dense(facts, cfg).select("*", *(col.alias(f"_sp_back{k}") for k, col in enumerate(back)))

        # These H-element expressions are written as SQL text, one parse each: built from Column objects they
        # cost thousands of Py4J calls per run, whatever the size of the batch. Position k is the row k rows
        # back, else the base's element for month m-k (see _anchored).
        def history(i: int, name: str) -> Column:
            at = [f"`{BASE_MONTH}` - (`{MONTH_INDEX}` - {k})" for k in range(h)]
            return F.expr("array(" + ", ".join(
                f"coalesce(`_sp_back{k}`.`{rolling_field(i)}`, CASE WHEN {j} >= 0 AND {j} < {h} "
                f"THEN element_at(`{base_history(name)}`, {j} + 1) END)" for k, j in enumerate(at)) + ")")

        histories = {name: history(i, name).cast(f"array<{kind}>") for i, (name, kind) in enumerate(types.items())}
        # The base's fact timestamps still inside this row's window: indexes up to H-1-(m - last month).
        base_ts = [f"CASE WHEN {j} <= {h - 1} - (`{MONTH_INDEX}` - `{BASE_TS_MONTH}`) THEN `{BASE_TS}`[{j}] END"
                   for j in range(h)]
        row_ts = F.expr("greatest(" + ", ".join([*base_ts, *(f"`_sp_back{k}`.`{FACT_TS}`" for k in range(h))]) + ")")
        latest = {}
    values = [row_ts.alias(c) if c == cfg.ts else F.col(c) for c in cfg.value_columns]
    built = rows.where(F.col(EMIT)).select(
        *values,
        *(col.alias(name) for name, col in histories.items()),
        F.col(FACT_TS),
        F.col(VERSION),
        *(col.alias(name) for name, col in latest.items()),
    )
    grids = {g.name: grid(F.col(f"{g.mapper_rolling_column}_history"), g, h) for g in cfg.grid_columns}
    return built.select(*cfg.value_columns, *histories, *(col.alias(name) for name, col in grids.items()),
                        FACT_TS, VERSION, *latest)


def latest_rows(candidates: list[DataFrame], touched: DataFrame, old: DataFrame | None, cfg: PipelineConfig
                ) -> DataFrame:
    """latest_summary rows (SPEC 5) for the accounts of ``candidates``.

    Args:
        candidates: summary rows (the latest_summary columns) that may be an account's latest: every row built
            in this run, the old latest row, and for accounts whose latest month turned into a tombstone, their
            older active rows. Where a month appears in two frames, the first-listed frame's copy is used.
        touched: ``(key, _sp_m, fact_base_ts, _sp_has_row)`` of every key whose fact this run decided; NULL
            timestamps where the key has no row.
        old: the accounts' current latest rows (for their last month and timestamp history), or None.

    Returns the latest row per account: greatest active month, else greatest tombstone; plus the account's
    last month (tombstones included) and the ``fact_base_ts`` of its last H months, which later forward runs use
    instead of reading summary.
    """
    h = cfg.history_length
    # Later frames lose the months an earlier one has: narrow anti-joins, so the wide rows are shuffled once.
    kept, seen = candidates[0], candidates[0].select(cfg.key, cfg.month)
    for more in candidates[1:]:
        kept = kept.unionByName(more.join(seen, [cfg.key, cfg.month], "left_anti"))
        seen = seen.unionByName(more.select(cfg.key, cfg.month))
    best = Window.partitionBy(cfg.key).orderBy(is_active(cfg).desc(), F.col(cfg.month).desc())
    rows = kept.withColumn("_sp_rn", F.row_number().over(best)).where("_sp_rn = 1").drop("_sp_rn")
    per_account = touched.groupBy(cfg.key).agg(
        F.max(F.when(F.col("_sp_has_row"), F.col(MONTH_INDEX))).alias("_sp_new_last"),
        F.map_from_entries(F.collect_list(F.struct(MONTH_INDEX, F.struct(FACT_TS)))).alias("_sp_new_ts"),
    )
    joined = rows.join(per_account, cfg.key, "left")
    if old is not None:
        joined = joined.join(old.select(cfg.key, F.col(LAST_MONTH).alias("_sp_old_last"),
                                         F.col(TS_HISTORY).alias("_sp_old_ts")), cfg.key, "left")
    else:
        joined = joined.withColumn("_sp_old_last", F.lit(None).cast("int")).withColumn(
            "_sp_old_ts", F.lit(None).cast("array<timestamp>"))
    last = F.greatest(F.col("_sp_old_last"), F.col("_sp_new_last"))
    new_ts = F.col("_sp_new_ts")

    def ts_at(k: Column) -> Column:
        month = last - k
        touched_entry = F.element_at(new_ts, month)
        return F.when(touched_entry.isNotNull(), touched_entry[FACT_TS]).otherwise(
            _anchored(F.col("_sp_old_ts"), F.col("_sp_old_last"), month, h))

    ts_history = F.transform(F.sequence(F.lit(0), F.lit(h - 1)), ts_at)
    return joined.select(*cfg.latest_columns, last.alias(LAST_MONTH), ts_history.alias(TS_HISTORY))
