"""Synthetic source data in the reference schema, for tests, the demo and benchmarks.

Real bureau feeds are messy in specific ways the pipeline must survive: accounts that start late, missing
months, several versions of one account-month (later corrections, and ties on ``base_ts`` that only the
tie-breaker columns settle), soft deletes, sentinel amounts, empty account types and dates in year 1. The
generator produces all of them, reproducibly, with Spark itself: every value is a pure function of
``(seed, account, month, version)`` computed by ``xxhash64`` Column expressions, so the same arguments give
the same rows whatever the partitioning, and millions of rows cost no Python loop.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from importlib import resources

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from summary_pipeline.errors import SummaryPipelineError
from summary_pipeline.sql_text import sql_table
from summary_pipeline.store.tables import ensure_namespace

__all__ = [
    "ASSET_CLASS_CODES",
    "SENTINEL_AMOUNTS",
    "SOURCE_SCHEMA",
    "append_source",
    "create_source_table",
    "demo_batch",
    "generate_versions",
    "source_ddl",
]

_DEFAULT_SOURCE = "default.accounts_all"


def source_ddl(table: str = _DEFAULT_SOURCE) -> str:
    """The reference ``CREATE TABLE`` of the source (``accounts_all.sql``, shipped in the package), for ``table``.

    ``summary-pipeline source-ddl`` prints it; production tables may carry more columns.
    """
    text = (resources.files("summary_pipeline") / "accounts_all.sql").read_text(encoding="utf-8")
    return text.replace(_DEFAULT_SOURCE, table)


def _columns(ddl: str) -> str:
    """The column list of a ``CREATE TABLE`` as one Spark DDL string (``name TYPE, ...``)."""
    body = ddl[ddl.index("(", ddl.index("CREATE TABLE")) + 1: ddl.index(") USING")]
    return ", ".join(" ".join(line.split()).rstrip(",") for line in body.splitlines() if line.strip())


SOURCE_SCHEMA = _columns(source_ddl())
"""The reference source schema as a Spark DDL string, in column order (read from ``accounts_all.sql``)."""

ASSET_CLASS_CODES = ("1", "01", "S", "2", "02", "B", "3", "03", "D", "4", "04", "5", "05", "M", "L", "0", "6",
                     "G", "C")
"""Every asset class code the reference ``payment_rating_cd`` mapping knows: standard (3), substandard (3),
doubtful or loss (9) first, which is the order the generator picks from by days past due."""

SENTINEL_AMOUNTS = (-2147483647, -214748364, -21474836, -1)
"""Amounts the bureau sends for "not reported"; the reference config turns them into NULL."""

_TYPES = dict(part.split() for part in SOURCE_SCHEMA.split(", "))
_COLUMNS = list(_TYPES)
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_ACCT_TYPES = ("5", "214", "220", "213", "224", "121", "123", "130", "175", "181")
_SENTINEL_COLUMNS = ("acct_credit_ext_am", "acct_bal_am", "past_due_am", "actual_pymt_am",
                     "next_schd_pymt_am", "total_write_off_am_4in")
_DATE_COLUMNS = ("acct_open_dt", "acct_closed_dt", "acct_dt", "last_pymt_dt", "schd_pymt_dt",
                 "orig_pymt_due_dt", "write_off_dt")
_COLLATERAL = ("", "01", "02", "03", None)
_ANCIENT_DATES = ("0001-01-01", "0900-06-30", "0999-12-31")  # strings: py4j's date conversion mangles them
_MICROS, _DAY = 1_000_000, 86_400

# Version numbers: 0 = first report, 1 = later correction, 2 = same base_ts as 0 (tie-breakers decide),
# 3 = later soft delete carrying version 0's values. Rates are per account-month.
_CORRECTION_RATE, _TIE_RATE, _DELETE_RATE, _GAP_RATE = 0.02, 0.01, 0.005, 0.05


def _month_number(month: str, name: str) -> int:
    """``'YYYY-MM'`` as months since year 0, so ranges are plain integer arithmetic.

    >>> _month_number("2025-12", "m") - _month_number("2025-01", "m")
    11
    """
    match = _MONTH.match(month)
    if match is None:
        raise SummaryPipelineError(f"{name} must be 'YYYY-MM' with a month 01..12, got {month!r}")
    return int(match.group(1)) * 12 + int(match.group(2)) - 1


class _Draws:
    """Named, reproducible pseudo-random draws for one level of rows (account, account-month or version).

    A draw is a 21-bit slice of an ``xxhash64`` of the seed, a hash number and the level's keys, three per
    hash: rows do not depend on partitioning, and the generated code stays small enough for the JVM to
    JIT-compile (an outgrown projection runs several times slower). Slots follow the order of first use.
    """

    def __init__(self, seed: int, prefix: str, keys: Sequence[str]) -> None:
        self.seed, self.prefix, self.keys = int(seed), prefix, ", ".join(keys)
        self.slots: dict[str, int] = {}

    def bits(self, name: str) -> str:
        """SQL for the draw ``name``: a uniform BIGINT in ``[0, 2**21)``."""
        i = self.slots.setdefault(name, len(self.slots))
        return f"(shiftright({self.prefix}{i // 3}, {21 * (i % 3)}) & 2097151)"

    def below_sql(self, name: str, n: int | str) -> str:
        # Multiply-shift rather than pmod: as uniform at this size, and no nullable division in the code.
        return f"CAST(shiftright({self.bits(name)} * {n}, 21) AS INT)"

    def below(self, name: str, n: int) -> Column:
        """Uniform INT in ``[0, n)`` (``n`` far below 2**21)."""
        return F.expr(self.below_sql(name, int(n)))

    def unit_sql(self, name: str) -> str:
        return f"({self.bits(name)} * {2.0 ** -21!r}D)"

    def unit(self, name: str) -> Column:
        """Uniform DOUBLE in ``[0, 1)``."""
        return F.expr(self.unit_sql(name))

    def pick(self, name: str, values: Sequence[str | int | None]) -> Column:
        """One of ``values`` (plain constants without quotes), uniformly."""
        array = ", ".join("NULL" if v is None else f"'{v}'" if isinstance(v, str) else str(v) for v in values)
        return F.expr(f"element_at(array({array}), {self.below_sql(name, len(values))} + 1)")

    def columns(self) -> dict[str, Column]:
        """The hash columns the draws so far read; add them to the rows before the draws."""
        count = (len(self.slots) + 2) // 3
        return {f"{self.prefix}{j}": F.expr(f"xxhash64({self.seed}L, {j}, {self.keys})")
                for j in range(count)}


def _micros(seconds: Column) -> Column:
    """Seconds as BIGINT microseconds (INT arithmetic would overflow)."""
    return seconds.cast("long") * _MICROS


def _accounts(h: _Draws, start: Column, n_months: int) -> dict[str, Column]:
    """Per-account attributes, drawn once per account however long the month range is."""
    late = h.unit("late") < 0.25
    first = F.when(late, h.below("open", n_months)).otherwise(0)  # index of the first reported month
    age = F.when(late, 0).otherwise(h.below("age", 60))  # months open before the first report
    opened = F.date_add(F.add_months(start, first - age), h.below("open_day", 28))
    close_at = first + h.below("close_at", n_months)  # index of the closing month, when it closes
    return {
        "_first": first,
        "_age": age,
        "_limit": (10 + h.below("limit", 491)) * 1_000,
        "_level": 10 + h.below("level", 71),  # balance level, % of the limit
        "_drift": h.below("drift", 601) - 300,  # balance change per month
        "_close_at": F.when(h.unit("closes") < 0.08, close_at),
        "_closed": F.date_add(F.add_months(start, close_at), h.below("close_day", 28)),
        "acct_open_dt": opened,
        "orig_pymt_due_dt": F.date_add(opened, 30),
        "_coll": h.below("coll", 5),
        "_type": h.pick("type", _ACCT_TYPES),
        "_high": 100 + h.below("high", 21),  # % of the limit
        "bureau_mbr_id": F.format_string("MBR%04d", h.below("mbr", 500)),
        "port_type_cd": h.pick("port", ("R", "I", "M", "O", "C")),
        "pymt_terms_cd": h.pick("terms", ("M", "W", "B", "Q")),
        "pymt_terms_dtl_cd": h.pick("terms_dtl", ("01", "02", "03", "M", "W")),
        "interest_rate_4in": 8 + h.below("rate", 29),
    }


def _account_months(h: _Draws, start: Column,
                    base_ts: datetime | None) -> tuple[dict[str, Column], dict[str, Column]]:
    """Values of an account-month's first version (later versions repeat or adjust them), and arrival times.

    Without ``base_ts`` a month's first version arrives on the 15th of the next month (UTC, plus seconds), and
    corrections and deletes days later; with ``base_ts`` everything arrives within minutes of it, which is
    what a test of one incremental batch needs. Times are microseconds since the epoch. Two steps, so values
    used several times (month, days past due, first arrival) are computed once.
    """
    month_date = F.add_months(start, F.col("_mi"))
    if base_ts is None:
        arrival = (F.unix_date(F.add_months(month_date, 1)).cast("long") + 14) * (_DAY * _MICROS)
        first, later_days, later_secs = h.below("ts", 36_000), _DAY, 3_600
    else:
        arrival = F.unix_micros(F.lit(base_ts))
        first, later_days, later_secs = h.below("ts", 60), 10, 10
    r = h.unit("dpd")
    age = F.col("_age") + F.col("_mi") - F.col("_first")
    balance = F.col("_limit") * F.col("_level") / 100 + age * F.col("_drift") + h.below("noise", 401) - 200
    blank = h.unit("type_blank")
    values = {
        "_month": month_date,
        "_ts0": arrival + _micros(first),
        "_dpd": (F.when(r < 0.12, -1 - h.below("neg", 30)).when(r < 0.13, F.lit(None))
                 .when(r < 0.75, F.lit(0)).otherwise(h.below("pos", 201))).cast("int"),
        "_balance": F.greatest(F.lit(0), F.least(F.col("_limit") * 1.1, balance)).cast("int"),
        "_sentinel_col": h.below("sentinel", 100),  # < 6: that amount column holds a sentinel (1% each)
        "_sentinel": h.pick("sentinel_value", SENTINEL_AMOUNTS),
        "_ancient_col": h.below("ancient", 200),  # < 7: that date column is before year 1000 (0.5% each)
        "_ancient": h.pick("ancient_value", _ANCIENT_DATES).cast("date"),
        "acct_type_dtl_cd": F.when(blank < 0.03, F.lit("")).when(blank < 0.06, F.lit(None))
        .otherwise(F.col("_type")),
        "acct_pymt_stat_dtl_cd": h.pick("pymt_dtl", ("C", "P", "D", "N")),
        "_pay": h.below("pay", 401) - 200,  # payment minus instalment
        "_settled": h.unit("settled") < 0.3,  # whether a write-off was settled
        "suit_filed_wilful_def_stat_cd_4in": F.when(h.unit("suit") < 0.05,
                                                    h.pick("suit_cd", ("00", "01", "02", "03"))),
        "_wo_cd": h.pick("wo_cd", ("02", "03", "04", "05")),
        "_del": F.when(h.unit("del0") < 0.4, F.lit("0")),  # active: NULL or '0'
        "_tie_kind": h.below("tie_kind", 3),
        "_tie_step": _micros(1 + h.below("tie_step", 100)),
    }
    ts0, ins = F.col("_ts0"), _micros(h.below("ins", 300))
    correction = (1 + h.below("corr_ts", 10)) * later_days + h.below("corr_s", later_secs)
    delete = (1 + h.below("del_ts", 20)) * later_days + h.below("del_s", later_secs)
    derived = {
        "_ts1": ts0 + _micros(correction),
        "_ts3": ts0 + _micros(delete),
        "_ins0": ts0 + ins,
        "_upd0": F.when(h.unit("upd_null") >= 0.1, ts0 + ins + _micros(h.below("upd", 3_600))),
        "last_pymt_dt": F.date_add(F.col("_month"), h.below("pay_day", 28)),
        "asset_class_cd_4in": F.when(h.unit("asset_null") >= 0.02, _asset(h, F.col("_dpd"))),
    }
    return values, derived


def _asset(h: _Draws, dpd: Column) -> Column:
    """An asset class code that fits the days past due; any code at all when they are negative or NULL.

    One pick from a slice of one array (not a CASE of picks): this keeps the generated code small.
    """
    any_code = dpd.isNull() | (dpd < 0)
    offset = F.when(any_code | (dpd <= 90), 0).when(dpd <= 180, 3).otherwise(6)
    size = F.when(any_code, len(ASSET_CLASS_CODES)).when(dpd <= 180, 3).otherwise(9)
    index = F.shiftright(F.expr(h.bits("asset")) * size, 21).cast("int")
    return F.element_at(F.array(*[F.lit(c) for c in ASSET_CLASS_CODES]), offset + index + 1)


def _versions(h: _Draws) -> str:
    """The version numbers one account-month gets (always 0; 1, 2, 3 at their rates), as SQL."""
    rates = [(1, "corr", _CORRECTION_RATE), (2, "tie", _TIE_RATE), (3, "del", _DELETE_RATE)]
    keep = " OR ".join(f"(v = {v} AND {h.unit_sql(salt)} < {rate}D)" for v, salt, rate in rates)
    return f"filter(array(0, 1, 2, 3), v -> v = 0 OR {keep})"


def _version_times(h: _Draws) -> tuple[Column, dict[str, Column]]:
    """A version's ``_base`` (microseconds since the epoch), then base_ts, insert_ts and update_ts."""
    v, base, ins0, upd0 = F.col("_v"), F.col("_base"), F.col("_ins0"), F.col("_upd0")
    ins = base + _micros(h.below("ins", 300))
    upd = F.when(h.unit("upd_null") >= 0.1, ins + _micros(h.below("upd", 3_600)))
    # Version 2 shares version 0's base_ts; its tie-breakers rank it above (kinds 0, 1) or below (2) it.
    kind, step = F.col("_tie_kind"), F.col("_tie_step")
    tie_ins = F.when(kind == 0, ins0 + step).when(kind == 1, ins0).otherwise(ins0 - step)
    tie_upd = F.when(kind == 1, F.coalesce(upd0, ins0) + step).otherwise(upd0)
    return F.when(v == 1, F.col("_ts1")).when(v == 3, F.col("_ts3")).otherwise(F.col("_ts0")), {
        "base_ts": F.timestamp_micros(base),
        "insert_ts": F.timestamp_micros(F.when(v == 0, ins0).when(v == 2, tie_ins).otherwise(ins)),
        "update_ts": F.timestamp_micros(F.when(v == 0, upd0).when(v == 2, tie_upd).otherwise(upd)),
    }


