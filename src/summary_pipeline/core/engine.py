"""The one engine: apply a batch of prepared versions to the tables' state. Pure DataFrame code.

Every mode runs through these functions; modes only choose the batch (SPEC 6). A full rebuild is the same
computation with an empty state.

Per account the batch touches, the engine picks the cheapest state that still gives the exact result:

* **new** accounts (no latest_summary row): the batch alone.
* **forward** accounts (every batch month after the account's last month, tombstones included): the account's
  latest_summary row, whose arrays and timestamp history stand in for the H-1 months before; no summary
  partition is read.
* **mixed** accounts (corrections, backfills, deletes of existing months): the summary rows within H-1 months of
  a batch month, which the runner reads partition-pruned (:func:`window_months`).

Rows rebuilt are the months whose fact the batch changed, and the existing rows up to H-1 months after
them.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from summary_pipeline.config import PipelineConfig
from summary_pipeline.core.facts import (
    DELETE,
    FACT_TS,
    FROM_BATCH,
    KIND,
    KIND_ACTIVE,
    KIND_IGNORED_DELETE,
    select_facts,
    version_columns,
)
from summary_pipeline.core.history import (
    BASE_MONTH,
    BASE_TS,
    BASE_TS_MONTH,
    EMIT,
    LAST_MONTH,
    TS_HISTORY,
    base_history,
    latest_rows,
    summary_rows,
)
from summary_pipeline.core.prepare import ACTIVE, MONTH_INDEX, is_active, month_index
from summary_pipeline.core.versions import facts_from_rows, versions_from_deletes, versions_from_rows

__all__ = [
    "CLASS",
    "Computed",
    "State",
    "account_classes",
    "decide",
    "fallback_accounts",
    "fallback_months",
    "month_name",
    "outputs",
    "rebuilt_rows",
    "window_months",
    "window_rows",
]

CLASS = "_sp_class"
NEW, FORWARD, MIXED = "new", "forward", "mixed"
#: Class column's companion: the account has a single batch month (for forward accounts, the nightly case).
SINGLE = "_sp_single"
TOUCHED = "_sp_touched"


def month_name(index: int) -> str:
    """Month index back to 'YYYY-MM'.

    >>> month_name(2026 * 12)
    '2026-01'
    """
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def window_months(touched: list[int], h: int) -> list[str]:
    """Every month within H-1 months of a touched month: the summary partitions a mixed account may need.

    >>> window_months([2026 * 12], 2)
    ['2025-12', '2026-01', '2026-02']
    """
    return [month_name(m) for m in sorted({t + d for t in touched for d in range(-(h - 1), h)})]


@dataclass(frozen=True)
class State:
    """Lazy views of the tables a run reads; None for a table that does not exist yet (or a full rebuild).

    ``latest`` is latest_summary limited to the batch's accounts; ``window`` is summary limited to the mixed
    accounts' windows (see :func:`window_months`).
    """

    latest: DataFrame | None = None
    window: DataFrame | None = None
    deletes: DataFrame | None = None


@dataclass(frozen=True)
class Computed:
    """Everything a run writes, lazily: rows to upsert per table, keys to drop from the deletes table."""

    summary: DataFrame
    latest: DataFrame
    deletes_upsert: DataFrame
    deletes_remove: DataFrame


def account_classes(batch: DataFrame, latest: DataFrame | None, cfg: PipelineConfig) -> DataFrame:
    """(key, class, single, old last month index) per batch account: new, forward or mixed, and whether the
    batch has a single month of it."""
    first = batch.groupBy(cfg.key).agg(F.min(MONTH_INDEX).alias("_sp_first"), F.max(MONTH_INDEX).alias("_sp_last"))
    single = (F.col("_sp_first") == F.col("_sp_last")).alias(SINGLE)
    if latest is None:
        return first.select(cfg.key, F.lit(NEW).alias(CLASS), single, F.lit(None).cast("int").alias(LAST_MONTH))
    joined = first.join(latest.select(cfg.key, LAST_MONTH), cfg.key, "left")
    cls = (F.when(F.col(LAST_MONTH).isNull(), F.lit(NEW))
           .when(F.col("_sp_first") > F.col(LAST_MONTH), F.lit(FORWARD))
           .otherwise(F.lit(MIXED)))
    return joined.select(cfg.key, cls.alias(CLASS), single, LAST_MONTH)


def in_touched_window(touched_months: Column, month: Column, h: int, *, before: bool) -> Column:
    """Whether ``month`` is within H-1 months after (and, with ``before``, before) some touched month."""
    low = -(h - 1) if before else 0
    return F.exists(touched_months, lambda t: (month - t >= low) & (month - t <= h - 1))


def decide(batch: DataFrame, classes: DataFrame, state: State, cfg: PipelineConfig) -> DataFrame:
    """The facts of every key the batch touches: the batch ranked against the versions the tables keep.

    ``classes`` is :func:`account_classes` of the batch; each fact row carries its account's class.
    """
    keys = batch.select(cfg.key, MONTH_INDEX).distinct()
    versions = batch.withColumn(FROM_BATCH, F.lit(True)).select(*version_columns(cfg), MONTH_INDEX, FROM_BATCH)
    if state.window is not None:
        at_keys = state.window.withColumn(MONTH_INDEX, month_index(F.col(cfg.month))).join(
            keys, [cfg.key, MONTH_INDEX], "left_semi")
        versions = versions.unionByName(versions_from_rows(at_keys, cfg))
    if state.deletes is not None:
        versions = versions.unionByName(versions_from_deletes(
            state.deletes.withColumn(MONTH_INDEX, month_index(F.col(cfg.month))).join(
                keys, [cfg.key, MONTH_INDEX], "left_semi").drop(MONTH_INDEX), cfg))
    return select_facts(versions.repartition(cfg.key), cfg).join(classes.select(cfg.key, CLASS, SINGLE), cfg.key)


def rebuilt_rows(facts: DataFrame, state: State, cfg: PipelineConfig) -> DataFrame:
    """The summary rows this run writes, from the facts :func:`decide` returned (see the module docstring),
    with two internal columns that :func:`outputs` uses: an active row of an account with a single batch month
    carries its account's new ``_sp_last_month`` and ``_sp_ts_history`` (NULL on every other row).

    The rows are exactly the rows a changed fact reaches, so the state's rows are never compared with the
    rebuilt ones, and the window of summary the run reads needs no history arrays. Every output reuses these
    rows: the runner computes them once.
    """
    h = cfg.history_length
    with_rows = (facts.where(F.col(KIND) != KIND_IGNORED_DELETE)
                 .drop(KIND, DELETE, FROM_BATCH, "_sp_batch_versions").withColumn(EMIT, F.lit(True)))
    # New and forward accounts need no summary row: their state is their latest_summary row (the base) or
    # nothing. Those with a single batch month, the bulk of a nightly run, are built without a window.
    direct = with_rows.where(F.col(CLASS).isin(NEW, FORWARD)).drop(CLASS)
    if state.latest is not None:
        base = state.latest.select(
            cfg.key,
            month_index(F.col(cfg.month)).alias(BASE_MONTH),
            F.col(LAST_MONTH).alias(BASE_TS_MONTH),
            F.col(TS_HISTORY).alias(BASE_TS),
            *(F.col(r.history_column).alias(base_history(r.history_column)) for r in cfg.rolling_columns),
        )
        direct = direct.join(base, cfg.key, "left")
    alone = summary_rows(direct.where(F.col(SINGLE)).drop(SINGLE), cfg, alone=True)
    window_facts = direct.where(~F.col(SINGLE)).drop(SINGLE)
    if state.window is not None:
        # Only a fact this batch changed can change a row: its own, and the H-1 months after it. (A batch
        # version that lost, or re-read a version already applied, changes nothing; nor does an ignored delete.)
        changed = (facts.where(F.col(FROM_BATCH) & (F.col(KIND) != KIND_IGNORED_DELETE))
                   .groupBy(cfg.key).agg(F.collect_list(MONTH_INDEX).alias(TOUCHED)))
        existing = state.window.withColumn(MONTH_INDEX, month_index(F.col(cfg.month)))
        old_facts = facts_from_rows(existing.join(facts, [cfg.key, MONTH_INDEX], "left_anti"), cfg)
        mixed = with_rows.where(F.col(CLASS) == MIXED).drop(CLASS, EMIT, SINGLE)
        context = (old_facts.unionByName(mixed).join(changed, cfg.key)
                   .withColumn(EMIT, in_touched_window(F.col(TOUCHED), F.col(MONTH_INDEX), h, before=False))
                   .drop(TOUCHED))
        window_facts = window_facts.unionByName(context, allowMissingColumns=True)
    return summary_rows(window_facts, cfg).unionByName(alone, allowMissingColumns=True)


def outputs(built: DataFrame, facts: DataFrame, state: State, older: DataFrame | None, cfg: PipelineConfig
            ) -> Computed:
    """Everything to write: the rebuilt rows (:func:`rebuilt_rows`) as summary rows, the latest_summary rows
    that changed, and the deletes table's changes.

    ``older`` holds, for the accounts whose latest month a delete may have removed, their latest old active row
    that this run did not turn into a tombstone (see :func:`fallback_months`), or None.
    """
    summary = built.drop(LAST_MONTH, TS_HISTORY)

    # An active alone row is its account's new latest row, complete (see summary_rows); the other accounts'
    # latest rows are chosen among their candidates, and kept only where they changed.
    own = built.where(F.col(TS_HISTORY).isNotNull())
    rest = built.where(F.col(TS_HISTORY).isNull())
    old = state.latest.join(own.select(cfg.key), cfg.key, "left_anti") if state.latest is not None else None
    has_row = F.col(KIND) != KIND_IGNORED_DELETE
    touched_facts = facts.select(cfg.key, MONTH_INDEX, F.when(has_row, F.col(FACT_TS)).alias(FACT_TS),
                                 has_row.alias("_sp_has_row"))
    candidates = [rest]
    if old is not None:
        candidates.append(old)
    if older is not None:
        candidates.append(older)
    chosen = latest_rows([c.select(*cfg.latest_columns) for c in candidates], touched_facts, old, cfg)
    if old is not None:
        chosen = _changed(chosen, old, [cfg.key])
    latest = own.select(*cfg.latest_columns, LAST_MONTH, TS_HISTORY).unionByName(chosen)

    new_deletes = facts.where(F.col(DELETE).isNotNull()).select(F.col(DELETE + ".*"))
    if state.deletes is not None:
        new_deletes = _changed(new_deletes, state.deletes.select(*version_columns(cfg)), [cfg.key, cfg.month])
        remove = (facts.where(F.col(DELETE).isNull()).select(cfg.key, MONTH_INDEX)
                  .join(state.deletes.withColumn(MONTH_INDEX, month_index(F.col(cfg.month))),
                        [cfg.key, MONTH_INDEX], "left_semi")
                  .select(cfg.key, _month_col(cfg)))
    else:
        remove = facts.select(cfg.key, _month_col(cfg)).limit(0)
    return Computed(summary=summary, latest=latest, deletes_upsert=new_deletes, deletes_remove=remove)


def _month_col(cfg: PipelineConfig) -> Column:
    """The month string of a fact row, from its month index."""
    m = F.col(MONTH_INDEX)
    return F.format_string("%04d-%02d", F.floor(m / 12).cast("int"), (m % 12 + 1).cast("int")).alias(cfg.month)


def _changed(new: DataFrame, old: DataFrame, keys: list[str]) -> DataFrame:
    """Rows of ``new`` that are missing from ``old`` or differ from it in any column (NULL-safe)."""
    cols = list(new.columns)
    o = old.select(*(F.col(c).alias(f"_sp_old_{c}") for c in cols))
    cond = [F.col(k) == F.col(f"_sp_old_{k}") for k in keys]
    same = F.lit(True)
    for c in cols:
        same = same & F.col(c).eqNullSafe(F.col(f"_sp_old_{c}"))
    joined = new.join(o, cond, "left")
    return joined.where(F.col(f"_sp_old_{keys[0]}").isNull() | ~same).select(*cols)


def fallback_accounts(batch: DataFrame, classes: DataFrame, cfg: PipelineConfig) -> DataFrame:
    """Accounts whose latest month a delete in the batch may turn into a tombstone: for those, the new latest
    row may be an older row outside this run's windows. Rare: a delete of the latest month.

    Decided from the batch alone, before the state is read, so it is a superset (the delete may lose to a newer
    version); reading an account too many only adds candidates that :func:`latest_rows` ranks anyway.
    """
    mixed = classes.where(F.col(CLASS) == MIXED).select(cfg.key, LAST_MONTH)
    return (batch.where(~F.col(ACTIVE)).join(mixed, cfg.key)
            .where(F.col(MONTH_INDEX) == F.col(LAST_MONTH)).select(cfg.key).distinct())


def fallback_months(old: DataFrame, facts: DataFrame, cfg: PipelineConfig) -> DataFrame:
    """(key, month) of each account's latest active row in ``old`` (summary rows, narrow columns are enough)
    whose month this run does not turn into a tombstone: with the rebuilt rows, which take precedence over it
    where they share a month, the candidates for the account's new latest row."""
    gone = facts.where(F.col(KIND) != KIND_ACTIVE).select(cfg.key, MONTH_INDEX)
    return (old.where(is_active(cfg)).withColumn(MONTH_INDEX, month_index(F.col(cfg.month)))
            .join(gone, [cfg.key, MONTH_INDEX], "left_anti")
            .groupBy(cfg.key).agg(F.max(cfg.month).alias(cfg.month)))


def window_rows(summary: DataFrame, batch: DataFrame, classes: DataFrame, cfg: PipelineConfig) -> DataFrame:
    """The summary rows a mixed account needs: within H-1 months (either side) of one of its batch months.

    ``summary`` should already be partition-pruned to :func:`window_months` by the caller.
    """
    mixed = classes.where(F.col(CLASS) == MIXED).select(cfg.key)
    touched = (batch.select(cfg.key, MONTH_INDEX).distinct().join(mixed, cfg.key, "left_semi")
               .groupBy(cfg.key).agg(F.collect_list(MONTH_INDEX).alias(TOUCHED)))
    month = month_index(F.col(cfg.month))
    return (summary.join(touched, cfg.key)
            .where(in_touched_window(F.col(TOUCHED), month, cfg.history_length, before=True))
            .drop(TOUCHED))
