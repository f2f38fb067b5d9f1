"""Fact selection (SPEC 2 and 5): the highest-ranked version of each key, and tombstones. Pure DataFrame code.

A version's rank is the struct (timestamp, tie-breakers..., prepared values in column order...), compared
descending. Spark orders structs field by field with NULL below every value, which is exactly the SPEC's rule,
and the prepared values make the order total, so ``max`` of that struct picks the same winner whatever the
task order. The highest-ranked *active* version comes from the same aggregate, which is what a tombstone shows.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from summary_pipeline.config import PipelineConfig
from summary_pipeline.prepare import ACTIVE, MONTH_INDEX, rank_fields, rolling_field

__all__ = ["FACT_TS", "KIND", "KIND_ACTIVE", "KIND_IGNORED_DELETE", "KIND_TOMBSTONE", "select_facts"]

FACT_TS = "fact_base_ts"
KIND = "_sp_kind"
KIND_ACTIVE = "active"
KIND_TOMBSTONE = "tombstone"
KIND_IGNORED_DELETE = "ignored_delete"


def select_facts(prepared: DataFrame, cfg: PipelineConfig) -> DataFrame:
    """One row per key (account, month): its fact, classified by ``_sp_kind``.

    ``active``: the winner is active, the row carries its prepared values. ``tombstone``: the winner is a
    delete and an active version exists; the row carries that active version's values, the delete's code and
    the delete's timestamp. ``ignored_delete``: a delete with no active version under it; it makes no summary
    row (kept here only so runs can count it). Also returns ``_sp_versions``, how many versions competed.
    """
    ranked = [*rank_fields(cfg), *cfg.value_columns,
              *(rolling_field(i) for i in range(len(cfg.rolling_columns))), ACTIVE]
    rank = F.struct(*ranked)
    agg = prepared.groupBy(cfg.key, MONTH_INDEX).agg(
        F.max(rank).alias("_sp_win"),
        F.max(F.when(F.col(ACTIVE), rank)).alias("_sp_act"),
        F.count(F.lit(1)).alias("_sp_versions"),
    )
    win, act = F.col("_sp_win"), F.col("_sp_act")
    kind = (F.when(win[ACTIVE], F.lit(KIND_ACTIVE))
            .when(act.isNotNull(), F.lit(KIND_TOMBSTONE))
            .otherwise(F.lit(KIND_IGNORED_DELETE)))
    shown = F.when(win[ACTIVE], win).otherwise(act)
    soft = cfg.soft_delete.column
    values = [(win[c] if c in (soft, cfg.month) else shown[c]).alias(c) for c in cfg.value_columns if c != cfg.key]
    rolling = [F.when(win[ACTIVE], win[rolling_field(i)]).alias(rolling_field(i))
               for i in range(len(cfg.rolling_columns))]
    return agg.select(
        cfg.key,
        *values,
        *rolling,
        win["_sp_ts"].alias(FACT_TS),
        F.col(MONTH_INDEX),
        win[ACTIVE].alias(ACTIVE),
        kind.alias(KIND),
        "_sp_versions",
    )
