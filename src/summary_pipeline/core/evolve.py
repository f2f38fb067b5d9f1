"""Applying a config change to built tables (``summary-pipeline evolve``): which path, and the columns path's
math. Pure DataFrame code; the runner reads and writes.

Two paths:

* **columns**: the change adds, drops or redefines rolling, grid or inferred columns, and every expression it
  adds or drops reads only a summary row's own values (no source column, no value a rolling cast replaces,
  not the soft-delete column or ``base_ts``, whose row values are not the version's). A row's values are its
  version's prepared values, so the new columns are computed from the rows the tables hold; no source version
  is read and the other columns and arrays stay as they are. No winner can change: a value computed from a
  version's values ties wherever those values tie, so it never decides a rank (SPEC 2) that they did not. A
  new rolling value that does not fit its type would reject its version (SPEC 9) and change R: such a change
  goes the rebuild path (:func:`misfits` finds it).
* **rebuild**: anything else (history length, keys, ranking, transformations, ...): every version of the
  source again under the new config, as ``initial`` does.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from summary_pipeline.config import PipelineConfig
from summary_pipeline.core.engine import Computed
from summary_pipeline.core.facts import VERSION, extra_rolling, version_columns
from summary_pipeline.core.history import LAST_MONTH, TS_HISTORY, grid
from summary_pipeline.core.prepare import ACTIVE, MONTH_INDEX, is_active, month_index, rank_fields, rolling_field
from summary_pipeline.definition import Change

__all__ = ["COLUMNS", "REBUILD", "EvolvePlan", "evolved", "misfits", "new_histories", "plan_evolve", "with_inferred"]

COLUMNS, REBUILD = "columns", "rebuild"


@dataclass(frozen=True)
class EvolvePlan:
    """What ``evolve`` does: the changes, the path and why; for the columns path, what it computes."""

    changes: tuple[Change, ...]
    path: str
    why: str
    #: Rolling columns whose values and arrays are computed from the rows (added or redefined).
    rolling: tuple[str, ...] = ()
    #: Inferred columns computed from the rows (added or redefined).
    inferred: tuple[str, ...] = ()
    #: Grid columns built again from their arrays.
    grids: tuple[str, ...] = ()
    #: Table columns that go.
    dropped: tuple[str, ...] = ()

    def lines(self, cfg: PipelineConfig) -> list[str]:
        """The plan, a line each, as ``evolve`` prints it."""
        out = ["Changes:", *(f"  {c.describe()}" for c in self.changes), f"Path: {self.path} ({self.why})"]
        tables = f"{cfg.destination_table}, {cfg.latest_history_table} and {cfg.deletes_table}"
        if self.path == COLUMNS:
            made = [*(f"{n}_history" for n in self.rolling), *self.inferred, *self.grids]
            out += [f"  computes {', '.join(made) or 'no column'}; drops {', '.join(self.dropped) or 'no column'}",
                    f"  reads {tables} (no source version); writes them whole, published after the audit"]
        else:
            out.append(f"  reads every version of {cfg.source_table}; writes {tables} whole, published after "
                       "the audit")
        return out


def _mentions(expr: str, name: str) -> bool:
    return re.search(rf"(?<![\w.`]){re.escape(name)}(?!\w)", expr, re.IGNORECASE) is not None


def _row_columns(cfg: PipelineConfig, before: str | None = None) -> list[str]:
    """The summary columns whose row value is the version's prepared value as an expression sees it (module
    docstring); for an inferred column ``before``, only those the preparation computed before it."""
    value = list(cfg.value_columns)
    stop = value.index(before) if before in value else len(value)
    rolling = {r.name for r in cfg.rolling_columns}
    return [c for c in value[:stop] if c not in (cfg.ts, cfg.soft_delete.column) and c not in rolling]


def _evaluates(rows: DataFrame, expr: str, columns: list[str]) -> bool:
    """Whether ``expr`` resolves over just ``columns`` of ``rows`` (analysis only: no job)."""
    try:
        rows.select(*columns).select(F.expr(expr))
    except Exception:  # unresolved, or unparsable (preflight reports a new one; an old one reads unknown columns)
        return False
    return True


def plan_evolve(cfg: PipelineConfig, old: PipelineConfig, diff: list[Change], summary: DataFrame) -> EvolvePlan:
    """Choose the path for ``diff`` (``old`` config -> ``cfg``), given the summary table (its schema only)."""
    changes = tuple(diff)

    def rebuild(why: str) -> EvolvePlan:
        return EvolvePlan(changes, REBUILD, why)

    others = [c.key for c in diff if not c.column]
    if others:
        return rebuild(f"{', '.join(others)} changed: every row is built again")
    touched = {(c.list_name, c.name) for c in diff}
    rolling = tuple(r.name for r in cfg.rolling_columns if ("rolling_columns", r.name) in touched)
    inferred = tuple(c.name for c in cfg.inferred_columns if ("inferred_columns", c.name) in touched)
    fixed = (set(cfg.columns.values()) | {cfg.key, cfg.month, cfg.ts, cfg.soft_delete.column}
             | {r.name for r in (*cfg.rolling_columns, *old.rolling_columns)})
    # An inferred or rolling column sharing a name with another column replaces that column's values.
    for n in (*inferred, *(c.name for c in old.inferred_columns if ("inferred_columns", c.name) in touched)):
        if n in fixed:
            return rebuild(f"inferred column {n} shares its name with another column")
    for n in (*rolling, *(r.name for r in old.rolling_columns if ("rolling_columns", r.name) in touched)):
        if n in set(cfg.value_columns) | set(old.value_columns):
            return rebuild(f"rolling column {n} shares its name with a column, whose values it replaces")
    # Every expression dropped must have read only the row's values (so it never decided a rank) ...
    for c in old.inferred_columns:
        if ("inferred_columns", c.name) in touched and not _evaluates(summary, c.mapper_expr,
                                                                       _row_columns(old, before=c.name)):
            return rebuild(f"inferred column {c.name}'s old expression reads more than the summary row keeps")
    for r in old.rolling_columns:
        if ("rolling_columns", r.name) in touched and not _evaluates(summary, r.mapper_expr, _row_columns(old)):
            return rebuild(f"rolling column {r.name}'s old expression reads more than the summary row keeps")
    # ... and every expression added must read only those, and feed no column the path keeps.
    rows = summary
    exprs = [(r.name, r.mapper_expr) for r in cfg.rolling_columns]
    exprs += [(c.name, c.mapper_expr) for c in cfg.inferred_columns]
    for c in cfg.inferred_columns:
        if c.name not in inferred:
            continue
        if not _evaluates(rows, c.mapper_expr, _row_columns(cfg, before=c.name)):
            return rebuild(f"inferred column {c.name} reads a value the summary row does not keep as the "
                           "version had it")
        rows = rows.withColumn(c.name, F.expr(c.mapper_expr))
        users = [name for name, text in exprs if name not in (*rolling, *inferred) and _mentions(text, c.name)]
        if users:
            return rebuild(f"inferred column {c.name} feeds {', '.join(users)}, which would be built again")
    for r in cfg.rolling_columns:
        if r.name in rolling and not _evaluates(rows, r.mapper_expr, _row_columns(cfg)):
            return rebuild(f"rolling column {r.name} reads a value the summary row does not keep as the version "
                           "had it")
    grids = tuple(g.name for g in cfg.grid_columns
                  if ("grid_columns", g.name) in touched or g.mapper_rolling_column in rolling)
    kept = set(cfg.summary_columns)
    dropped = tuple(c for c in summary.columns if c not in kept and c != VERSION)
    return EvolvePlan(changes, COLUMNS, "only rolling, grid or inferred columns changed, each computed from the "
                      "values the summary rows keep", rolling, inferred, grids, dropped)


def _cast(cfg: PipelineConfig, name: str, *, raw: bool = False) -> Column:
    r = next(r for r in cfg.rolling_columns if r.name == name)
    value = F.expr(r.mapper_expr)
    return value if raw else value.cast(r.spark_type)


def misfits(cfg: PipelineConfig, plan: EvolvePlan) -> Column:
    """An aggregate: how many rows (summary or deletes rows, inferred columns computed) have a new rolling
    value that does not fit its type, which would reject their version under the new config (SPEC 9)."""
    bad = [F.when(_cast(cfg, n, raw=True).isNotNull() & _cast(cfg, n).isNull(), 1) for n in plan.rolling]
    return F.count(F.coalesce(*bad)) if bad else F.lit(0)


def with_inferred(rows: DataFrame, cfg: PipelineConfig, plan: EvolvePlan) -> DataFrame:
    """``rows`` with the plan's inferred columns computed from their own values, in config order."""
    for c in cfg.inferred_columns:
        if c.name in plan.inferred:
            rows = rows.withColumn(c.name, F.expr(c.mapper_expr))
    return rows