def generate_versions(spark: SparkSession, *, accounts: int, start_month: str, end_month: str, seed: int = 42,
                      first_account: int = 1, base_ts: datetime | None = None) -> DataFrame:
    """Synthetic source versions (``SOURCE_SCHEMA``) of ``accounts`` accounts, ``start_month..end_month``.

    About a quarter of the accounts start reporting after ``start_month``; ~5% of account-months are missing
    (never an account's first one); ~2% get a later correction (a new balance), ~1% a second version with
    the same ``base_ts`` (another balance) that ``insert_ts``/``update_ts`` rank above or below the first,
    ~0.5% a later soft delete (``'1'`` or ``'4'``) repeating the first version's values. Balances follow a
    per-account level and drift. Sentinels, empty and NULL account types, every days-past-due range and
    dates before year 1000 appear in small proportions.

    Args:
        spark: the session to build the DataFrame on (nothing is read or written).
        accounts: how many accounts; keys are ``first_account .. first_account + accounts - 1``.
        start_month: first month, ``'YYYY-MM'``.
        end_month: last month (inclusive), ``'YYYY-MM'``.
        seed: same seed and arguments give the same rows.
        first_account: the first key, so batches of new accounts can be generated apart.
        base_ts: when given, every version arrives at it plus a few seconds or minutes (one batch);
            otherwise month M arrives on the 15th of M+1.

    Raises:
        SummaryPipelineError: a malformed month, an empty range or a negative account count.
    """
    start, end = _month_number(start_month, "start_month"), _month_number(end_month, "end_month")
    if end < start:
        raise SummaryPipelineError(f"end_month {end_month} is before start_month {start_month}")
    if accounts < 0:
        raise SummaryPipelineError(f"accounts must be >= 0, got {accounts}")
    n_months = end - start + 1
    # Draws per account, per account-month (_mo: absolute month number, alike in any range) and per version.
    # The two explodes run higher-order functions (filter), which Spark keeps out of whole-stage code
    # generation: that cuts the generated code into methods small enough for the JVM to JIT-compile.
    per_account = _Draws(seed, "_ha", ["cons_acct_key"])
    per_month = _Draws(seed, "_hm", ["cons_acct_key", "_mo"])
    per_version = _Draws(seed, "_hv", ["cons_acct_key", "_mo", "_v"])
    start_date = F.lit(f"{start // 12:04d}-{start % 12 + 1:02d}-01").cast("date")
    account_values = _accounts(per_account, start_date, n_months)
    month_values, month_derived = _account_months(per_month, start_date, base_ts)
    versions, delete_cd = _versions(per_month), per_month.pick("del_cd", ("1", "4"))
    gap = f"pmod(xxhash64({int(seed)}L, -1, cons_acct_key, CAST({start} + m AS BIGINT)), 1000000)"
    months = f"filter(sequence(_first, {n_months - 1}), m -> m = _first OR {gap} >= {_GAP_RATE * 1e6:.0f})"
    base, times = _version_times(per_version)
    v, month_date, limit, dpd = F.col("_v"), F.col("_month"), F.col("_limit"), F.col("_dpd")
    fix = F.when(v.isin(1, 2), 1 + per_version.below("fix", 500)).otherwise(0)  # corrections move balance
    df = (spark.range(accounts).select((F.col("id") + first_account).alias("cons_acct_key"))
          .withColumns(per_account.columns()).withColumns(account_values)
          .withColumn("_mi", F.explode(F.expr(months)))
          .withColumn("_mo", (F.lit(start) + F.col("_mi")).cast("long"))
          .withColumns(per_month.columns()).withColumns(month_values).withColumns(month_derived)
          .withColumn("_v", F.explode(F.expr(versions)))
          .withColumns(per_version.columns()).withColumns({"_fix": fix, "_base": base}))

    fix, emi, write_off = F.col("_fix"), limit / 24, dpd > 180
    balance = F.col("_balance") + fix
    closed_dt = F.when(F.col("_mi") >= F.col("_close_at"), F.col("_closed"))
    values: dict[str, Column] = {
        "acct_closed_dt": closed_dt,
        "acct_dt": F.last_day(month_date),
        "acct_stat_cd": F.when(closed_dt.isNotNull(), "13").when(dpd.isNull() | (dpd <= 0), "11")
        .when(dpd <= 29, "71").when(dpd <= 59, "78").when(dpd <= 89, "80").when(dpd <= 119, "82")
        .when(dpd <= 149, "83").otherwise("84"),
        "acct_pymt_stat_cd": F.when(dpd.isNull() | (dpd <= 0), "0")
        .otherwise(F.least(F.lit(6), F.ceil(dpd / 30)).cast("string")),
        "acct_credit_ext_am": limit,
        "acct_bal_am": balance,
        "past_due_am": F.when(dpd > 0, F.least(balance, emi * F.ceil(dpd / 30))).otherwise(0),
        "actual_pymt_am": F.when(dpd > 29, 0).otherwise(F.greatest(F.lit(0), emi + F.col("_pay") - fix)),
        "schd_pymt_dt": F.date_add(month_date, 4),
        "next_schd_pymt_am": emi,
        "collateral_cd": F.element_at(F.array(*[F.lit(c) for c in _COLLATERAL]), F.col("_coll") + 1),
        "write_off_dt": F.when(write_off, F.date_add(month_date, 10)),
        "write_off_am": F.when(write_off, balance),
        "days_past_due_ct_4in": dpd,
        "high_credit_am_4in": limit * F.col("_high") / 100,
        "cash_limit_am_4in": limit / 5,
        "collateral_am_4in": F.when(F.col("_coll").isin(1, 2, 3), limit * 3 / 2).otherwise(0),
        "total_write_off_am_4in": F.when(write_off, balance).otherwise(0),
        "principal_write_off_am_4in": F.when(write_off, balance * 4 / 5).otherwise(0),
        "settled_am_4in": F.when(write_off & F.col("_settled"), balance / 2).otherwise(0),
        "wo_settled_stat_cd_4in": F.when(write_off, F.col("_wo_cd")),
        "soft_del_cd": F.when(v == 3, delete_cd).otherwise(F.col("_del")),
        "rpt_as_of_mo": F.date_format(month_date, "yyyy-MM"),
        **times,
    }
    for i, name in enumerate(_SENTINEL_COLUMNS):  # about 1% of each amount column
        values[name] = F.when(F.col("_sentinel_col") == i, F.col("_sentinel")).otherwise(values[name])
    for i, name in enumerate(_DATE_COLUMNS):  # about 0.5% of each date column
        current = values.get(name, F.col(name))
        values[name] = F.when(F.col("_ancient_col") == i, F.col("_ancient")).otherwise(current)
    # One cast per column to its SOURCE_SCHEMA type (arithmetic widens INT to BIGINT or DOUBLE).
    return df.select(*[values.get(c, F.col(c)).cast(_TYPES[c]).alias(c) for c in _COLUMNS])


