"""The plan of one run, and the reads it calls for.

A run decides what it will read before it reads any summary partition: from the batch and latest_summary's
key and last-month columns it classifies every batch account (new, forward or mixed: see
:mod:`summary_pipeline.core.engine`), lists the month partitions the mixed accounts' correction windows
reach, and the accounts whose latest month a batch delete may remove. That :class:`Plan` is frozen; the
runner then reads exactly what it names (:func:`read_state`, :func:`read_older`) and hands the frames to the
core. Nothing here computes a summary row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from summary_pipeline.config import PipelineConfig
from summary_pipeline.core.engine import (
    CLASS,
    MIXED,
    State,
    account_classes,
    fallback_accounts,
    fallback_months,
    window_months,
    window_rows,
)
from summary_pipeline.core.facts import FACT_TS, VERSION
from summary_pipeline.core.prepare import MONTH_INDEX
from summary_pipeline.store.tables import table_exists

__all__ = ["Plan", "make_plan", "materialize", "read_older", "read_state", "summary_window"]


def materialize(df: DataFrame) -> DataFrame:
    """Compute a frame once and cut its lineage, so the frames built on it stay small to plan and run.

    A local checkpoint keeps the blocks on the executors: losing one fails the run, which the same command
    then repeats (runs are idempotent).
    """
    return df.localCheckpoint(eager=True)


@dataclass(frozen=True)
class Plan:
    """What a run reads, decided before it reads any summary partition.

    ``classes`` is (key, class, single, old last month) per batch account, computed once; ``window_months`` the
    summary partitions the mixed accounts' windows need (none: no summary is read); ``fallback_accounts`` the
    accounts whose older rows may be needed because a batch delete may remove their latest month.
    ``state_exists`` is False for a full rebuild or a first run: there is no state to read.
    """

    classes: DataFrame
    window_months: tuple[str, ...] = ()
    fallback_accounts: tuple[Any, ...] = ()
    state_exists: bool = False

    def describe(self) -> str:
        """One line for the log: how far the correction windows reach."""
        if not self.window_months:
            return "no correction windows: no summary partition is read"
        return (f"correction windows over {len(self.window_months)} month partitions "
                f"({self.window_months[0]} to {self.window_months[-1]})")


def make_plan(spark: SparkSession, cfg: PipelineConfig, batch: DataFrame, full_rebuild: bool) -> Plan:
    """The plan for ``batch`` (prepared, valid rows): two small Spark jobs beside the classification."""
    if full_rebuild or not table_exists(spark, cfg.latest_history_table):
        return Plan(classes=account_classes(batch, None, cfg))
    classes = materialize(account_classes(batch, spark.table(cfg.latest_history_table), cfg))
    mixed = (batch.select(cfg.key, MONTH_INDEX).distinct()
             .join(classes.where(F.col(CLASS) == MIXED), cfg.key, "left_semi")
             .select(MONTH_INDEX).distinct().collect())
    months = window_months([int(r[0]) for r in mixed], cfg.history_length) if mixed else []
    accounts = [r[0] for r in fallback_accounts(batch, classes, cfg).collect()] if mixed else []
    return Plan(classes=classes, window_months=tuple(months), fallback_accounts=tuple(accounts),
                state_exists=True)


def read_state(spark: SparkSession, cfg: PipelineConfig, plan: Plan, batch: DataFrame) -> State:
    """The tables' state the plan needs: the batch accounts' latest rows (read once: they are the forward
    accounts' base, latest candidates, and what the new latest rows are compared with), the deletes table,
    and the mixed accounts' windows without their history arrays and grids (the engine rebuilds those from
    the rows' own values), read from only the plan's month partitions."""
    if not plan.state_exists:
        return State()
    latest = materialize(spark.table(cfg.latest_history_table).join(plan.classes.select(cfg.key), cfg.key,
                                                                    "left_semi"))
    deletes = spark.table(cfg.deletes_table) if table_exists(spark, cfg.deletes_table) else None
    window = summary_window(spark, cfg, plan, batch)
    return State(latest=latest, window=materialize(window) if window is not None else None, deletes=deletes)


def summary_window(spark: SparkSession, cfg: PipelineConfig, plan: Plan, batch: DataFrame) -> DataFrame | None:
    """The mixed accounts' window rows, lazily: the plan's month partitions of summary, without history arrays
    and grids, limited to each account's window (:func:`~summary_pipeline.core.engine.window_rows`); None
    when the plan reads no summary."""
    if not plan.window_months:
        return None
    pruned = (spark.table(cfg.destination_table).where(F.col(cfg.month).isin(list(plan.window_months)))
              .select(*cfg.value_columns, FACT_TS, VERSION))
    return window_rows(pruned, batch, plan.classes, cfg)


def read_older(spark: SparkSession, cfg: PipelineConfig, plan: Plan, facts: DataFrame) -> DataFrame | None:
    """For the plan's fallback accounts, each one's latest old active row that this run does not turn into a
    tombstone (rare: only when a delete reaches an account's latest month), or None.

    Those rows can lie in any month, so this first scans just the key, month and soft-delete columns of those
    accounts, then reads the full rows of the few months found, partition-pruned. (Reading the full rows of
    the accounts at once decodes every history array of the table.)
    """
    if not plan.fallback_accounts:
        return None
    summary = spark.table(cfg.destination_table).where(F.col(cfg.key).isin(list(plan.fallback_accounts)))
    narrow = summary.select(cfg.key, cfg.month, cfg.soft_delete.column)
    found = fallback_months(narrow, facts, cfg).collect()
    if not found:
        return None
    months = sorted({r[cfg.month] for r in found})
    pairs = spark.createDataFrame([(r[cfg.key], r[cfg.month]) for r in found],
                                  narrow.select(cfg.key, cfg.month).schema)
    return summary.where(F.col(cfg.month).isin(months)).join(pairs, [cfg.key, cfg.month], "left_semi")
