"""``validate`` (SPEC 10): the seed's production checklist and the invariant, checked on the tables themselves.

Each check is a pure function from the tables to the rows that break it (empty when the tables are right), so a
check is one Spark query, and the report can show a few offending keys of each. The checks:

* ``duplicate_rows``: one summary row per (account, month); ``duplicate_latest``: one latest row per account;
* ``array_length``: every history array, in both tables, has exactly H elements;
* ``latest_row``: each account with summary rows has a latest row, equal to its summary row of the greatest
  active month (else the greatest tombstone), and its recorded last month is its greatest summary month;
* ``index_zero``: a row's history index 0 is its own rolling value (NULL for a tombstone);
* ``shifted``: row m index k equals row m-1 index k-1, where both rows exist;
* ``grids``: every grid column equals the string its array gives;
* ``base_ts``: ``base_ts`` is the greatest ``fact_base_ts`` of the account's rows in months m-H+1 .. m.

A sample checks whole accounts (chosen by a hash of the key), so windows and neighbours are complete.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from summary_pipeline.config import PipelineConfig
from summary_pipeline.core.facts import FACT_TS
from summary_pipeline.core.history import LAST_MONTH, grid
from summary_pipeline.core.prepare import is_active, month_index
from summary_pipeline.core.versions import rolling_from_row
from summary_pipeline.definition import check_definition
from summary_pipeline.errors import NotReadyError
from summary_pipeline.store.as_of import NOW, AsOf
from summary_pipeline.store.ledger import ledger_rows
from summary_pipeline.store.tables import location, table_exists

__all__ = [
    "CHECKS",
    "PREVIOUS",
    "PROBLEM",
    "CheckResult",
    "Validation",
    "grid_conditions",
    "index_zero_conditions",
    "length_conditions",
    "problem_names",
    "sample_accounts",
    "shift_conditions",
    "validate",
    "with_previous",
]

PROBLEM = "problem"


def _same(a: Column, b: Column) -> Column:
    return a.eqNullSafe(b)


def problem_names(named: dict[str, Column]) -> Column:
    """The names whose condition holds, joined by ', ' (NULL conditions count as false)."""
    return F.concat_ws(", ", *(F.when(cond, F.lit(name)) for name, cond in named.items()))


def _offending(rows: DataFrame, cfg: PipelineConfig, named: dict[str, Column], with_month: bool = True
               ) -> DataFrame:
    keys = [cfg.key, cfg.month] if with_month else [cfg.key]
    return rows.select(*keys, problem_names(named).alias(PROBLEM)).where(F.col(PROBLEM) != "")


def duplicate_rows(summary: DataFrame, latest: DataFrame, cfg: PipelineConfig) -> DataFrame:
    """(account, month) pairs with more than one summary row."""
    counted = summary.groupBy(cfg.key, cfg.month).count().where(F.col("count") > 1)
    return counted.select(cfg.key, cfg.month, F.format_string("%d rows", F.col("count")).alias(PROBLEM))


def duplicate_latest(summary: DataFrame, latest: DataFrame, cfg: PipelineConfig) -> DataFrame:
    """Accounts with more than one latest_summary row."""
    counted = latest.groupBy(cfg.key).count().where(F.col("count") > 1)
    return counted.select(cfg.key, F.format_string("%d latest rows", F.col("count")).alias(PROBLEM))


def length_conditions(cfg: PipelineConfig, table: str) -> dict[str, Column]:
    """Per history column: the row's array is NULL or not H long (named ``<table>.<column>``)."""
    return {f"{table}.{c}": F.coalesce(F.size(c) != cfg.history_length, F.lit(True)) for c in cfg.history_columns}


def array_length(summary: DataFrame, latest: DataFrame, cfg: PipelineConfig) -> DataFrame:
    """Rows of either table with a history array that is NULL or not H long."""
    return (_offending(summary, cfg, length_conditions(cfg, "summary"))
            .unionByName(_offending(latest, cfg, length_conditions(cfg, "latest_summary"))))


