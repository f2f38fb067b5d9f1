"""The benchmark's I/O floors: logic-free jobs that read and write the volumes a run had to, so that a run's time
can be judged against what its I/O alone costs on the same machine (docs/PERFORMANCE.md, "The benchmark")."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from summary_pipeline.config import PipelineConfig
from summary_pipeline.core.engine import window_months
from summary_pipeline.core.facts import FACT_TS, VERSION
from summary_pipeline.core.prepare import rank_fields, renamed
from summary_pipeline.store.tables import replace_table
from summary_pipeline.tools.workloads import SEED

__all__ = ["initial_floor", "io_floor"]


def io_floor(spark: SparkSession, cfg: PipelineConfig, watermark: dt.datetime, batch_months: list[int],
             summary_rows: int, latest_rows: int) -> int:
    """Read what the incremental run had to read and write as many rows as it wrote, with no logic.

    The reads are the batch, latest_summary, and the correction windows' month partitions with the columns
    the run reads there (no history arrays or grids, see ``plan.summary_window``). The writes are rows as wide
    as the run's (latest_summary rows, with every history array), drawn at random from latest_summary, which the
    run reads anyway, and spread over the window's months, written like the run writes (month partitions, the
    layout's properties, every task in parallel). (Sampling the window's own rows instead would read their
    arrays, which the run never does; a ``limit`` would funnel every row through one task.)"""
    noop = {"format": "noop", "mode": "overwrite"}
    batch = spark.table(cfg.source_table).where(F.col(cfg.ts) > F.lit(watermark))
    batch.write.save(**noop)
    latest = spark.table(cfg.latest_history_table)
    latest.write.save(**noop)
    months = window_months(batch_months, cfg.history_length)
    window = spark.table(cfg.destination_table).where(F.col(cfg.month).isin(months))
    window.select(*cfg.value_columns, FACT_TS, VERSION).write.save(**noop)
    ns = cfg.destination_table.rsplit(".", 1)[0]
    total = max(latest.count(), 1)
    month = F.element_at(F.array(*(F.lit(m) for m in months)),
                         (F.pmod(F.xxhash64(F.col(cfg.key), F.rand(SEED)), F.lit(len(months))) + 1).cast("int"))
    rows = latest.sample(withReplacement=True, fraction=summary_rows / total, seed=SEED)
    replace_table(rows.withColumn(cfg.month, month), f"{ns}.floor_summary", partition_by=cfg.month,
                  properties=cfg.layout.properties())
    rows = latest.sample(withReplacement=False, fraction=min(1.0, latest_rows / total), seed=SEED)
    replace_table(rows, f"{ns}.floor_latest", properties=cfg.layout.properties(latest=True))
    return int(batch.count())


def initial_floor(cfg: PipelineConfig, source: DataFrame, rows: int, versions: int) -> int:
    """Read what the initial build reads and write as many rows as it wrote, as wide, with no logic.

    The reads are the source columns ``prepare`` reads (the config's ``columns`` and the key, month, timestamp,
    soft-delete and tie-breaker columns) of the ``versions`` the build read. The writes are a sample of ``rows``
    of those versions, each as wide as a summary row: every value column, one array of H copies of its value
    per rolling column, one grid of H elements per grid column, fact_base_ts and the rank fields, written like
    the build writes (month partitions, the layout's properties). The config's per-row expressions (column
    transformations, inferred columns, rolling values) are evaluated, since the written values are made of
    them; what is left out is the build's work: ranking versions, the history windows, the grids' assembly."""
    h = cfg.history_length
    ties = rank_fields(cfg)[1:]
    df = source.select(*renamed(cfg), *(F.col(c).alias(t) for c, t in zip(cfg.tie_breaker_columns, ties, strict=True)))
    for step in (*cfg.column_transformations, *cfg.inferred_columns):
        df = df.withColumn(step.name, F.expr(step.mapper_expr))
    value = {r.name: F.expr(r.mapper_expr).cast(r.spark_type) for r in cfg.rolling_columns}
    grids = [F.concat_ws(g.separator, F.array_repeat(F.coalesce(value[g.mapper_rolling_column].cast("string"),
                                                                F.lit(g.placeholder)), h)).alias(g.name)
             for g in cfg.grid_columns]
    rank = F.struct(*(F.col(c) for c in (cfg.ts, *ties, cfg.soft_delete.column)))
    written = df.sample(withReplacement=False, fraction=min(1.0, rows / max(versions, 1)), seed=SEED).select(
        *cfg.value_columns, *(F.array_repeat(value[r.name], h).alias(r.history_column) for r in cfg.rolling_columns),
        *grids, F.col(cfg.ts).alias(FACT_TS), rank.alias(VERSION))
    replace_table(written, f"{cfg.destination_table.rsplit('.', 1)[0]}.floor_initial", partition_by=cfg.month,
                  properties=cfg.layout.properties())
    return rows
