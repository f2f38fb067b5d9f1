"""History arrays, grids, row ``base_ts`` and latest_summary (SPEC 5). Pure Column/DataFrame code.

Every summary row of an account looks back over the same window: months ``m-H+1 .. m``. One window
(partitioned by account, ordered by month index, a range frame of H months) gives both the active facts that
fill the history arrays and the greatest ``fact_base_ts`` that becomes the row's ``base_ts``. The collected facts
become a map from month index to rolling values, and each array position k reads month ``m - k`` from it, so a
missing or deleted month is NULL without any special case.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from summary_pipeline.config import GridColumn, PipelineConfig
from summary_pipeline.facts import FACT_TS
from summary_pipeline.prepare import ACTIVE, MONTH_INDEX, is_active, rolling_field

__all__ = ["grid", "latest_rows", "summary_rows"]


def grid(history: Column, spec: GridColumn) -> Column:
    """A grid string: each element as a string, NULL shown as the placeholder, joined by the separator.

    >>> # e.g. ['0', NULL, '1'] with placeholder '?' and separator '' -> '0?1'
    """
    placeholder = F.lit(spec.placeholder)
    return F.concat_ws(spec.separator, F.transform(history, lambda x: F.coalesce(x.cast("string"), placeholder)))


def _pluck(structs: Column, field: str) -> Column:
    """The array of one field of an array of (possibly NULL) structs."""
    return F.transform(structs, lambda s: s[field])


def summary_rows(facts: DataFrame, cfg: PipelineConfig) -> DataFrame:
    """Summary rows (SPEC 5) for every fact row of ``facts`` that makes one (active or tombstone).

    ``facts`` must hold, for each account it covers, every fact in the H-1 months before the earliest row to
    build, with ``_sp_active``, the rolling values and ``fact_base_ts``. Rows with neither an active fact nor a
    tombstone must already be filtered out: a summary row exists exactly where a fact row is given.
    """
    h = cfg.history_length
    window = Window.partitionBy(cfg.key).orderBy(MONTH_INDEX).rangeBetween(-(h - 1), 0)
    n = len(cfg.rolling_columns)
    entry = F.struct(F.col(MONTH_INDEX).alias("k"),
                     F.struct(*(F.col(rolling_field(i)) for i in range(n))).alias("v"))
    seen = F.collect_list(F.when(F.col(ACTIVE), entry)).over(window)
    by_month = F.map_from_entries(seen)
    m = F.col(MONTH_INDEX)
    positioned = F.transform(F.sequence(F.lit(0), F.lit(h - 1)), lambda k: F.element_at(by_month, m - k))
    with_window = facts.select("*", positioned.alias("_sp_pos"),
                               F.max(FACT_TS).over(window).alias("_sp_window_ts"))
    histories = {r.history_column: _pluck(F.col("_sp_pos"), rolling_field(i)).cast(f"array<{r.spark_type}>")
                 for i, r in enumerate(cfg.rolling_columns)}
    grids = {g.name: grid(histories[f"{g.mapper_rolling_column}_history"], g) for g in cfg.grid_columns}
    values = [F.col("_sp_window_ts").alias(c) if c == cfg.ts else F.col(c) for c in cfg.value_columns]
    return with_window.select(
        *values,
        *(col.alias(name) for name, col in histories.items()),
        *(col.alias(name) for name, col in grids.items()),
        F.col(FACT_TS),
    )


def latest_rows(summary: DataFrame, cfg: PipelineConfig) -> DataFrame:
    """latest_summary (SPEC 5): per account, the row of its greatest active month, else its greatest tombstone."""
    order = Window.partitionBy(cfg.key).orderBy(is_active(cfg).desc(), F.col(cfg.month).desc())
    return (summary.withColumn("_sp_rn", F.row_number().over(order))
            .where(F.col("_sp_rn") == 1)
            .select(*cfg.latest_columns))