def latest_row(summary: DataFrame, latest: DataFrame, cfg: PipelineConfig) -> DataFrame:
    """Accounts whose latest_summary row is missing, extra, or not the one SPEC 5 says."""
    month = month_index(F.col(cfg.month))
    best = Window.partitionBy(cfg.key).orderBy(is_active(cfg).desc(), F.col(cfg.month).desc())
    per_account = Window.partitionBy(cfg.key)
    expected = (summary.select(*cfg.latest_columns, F.max(month).over(per_account).alias(LAST_MONTH),
                               F.row_number().over(best).alias("_sp_rn"))
                .where("_sp_rn = 1").drop("_sp_rn"))
    columns = [*cfg.latest_columns, LAST_MONTH]
    e = expected.select(*(F.col(c).alias(f"_sp_e_{c}") for c in columns))
    a = latest.select(*(F.col(c).alias(f"_sp_a_{c}") for c in columns))
    joined = e.join(a, F.col(f"_sp_e_{cfg.key}") == F.col(f"_sp_a_{cfg.key}"), "full")
    missing = F.col(f"_sp_a_{cfg.key}").isNull()
    extra = F.col(f"_sp_e_{cfg.key}").isNull()
    named = {"no latest row": missing, "no summary row": extra}
    named.update({c: ~missing & ~extra & ~_same(F.col(f"_sp_e_{c}"), F.col(f"_sp_a_{c}"))
                  for c in columns if c != cfg.key})
    return joined.select(F.coalesce(F.col(f"_sp_e_{cfg.key}"), F.col(f"_sp_a_{cfg.key}")).alias(cfg.key),
                         F.coalesce(F.col(f"_sp_a_{cfg.month}"), F.col(f"_sp_e_{cfg.month}")).alias(cfg.month),
                         problem_names(named).alias(PROBLEM)).where(F.col(PROBLEM) != "")


def index_zero_conditions(cfg: PipelineConfig) -> dict[str, Column]:
    """Per history column: index 0 is not the row's own rolling value (NULL for a tombstone)."""
    active = is_active(cfg)
    return {r.history_column: ~_same(F.col(r.history_column)[0], F.when(active, rolling_from_row(cfg, i)))
            for i, r in enumerate(cfg.rolling_columns)}


def index_zero(summary: DataFrame, latest: DataFrame, cfg: PipelineConfig) -> DataFrame:
    """Rows whose history index 0 is not their own rolling value (NULL for a tombstone)."""
    return _offending(summary, cfg, index_zero_conditions(cfg))


#: Prefix of the previous month's row's columns beside a row (:func:`with_previous`).
PREVIOUS = "_sp_prev_"


def with_previous(rows: DataFrame, previous: DataFrame, cfg: PipelineConfig, how: str = "inner") -> DataFrame:
    """``rows`` beside the row of ``previous`` one month before (its history arrays and ``base_ts``, each
    prefixed :data:`PREVIOUS`)."""
    month = month_index(F.col(cfg.month))
    before = previous.select(F.col(cfg.key).alias(f"{PREVIOUS}key"), (month + 1).alias(f"{PREVIOUS}next"),
                             *(F.col(c).alias(f"{PREVIOUS}{c}") for c in (*cfg.history_columns, cfg.ts)))
    on = (F.col(cfg.key) == F.col(f"{PREVIOUS}key")) & (month == F.col(f"{PREVIOUS}next"))
    return rows.join(before, on, how)


def shift_conditions(cfg: PipelineConfig) -> dict[str, Column]:
    """Per history column, beside the previous row (:func:`with_previous`): the history is not the previous
    month's moved one place (never true without a previous row)."""
    h = cfg.history_length
    return {c: F.col(f"{PREVIOUS}key").isNotNull()
            & ~_same(F.slice(F.col(c), 2, h - 1), F.slice(F.col(f"{PREVIOUS}{c}"), 1, h - 1))
            for c in cfg.history_columns}


def shifted(summary: DataFrame, latest: DataFrame, cfg: PipelineConfig) -> DataFrame:
    """Rows whose history is not the previous month's history moved one place (where both rows exist)."""
    return _offending(with_previous(summary, summary, cfg), cfg, shift_conditions(cfg))


def grid_conditions(cfg: PipelineConfig) -> dict[str, Column]:
    """Per grid column: the string differs from the one its array gives."""
    h = cfg.history_length
    return {g.name: ~_same(F.col(g.name), grid(F.col(f"{g.mapper_rolling_column}_history"), g, h))
            for g in cfg.grid_columns}


def grids(summary: DataFrame, latest: DataFrame, cfg: PipelineConfig) -> DataFrame:
    """Rows whose grid columns differ from the strings their arrays give."""
    named = grid_conditions(cfg)
    if not named:
        return summary.select(cfg.key, cfg.month, F.lit("").alias(PROBLEM)).limit(0)
    return _offending(summary, cfg, named)


