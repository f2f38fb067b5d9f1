"""What the tables already say, turned back into versions and facts. Pure DataFrame code.

An incremental run must rank its batch against every version ever read (SPEC 2: R only grows) without reading
them again. The tables keep just enough to do that exactly:

* a summary row shows the values of one version (the winner, or for a tombstone the best active version under
  the delete), and its internal ``_sp_version`` keeps that version's rank fields and own soft-delete value;
* the deletes table keeps every winning delete in full (the deletes behind tombstones, and deletes with no
  active version under them, which make no row).

A version that lost before can never win later (a later winner must outrank the current one), so these two
are all the versions that can matter.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from summary_pipeline.config import PipelineConfig
from summary_pipeline.core.facts import FACT_TS, FROM_BATCH, VERSION, version_columns
from summary_pipeline.core.prepare import ACTIVE, MONTH_INDEX, is_active, month_index, rank_fields, rolling_field

__all__ = ["facts_from_rows", "rolling_from_row", "versions_from_deletes", "versions_from_rows"]


def rolling_from_row(cfg: PipelineConfig, i: int) -> Column:
    """Rolling value i of the version a summary row shows: its column when it has one, else the copy kept in
    ``_sp_version``. Never the history arrays, so reading state does not decode them."""
    r = cfg.rolling_columns[i]
    if r.name in cfg.value_columns:
        return F.col(r.name)
    return F.col(VERSION)[rolling_field(i)]


def versions_from_rows(rows: DataFrame, cfg: PipelineConfig) -> DataFrame:
    """The version each summary row shows, as a prepared version (active, not from the batch)."""
    v = F.col(VERSION)
    values = [
        (v["_sp_ts"] if c == cfg.ts else v["_sp_soft"] if c == cfg.soft_delete.column else F.col(c)).alias(c)
        for c in cfg.value_columns
    ]
    return rows.select(
        *(v[f].alias(f) for f in rank_fields(cfg)),
        *values,
        *(rolling_from_row(cfg, i).alias(rolling_field(i)) for i in range(len(cfg.rolling_columns))),
        F.lit(True).alias(ACTIVE),
        month_index(F.col(cfg.month)).alias(MONTH_INDEX),
        F.lit(False).alias(FROM_BATCH),
    ).select(*version_columns(cfg), MONTH_INDEX, FROM_BATCH)


def versions_from_deletes(deletes: DataFrame, cfg: PipelineConfig) -> DataFrame:
    """Rows of the deletes table (full prepared versions) as versions not from the batch."""
    return deletes.select(*version_columns(cfg), month_index(F.col(cfg.month)).alias(MONTH_INDEX),
                          F.lit(False).alias(FROM_BATCH))


def facts_from_rows(rows: DataFrame, cfg: PipelineConfig) -> DataFrame:
    """Summary rows as fact rows: they feed the windows of the rows a run rebuilds, and rebuild themselves.

    A row's own facts are its values, its rolling values (NULL for a tombstone: deleted months never show)
    and its ``fact_base_ts``.
    """
    active = is_active(cfg)
    return rows.select(
        *cfg.value_columns,
        *(F.when(active, rolling_from_row(cfg, i)).alias(rolling_field(i)) for i in range(len(cfg.rolling_columns))),
        F.col(FACT_TS),
        month_index(F.col(cfg.month)).alias(MONTH_INDEX),
        active.alias(ACTIVE),
        F.col(VERSION),
    )