def _rolling_fields(cfg: PipelineConfig, old: PipelineConfig, plan: EvolvePlan, kept: Column) -> list[Column]:
    """Every rolling field ``_sp_r<i>`` of a version under ``cfg``: computed for the plan's rolling columns,
    else the field of the same column in ``kept`` (a struct with the old config's fields)."""
    names = [r.name for r in old.rolling_columns]
    return [(_cast(cfg, r.name) if r.name in plan.rolling else kept[rolling_field(names.index(r.name))])
            .alias(rolling_field(i)) for i, r in enumerate(cfg.rolling_columns)]


def new_histories(summary: DataFrame, cfg: PipelineConfig, plan: EvolvePlan) -> DataFrame:
    """(key, month, the plan's rolling arrays) for every summary row: the active rows' values of the account's
    last H months, by month. Computed from a narrow projection of the rows (their key, month and the values
    the expressions read), so the window shuffles and sorts a few columns, not the rows' other arrays; the H
    positions are compiled map lookups (a ``transform`` lambda would run interpreted, element by element)."""
    h = cfg.history_length
    rows = with_inferred(summary, cfg, plan)
    values = [F.when(is_active(cfg), _cast(cfg, n)).alias(f"_sp_new{i}") for i, n in enumerate(plan.rolling)]
    narrow = rows.select(cfg.key, cfg.month, month_index(F.col(cfg.month)).alias(MONTH_INDEX), *values)
    window = Window.partitionBy(cfg.key).orderBy(MONTH_INDEX).rangeBetween(-(h - 1), 0)
    seen = F.map_from_entries(F.collect_list(F.struct(F.col(MONTH_INDEX), F.struct(
        *(F.col(f"_sp_new{i}") for i in range(len(plan.rolling)))))).over(window))
    kinds = {r.name: r.spark_type for r in cfg.rolling_columns}
    arrays = [F.expr("array(" + ", ".join(
        f"element_at(`_sp_seen`, `{MONTH_INDEX}` - {k}).`_sp_new{i}`" for k in range(h)) + ")"
    ).cast(f"array<{kinds[n]}>").alias(f"{n}_history") for i, n in enumerate(plan.rolling)]
    return narrow.withColumn("_sp_seen", seen).select(cfg.key, cfg.month, *arrays)


