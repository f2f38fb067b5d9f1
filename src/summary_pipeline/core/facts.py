"""Fact selection (SPEC 2 and 5): the highest-ranked version of each key, and tombstones. Pure DataFrame code.

A version's rank is the struct (timestamp, tie-breakers..., prepared values in column order..., rolling
values), compared descending. Spark orders structs field by field with NULL below every value, which is exactly
the SPEC's rule, and the prepared values make the order total, so ``max`` of that struct picks the same winner
whatever the task order. The highest-ranked *active* version comes from the same aggregate, which is what a
tombstone shows.

The input may mix versions read from the source with versions rebuilt from the tables' state
(:mod:`summary_pipeline.core.versions`): an incremental run ranks the batch against what the tables already hold, and
gets exactly the fact that ranking every version ever read would give.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from summary_pipeline.config import PipelineConfig
from summary_pipeline.core.prepare import ACTIVE, MONTH_INDEX, rank_fields, rolling_field

__all__ = [
    "DELETE",
    "FACT_TS",
    "FROM_BATCH",
    "KIND",
    "KIND_ACTIVE",
    "KIND_IGNORED_DELETE",
    "KIND_TOMBSTONE",
    "VERSION",
    "extra_rolling",
    "select_facts",
    "version_columns",
    "version_fields",
]

FACT_TS = "fact_base_ts"
KIND = "_sp_kind"
KIND_ACTIVE = "active"
KIND_TOMBSTONE = "tombstone"
KIND_IGNORED_DELETE = "ignored_delete"
#: Internal summary column: the rank fields of the version whose values a row shows (SPEC 3 allows these).
VERSION = "_sp_version"
#: Per fact: the full winning delete (NULL unless the fact is a delete), kept in the deletes table.
DELETE = "_sp_delete"
#: Marks versions read from the source in this run (the others are rebuilt from the tables).
FROM_BATCH = "_sp_from_batch"


def extra_rolling(cfg: PipelineConfig) -> list[int]:
    """Rolling columns whose value is not also a summary column, so a row must keep it in ``_sp_version``."""
    values = set(cfg.value_columns)
    return [i for i, r in enumerate(cfg.rolling_columns) if r.name not in values]


def version_fields(cfg: PipelineConfig) -> list[str]:
    """Field names of ``_sp_version``: rank fields, own soft-delete value, rolling values not kept elsewhere."""
    return [*rank_fields(cfg), "_sp_soft", *(rolling_field(i) for i in extra_rolling(cfg))]


def _version_struct(shown: Column, cfg: PipelineConfig) -> Column:
    values = [shown[f] for f in rank_fields(cfg)] + [shown[cfg.soft_delete.column]]
    values += [shown[rolling_field(i)] for i in extra_rolling(cfg)]
    return F.struct(*(v.alias(n) for v, n in zip(values, version_fields(cfg), strict=True)))


def version_columns(cfg: PipelineConfig) -> list[str]:
    """Every column of a prepared version that takes part in its rank, in rank order."""
    return [*rank_fields(cfg), *cfg.value_columns, *(rolling_field(i) for i in range(len(cfg.rolling_columns))),
            ACTIVE]


def select_facts(versions: DataFrame, cfg: PipelineConfig) -> DataFrame:
    """One row per key (account, month): its fact, classified by ``_sp_kind``.

    ``active``: the winner is active, the row carries its prepared values. ``tombstone``: the winner is a
    delete and an active version exists; the row carries that active version's values, the delete's code and
    the delete's timestamp. ``ignored_delete``: a delete with no active version under it; it makes no summary
    row. Also returns ``_sp_version`` (the shown version's rank fields), ``_sp_delete`` (the winning delete in
    full, for the deletes table), whether the winner came from this run's batch, and how many batch versions
    competed (``_sp_batch_versions``).
    """
    # Among identical versions, the one rebuilt from the tables wins, so a re-read counts as a duplicate.
    rank = F.struct(*version_columns(cfg), (~F.col(FROM_BATCH)).alias("_sp_rebuilt"))
    agg = versions.groupBy(cfg.key, MONTH_INDEX).agg(
        F.max(rank).alias("_sp_win"),
        F.max(F.when(F.col(ACTIVE), rank)).alias("_sp_act"),
        F.count(F.when(F.col(FROM_BATCH), 1)).alias("_sp_batch_versions"),
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
    delete = F.when(~win[ACTIVE], F.struct(*(win[c].alias(c) for c in version_columns(cfg))))
    return agg.select(
        cfg.key,
        *values,
        *rolling,
        win["_sp_ts"].alias(FACT_TS),
        F.col(MONTH_INDEX),
        win[ACTIVE].alias(ACTIVE),
        kind.alias(KIND),
        F.when(act.isNotNull(), _version_struct(shown, cfg)).alias(VERSION),
        delete.alias(DELETE),
        (~win["_sp_rebuilt"]).alias(FROM_BATCH),
        "_sp_batch_versions",
    )