def _demo_row(key: int, month: str, balance: int, base_ts: datetime) -> tuple[object, ...]:
    """One fully populated, plausible version (no NULL anywhere) of a performing account."""
    first, opened = datetime.strptime(month, "%Y-%m").date(), date(2020, 1, 1) + timedelta(days=key % 365)
    last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    limit, emi = max(balance * 2, 20_000), max(balance * 2, 20_000) // 24
    values: dict[str, object] = {
        "cons_acct_key": key, "bureau_mbr_id": f"MBR{key % 500:04d}", "port_type_cd": "R",
        "acct_type_dtl_cd": "5", "acct_open_dt": opened, "acct_closed_dt": opened + timedelta(days=3652),
        "pymt_terms_cd": "M", "pymt_terms_dtl_cd": "01", "acct_dt": last, "acct_stat_cd": "11",
        "acct_pymt_stat_cd": "0", "acct_pymt_stat_dtl_cd": "C", "acct_credit_ext_am": limit,
        "acct_bal_am": balance, "past_due_am": 0, "actual_pymt_am": emi, "last_pymt_dt": first + timedelta(9),
        "schd_pymt_dt": first + timedelta(days=4), "next_schd_pymt_am": emi, "collateral_cd": "01",
        "orig_pymt_due_dt": opened + timedelta(days=30), "write_off_dt": opened, "write_off_am": 0,
        "asset_class_cd_4in": "S", "days_past_due_ct_4in": 0, "high_credit_am_4in": limit,
        "cash_limit_am_4in": limit // 5, "collateral_am_4in": limit, "total_write_off_am_4in": 0,
        "principal_write_off_am_4in": 0, "settled_am_4in": 0, "interest_rate_4in": 12,
        "suit_filed_wilful_def_stat_cd_4in": "00", "wo_settled_stat_cd_4in": "00", "soft_del_cd": "0",
        "base_ts": base_ts, "insert_ts": base_ts, "update_ts": base_ts, "rpt_as_of_mo": month,
    }
    return tuple(values[c] for c in _COLUMNS)