def _completed(rows: DataFrame, cfg: PipelineConfig, old: PipelineConfig, plan: EvolvePlan,
               columns: DataFrame | None) -> DataFrame:
    """Summary or latest_summary rows with the plan's columns: those in ``columns`` (new arrays, and for
    latest_summary inferred values, by key and month) joined in, the other inferred columns computed from the
    row, grids from the arrays, and on summary ``_sp_version`` with the new config's rolling fields."""
    if columns is not None:
        # A hash of the narrow columns, streamed by the wide rows: those are not sorted either.
        given = [c for c in columns.columns if c not in (cfg.key, cfg.month)]
        rows = rows.drop(*given).join(columns.hint("shuffle_hash"), [cfg.key, cfg.month])
    rows = with_inferred(rows, cfg, dataclasses.replace(
        plan, inferred=tuple(c for c in plan.inferred if columns is None or c not in columns.columns)))
    grids = {g.name: grid(F.col(f"{g.mapper_rolling_column}_history"), g, cfg.history_length)
             for g in cfg.grid_columns if g.name in plan.grids}
    if VERSION in rows.columns:
        kept = F.col(VERSION)
        fields = _rolling_fields(cfg, old, plan, kept)
        version = F.struct(*(kept[f].alias(f) for f in (*rank_fields(cfg), "_sp_soft")),
                           *(fields[i] for i in extra_rolling(cfg)))
        grids[VERSION] = F.when(kept.isNotNull(), version)
    return rows.withColumns(grids)


def evolved(cfg: PipelineConfig, old: PipelineConfig, plan: EvolvePlan, summary: DataFrame, latest: DataFrame,
            deletes: DataFrame, histories: DataFrame | None) -> Computed:
    """The three tables under ``cfg`` by the columns path, lazily, from the tables as ``old`` built them and
    the plan's new arrays (:func:`new_histories`; None when the plan adds no rolling column).

    Each summary row is joined with its own arrays; the caller makes that join keep the rows where they are
    (both sides partitioned by month), so the wide rows are never shuffled."""
    rows = _completed(summary, cfg, old, plan, histories).select(*cfg.summary_columns, VERSION)
    # An account's latest row is its summary row of that month: its new columns are that row's.
    anchors = F.broadcast(latest.select(cfg.key, cfg.month))
    own = [with_inferred(summary, cfg, plan).select(cfg.key, cfg.month, *plan.inferred)] if plan.inferred else []
    own += [histories] if histories is not None else []
    columns = None
    for part in own:
        part = part.join(anchors, [cfg.key, cfg.month], "left_semi")
        columns = part if columns is None else columns.join(part, [cfg.key, cfg.month])
    new_latest = _completed(latest, cfg, old, plan, columns).select(*cfg.latest_columns, LAST_MONTH, TS_HISTORY)
    # A deletes row is a whole version: its rolling fields are columns of their own.
    stored = F.struct(*(F.col(rolling_field(i)) for i in range(len(old.rolling_columns))))
    rolling = {rolling_field(i) for i in range(len(cfg.rolling_columns))}
    new_deletes = with_inferred(deletes, cfg, plan).select(
        *(c for c in version_columns(cfg) if c != ACTIVE and c not in rolling),
        *_rolling_fields(cfg, old, plan, stored), ACTIVE,
    ).select(*version_columns(cfg))
    return Computed(summary=rows, latest=new_latest, deletes_upsert=new_deletes,
                    deletes_remove=rows.select(cfg.key, cfg.month).limit(0))