def base_ts(summary: DataFrame, latest: DataFrame, cfg: PipelineConfig) -> DataFrame:
    """Rows whose ``base_ts`` is not the greatest ``fact_base_ts`` of their window of H months."""
    window = (Window.partitionBy(cfg.key).orderBy(month_index(F.col(cfg.month)))
              .rangeBetween(-(cfg.history_length - 1), 0))
    with_max = summary.select(cfg.key, cfg.month, cfg.ts, F.max(FACT_TS).over(window).alias("_sp_expected"))
    return _offending(with_max, cfg, {cfg.ts: ~_same(F.col(cfg.ts), F.col("_sp_expected"))})


Check = Callable[[DataFrame, DataFrame, PipelineConfig], DataFrame]

#: Every check, in report order: name, what it promises, the function giving the rows that break it.
CHECKS: tuple[tuple[str, str, Check], ...] = (
    ("duplicate_rows", "one summary row per (account, month)", duplicate_rows),
    ("duplicate_latest", "one latest_summary row per account", duplicate_latest),
    ("array_length", "every history array has history_length elements", array_length),
    ("latest_row", "latest_summary holds each account's row of its greatest active month", latest_row),
    ("index_zero", "history index 0 is the row's own value (NULL for a tombstone)", index_zero),
    ("shifted", "row m index k equals row m-1 index k-1", shifted),
    ("grids", "grid columns equal their arrays", grids),
    ("base_ts", "base_ts is the greatest fact_base_ts of the row's window", base_ts),
)


@dataclass
class CheckResult:
    """One check: how many rows break it, and a few of them."""

    name: str
    description: str
    violations: int
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing breaks the check."""
        return self.violations == 0


@dataclass
class Validation:
    """The whole report: the checklist's figures and every check."""

    summary_table: str
    latest_table: str
    sample: float | None
    summary_rows: int = 0
    latest_rows: int = 0
    latest_month: str | None = None
    latest_base_ts: dt.datetime | None = None
    checks: list[CheckResult] = field(default_factory=list)
    #: The state checked, when not the tables' current one (``validate --as-of``).
    as_of: str | None = None

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return all(c.ok for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (timestamps as ISO strings)."""
        data = asdict(self)
        data["ok"] = self.ok
        if self.latest_base_ts is not None:
            data["latest_base_ts"] = self.latest_base_ts.isoformat(sep=" ")
        for check in data["checks"]:
            check["examples"] = [{k: str(v) for k, v in e.items()} for e in check["examples"]]
        return data


def sample_accounts(df: DataFrame, cfg: PipelineConfig, fraction: float | None) -> DataFrame:
    """Whole accounts, about ``fraction`` of them, chosen by a hash of the key (the same in both tables)."""
    if fraction is None or fraction >= 1:
        return df
    return df.where(F.pmod(F.xxhash64(F.col(cfg.key)), F.lit(1_000_000)) < F.lit(int(fraction * 1_000_000)))


def validate(spark: SparkSession, cfg: PipelineConfig, sample: float | None = None, examples: int = 5,
             say: Callable[[str], None] = lambda _line: None, config_name: str = "config",
             as_of: AsOf = NOW) -> Validation:
    """Run every check on the tables (or a sample of accounts) and return the report; ``as_of`` checks them as
    a run, tag, branch or timestamp left them (:mod:`summary_pipeline.store.as_of`).

    Raises:
        NotReadyError: a table is missing (run ``--mode initial`` first).
        DefinitionChangedError: the tables as they are now were built under another definition, whose checks
            would differ (validate them with the config that built them).
    """
    for table in (cfg.destination_table, cfg.latest_history_table):
        if not table_exists(spark, table):
            raise NotReadyError(f"{table} does not exist in {location(spark, config_name)}: run --mode initial "
                                "first, then validate", table=table)
    if as_of is NOW:
        check_definition(cfg, ledger_rows(spark, cfg.ledger_table), config_name,
                         "validate with the config that built them")
    summary = sample_accounts(as_of.read(spark, cfg.destination_table), cfg, sample)
    latest = sample_accounts(as_of.read(spark, cfg.latest_history_table), cfg, sample)
    report = Validation(cfg.destination_table, cfg.latest_history_table, sample,
                        as_of=as_of.label or None)
    figures = summary.agg(F.count(F.lit(1)), F.max(cfg.month), F.max(cfg.ts)).collect()[0]
    report.summary_rows, report.latest_month, report.latest_base_ts = int(figures[0]), figures[1], figures[2]
    report.latest_rows = latest.count()
    for name, description, check in CHECKS:
        say(f"  checking {name}: {description}")
        bad = check(summary, latest, cfg)
        count = bad.count()
        shown = [r.asDict() for r in bad.orderBy(*bad.columns[:-1]).limit(examples).collect()] if count else []
        report.checks.append(CheckResult(name, description, count, shown))
    return report