def demo_batch(spark: SparkSession, base_ts: datetime) -> DataFrame:
    """The seed's mixed incremental batch (PRODUCTION_INCREMENTAL_MODE.md), all stamped ``base_ts``.

    Forward months for accounts 1 and 2 (2026-01: 11000, 6000), backfills for them (2025-11: 10700,
    2025-10: 5300), a new account 9999 (2026-01: 50000), and a new account 9998 with six months of history
    (2025-08 .. 2026-01) arriving at once. Every other column is filled, so NULL-handling never hides a bug in
    a demo or test built on it.
    """
    seed = [(1, "2026-01", 11_000), (2, "2026-01", 6_000), (1, "2025-11", 10_700), (2, "2025-10", 5_300),
            (9999, "2026-01", 50_000)]
    months = ["2025-08", "2025-09", "2025-10", "2025-11", "2025-12", "2026-01"]
    seed += [(9998, m, 20_000 + 500 * i) for i, m in enumerate(months)]
    return spark.createDataFrame([_demo_row(*row, base_ts) for row in seed], SOURCE_SCHEMA)


def create_source_table(spark: SparkSession, table: str) -> None:
    """Create the source table like ``accounts_all.sql`` (:func:`source_ddl`), and its namespace, when missing.

    In production the source table is the user's; tests, the demo and benchmarks make theirs with this.
    """
    ensure_namespace(spark, table)
    spark.sql(f"CREATE TABLE IF NOT EXISTS {sql_table(table)} ({SOURCE_SCHEMA}) USING iceberg "
              "PARTITIONED BY (rpt_as_of_mo)")


def append_source(df: DataFrame, table: str) -> int:
    """Append ``df`` to the source table in one commit and return its row count.

    Counted first, so the write stays a plain Iceberg append; generated data is cheap to read twice."""
    n = df.count()
    df.writeTo(table).append()
    return int(n)
