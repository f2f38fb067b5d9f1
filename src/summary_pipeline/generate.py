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

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from summary_pipeline.errors import SummaryPipelineError
from summary_pipeline.tables import ensure_namespace

__all__ = [
    "ASSET_CLASS_CODES",
    "SENTINEL_AMOUNTS",
    "SOURCE_SCHEMA",
    "append_source",
    "create_source_table",
    "demo_batch",
    "generate_versions",
]

_SOURCE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("cons_acct_key", "BIGINT"), ("bureau_mbr_id", "STRING"), ("port_type_cd", "STRING"),
    ("acct_type_dtl_cd", "STRING"), ("acct_open_dt", "DATE"), ("acct_closed_dt", "DATE"),
    ("pymt_terms_cd", "STRING"), ("pymt_terms_dtl_cd", "STRING"), ("acct_dt", "DATE"),
    ("acct_stat_cd", "STRING"), ("acct_pymt_stat_cd", "STRING"), ("acct_pymt_stat_dtl_cd", "STRING"),
    ("acct_credit_ext_am", "INT"), ("acct_bal_am", "INT"), ("past_due_am", "INT"), ("actual_pymt_am", "INT"),
    ("last_pymt_dt", "DATE"), ("schd_pymt_dt", "DATE"), ("next_schd_pymt_am", "INT"),
    ("collateral_cd", "STRING"), ("orig_pymt_due_dt", "DATE"), ("write_off_dt", "DATE"),
    ("write_off_am", "INT"), ("asset_class_cd_4in", "STRING"), ("days_past_due_ct_4in", "INT"),
    ("high_credit_am_4in", "INT"), ("cash_limit_am_4in", "INT"), ("collateral_am_4in", "INT"),
    ("total_write_off_am_4in", "INT"), ("principal_write_off_am_4in", "INT"), ("settled_am_4in", "INT"),
    ("interest_rate_4in", "INT"), ("suit_filed_wilful_def_stat_cd_4in", "STRING"),
    ("wo_settled_stat_cd_4in", "STRING"), ("soft_del_cd", "STRING"), ("base_ts", "TIMESTAMP"),
    ("insert_ts", "TIMESTAMP"), ("update_ts", "TIMESTAMP"), ("rpt_as_of_mo", "STRING"),
)
SOURCE_SCHEMA = ", ".join(f"{name} {kind}" for name, kind in _SOURCE_COLUMNS)
"""The reference source schema (``reference/accounts_all.sql``) as a Spark DDL string, in column order."""

ASSET_CLASS_CODES = ("1", "01", "S", "2", "02", "B", "3", "03", "D", "4", "04", "5", "05", "M", "0", "6", "G",
                     "L", "C")
"""Every asset class code the reference ``payment_rating_cd`` mapping knows."""

SENTINEL_AMOUNTS = (-2147483647, -214748364, -21474836, -1)
"""Amounts the bureau sends for "not reported"; the reference config turns them into NULL."""

_TYPES = dict(_SOURCE_COLUMNS)
_COLUMNS = list(_TYPES)
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_ACCT_TYPES = ("5", "214", "220", "213", "224", "121", "123", "130", "175", "181")
_SENTINEL_COLUMNS = ("acct_credit_ext_am", "acct_bal_am", "past_due_am", "actual_pymt_am",
                     "next_schd_pymt_am", "total_write_off_am_4in")
_DATE_COLUMNS = ("acct_open_dt", "acct_closed_dt", "acct_dt", "last_pymt_dt", "schd_pymt_dt",
                 "orig_pymt_due_dt", "write_off_dt")
_ANCIENT_DATES = ("0001-01-01", "0900-06-30", "0999-12-31")  # strings: py4j's date conversion mangles them
_MICROS, _DAY = 1_000_000, 86_400
# What a draw depends on: the account; the account-month (_mo: absolute month number); the version's values
# (_vv: version number, with a delete mapped to 0 so it repeats the first report's values).
_A, _AM, _ROW = ("cons_acct_key",), ("cons_acct_key", "_mo"), ("cons_acct_key", "_mo", "_vv")

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


def _sql_literal(value: str | int | None) -> str:
    """A Python constant as Spark SQL text (only the simple constants this module uses).

    >>> _sql_literal("S"), _sql_literal(None), _sql_literal(-1)
    ("'S'", 'NULL', '-1')
    """
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return str(int(value))


class _Hash:
    """Deterministic pseudo-randomness: values depend on the seed, a salt and row columns, never on tasks.

    Each draw is one SQL expression (one Py4J call instead of half a dozen), which keeps building the ~150
    draws of a row fast; ``cols`` are column names or SQL literals.
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def _hash(self, salt: str, cols: Sequence[str]) -> str:
        return f"xxhash64({self.seed}L, '{salt}', {', '.join(cols)})"

    def below(self, salt: str, n: int, *cols: str) -> Column:
        """Uniform INT in ``[0, n)`` (``n`` < 2**31)."""
        return F.expr(f"CAST(pmod({self._hash(salt, cols)}, {int(n)}) AS INT)")

    def unit(self, salt: str, *cols: str) -> Column:
        """Uniform DOUBLE in ``[0, 1)`` with a resolution of 1e-6."""
        return F.expr(f"pmod({self._hash(salt, cols)}, 1000000) / 1000000.0")

    def pick(self, salt: str, values: Sequence[str | int | None], *cols: str) -> Column:
        """One of ``values``, uniformly."""
        array = ", ".join(_sql_literal(v) for v in values)
        index = f"CAST(pmod({self._hash(salt, cols)}, {len(values)}) AS INT) + 1"
        return F.expr(f"element_at(array({array}), {index})")


def _micros(seconds: Column) -> Column:
    """Seconds as BIGINT microseconds (INT arithmetic would overflow)."""
    return seconds.cast("long") * _MICROS


def _versions(h: _Hash) -> Column:
    """The version numbers one account-month gets (always 0; 1, 2, 3 at their rates)."""
    return F.filter(
        F.array(*[F.lit(v) for v in range(4)]),
        lambda v: (v == 0)
        | ((v == 1) & (h.unit("corr", *_AM) < _CORRECTION_RATE))
        | ((v == 2) & (h.unit("tie", *_AM) < _TIE_RATE))
        | ((v == 3) & (h.unit("del", *_AM) < _DELETE_RATE)),
    )


def _timestamps(h: _Hash, month_date: Column, base_ts: datetime | None) -> tuple[Column, Column, Column]:
    """``base_ts``, ``insert_ts``, ``update_ts`` of each version, as microseconds since the epoch.

    Without ``base_ts`` a month's first version arrives on the 15th of the next month (plus seconds), and
    corrections and deletes days later; with ``base_ts`` everything arrives within minutes of it, which is
    what a test of one incremental batch needs.
    """
    v = F.col("_v")
    if base_ts is None:
        start = (F.unix_date(F.add_months(month_date, 1)).cast("long") + 14) * (_DAY * _MICROS)
        first, later_days, later_secs = h.below("ts", 36_000, *_AM), _DAY, 3_600
    else:
        start = F.unix_micros(F.lit(base_ts))
        first, later_days, later_secs = h.below("ts", 60, *_AM), 10, 10
    ts0 = start + _micros(first)
    corr = (1 + h.below("corr_ts", 10, *_AM)) * later_days + h.below("corr_s", later_secs, *_AM)
    delete = (1 + h.below("del_ts", 20, *_AM)) * later_days + h.below("del_s", later_secs, *_AM)
    shift = F.when(v == 1, corr).when(v == 3, delete).otherwise(0)
    base = ts0 + _micros(shift)

    def insert(version: str) -> Column:
        return _micros(h.below("ins", 300, *_AM, version))

    def update(ins: Column, version: str) -> Column:
        return F.when(h.unit("upd_null", *_AM, version) >= 0.1,
                      ins + _micros(h.below("upd", 3_600, *_AM, version)))

    ins = base + insert("_v")
    upd = update(ins, "_v")
    # The tie version shares version 0's base_ts; its tie-breakers rank it above (kinds 0, 1) or below (2) it.
    ins0 = ts0 + insert("0")
    upd0 = update(ins0, "0")
    kind, step = h.below("tie_kind", 3, *_AM), _micros(1 + h.below("tie_step", 100, *_AM))
    tie_ins = F.when(kind == 0, ins0 + step).when(kind == 1, ins0).otherwise(ins0 - step)
    tie_upd = F.when(kind == 1, F.coalesce(upd0, ins0) + step).otherwise(upd0)
    return base, F.when(v == 2, tie_ins).otherwise(ins), F.when(v == 2, tie_upd).otherwise(upd)


def _dpd_and_asset(h: _Hash) -> tuple[Column, Column]:
    """Days past due over every range the rating mapping knows, with a matching asset class code."""
    r = h.unit("dpd", *_ROW)
    dpd = (F.when(r < 0.12, -1 - h.below("neg", 30, *_ROW)).when(r < 0.13, F.lit(None))
           .when(r < 0.75, F.lit(0)).otherwise(h.below("pos", 201, *_ROW))).cast("int")
    asset = (F.when(h.unit("asset_null", *_ROW) < 0.02, F.lit(None))
             .when(dpd.isNull() | (dpd < 0), h.pick("asset_any", ASSET_CLASS_CODES, *_ROW))
             .when(dpd <= 90, h.pick("asset_std", ("1", "01", "S"), *_ROW))
             .when(dpd <= 180, h.pick("asset_sub", ("2", "02", "B"), *_ROW))
             .otherwise(h.pick("asset_bad", ("3", "03", "D", "4", "04", "5", "05", "M", "L"), *_ROW)))
    return dpd, asset


def generate_versions(spark: SparkSession, *, accounts: int, start_month: str, end_month: str, seed: int = 42,
                      first_account: int = 1, base_ts: datetime | None = None) -> DataFrame:
    """Synthetic source versions (``SOURCE_SCHEMA``) of ``accounts`` accounts, ``start_month..end_month``.

    About a quarter of the accounts start reporting after ``start_month``; ~5% of account-months are missing
    (never an account's first one); ~2% get a later correction, ~1% a second version with the same ``base_ts``
    that ``insert_ts``/``update_ts`` rank above or below the first, ~0.5% a later soft delete (``'1'`` or
    ``'4'``). Balances follow a per-account level and drift. Sentinels, empty and NULL account types, every
    days-past-due range and dates before year 1000 appear in small proportions.

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
    h = _Hash(seed)
    acct, mi, first, v, vv = (F.col(c) for c in ("cons_acct_key", "_mi", "_first", "_v", "_vv"))
    # Stages materialise values used several times, so the plan holds each expression once.
    late = h.unit("late", *_A) < 0.25
    df = (spark.range(accounts).select((F.col("id") + first_account).alias("cons_acct_key"))
          .withColumns({
              "_first": F.when(late, h.below("open", n_months, *_A)).otherwise(0),
              "_age": F.when(late, 0).otherwise(h.below("age", 60, *_A)),  # months open before first report
              "_limit": (10 + h.below("limit", 491, *_A)) * 1_000,
          })
          .withColumn("_mi", F.explode(F.sequence(first, F.lit(n_months - 1))))
          .withColumn("_mo", (F.lit(start) + mi).cast("long")))  # absolute: a month hashes alike in any range
    df = (df.where((mi == first) | (h.unit("gap", *_AM) >= _GAP_RATE))
          .withColumn("_v", F.explode(_versions(h)))
          .withColumns({
              "_vv": F.when(v.isin(1, 2), v).otherwise(0),  # a delete repeats version 0's values
              "_month": F.add_months(F.lit(f"{start // 12:04d}-{start % 12 + 1:02d}-01").cast("date"), mi),
          }))
    month_date, limit, age = F.col("_month"), F.col("_limit"), F.col("_age") + mi - first
    level = limit * (10 + h.below("level", 71, *_A)) / 100
    drift = h.below("drift", 601, *_A) - 300
    noise = h.below("noise", 401, *_ROW) - 200 + F.when(vv > 0, 1 + h.below("fix", 500, *_ROW)).otherwise(0)
    closed = h.unit("closes", *_A) < 0.08
    dpd, asset = _dpd_and_asset(h)
    base, ins, upd = _timestamps(h, month_date, base_ts)
    df = df.withColumns({
        "_noise": noise,
        "_balance": F.greatest(F.lit(0), F.least(limit * 1.1, level + age * drift + noise)).cast("int"),
        "_open": F.date_add(F.add_months(month_date, -age), h.below("open_day", 28, *_A)),
        "_closed": F.when(closed & (mi >= first + h.below("close_at", n_months, *_A)),
                          F.date_add(month_date, h.below("close_day", 28, *_A))),
        "_dpd": dpd,
        "_asset": asset,
        "_base": base,
        "_ins": ins,
        "_upd": upd,
    })
    noise, balance, open_dt, closed_dt, dpd, asset = (
        F.col(c) for c in ("_noise", "_balance", "_open", "_closed", "_dpd", "_asset"))
    emi = limit / 24
    write_off = dpd > 180

    values: dict[str, Column] = {
        "cons_acct_key": acct,
        "bureau_mbr_id": F.format_string("MBR%04d", h.below("mbr", 500, *_A)),
        "port_type_cd": h.pick("port", ("R", "I", "M", "O", "C"), *_A),
        "acct_type_dtl_cd": F.when(h.unit("type_blank", *_ROW) < 0.03, F.lit(""))
        .when(h.unit("type_blank", *_ROW) < 0.06, F.lit(None)).otherwise(h.pick("type", _ACCT_TYPES, *_A)),
        "acct_open_dt": open_dt,
        "acct_closed_dt": closed_dt,
        "pymt_terms_cd": h.pick("terms", ("M", "W", "B", "Q"), *_A),
        "pymt_terms_dtl_cd": h.pick("terms_dtl", ("01", "02", "03", "M", "W"), *_A),
        "acct_dt": F.last_day(month_date),
        "acct_stat_cd": F.when(closed_dt.isNotNull(), "13").when(dpd.isNull() | (dpd <= 0), "11")
        .when(dpd <= 29, "71").when(dpd <= 59, "78").when(dpd <= 89, "80").when(dpd <= 119, "82")
        .when(dpd <= 149, "83").otherwise("84"),
        "acct_pymt_stat_cd": F.when(dpd.isNull() | (dpd <= 0), "0")
        .otherwise(F.least(F.lit(6), F.ceil(dpd / 30)).cast("string")),
        "acct_pymt_stat_dtl_cd": h.pick("pymt_dtl", ("C", "P", "D", "N"), *_ROW),
        "acct_credit_ext_am": limit,
        "acct_bal_am": balance,
        "past_due_am": F.when(dpd > 0, F.least(balance, emi * F.ceil(dpd / 30))).otherwise(0),
        "actual_pymt_am": F.when(dpd > 29, 0).otherwise(F.greatest(F.lit(0), emi + noise)),
        "last_pymt_dt": F.date_add(month_date, h.below("pay_day", 28, *_ROW)),
        "schd_pymt_dt": F.date_add(month_date, 4),
        "next_schd_pymt_am": emi,
        "collateral_cd": h.pick("coll", ("", "01", "02", "03", None), *_A),
        "orig_pymt_due_dt": F.date_add(open_dt, 30),
        "write_off_dt": F.when(write_off, F.date_add(month_date, 10)),
        "write_off_am": F.when(write_off, balance),
        "asset_class_cd_4in": asset,
        "days_past_due_ct_4in": dpd,
        "high_credit_am_4in": limit * (100 + h.below("high", 21, *_A)) / 100,
        "cash_limit_am_4in": limit / 5,
        "collateral_am_4in": F.when(h.below("coll", 5, *_A).isin(1, 2, 3), limit * 3 / 2).otherwise(0),
        "total_write_off_am_4in": F.when(write_off, balance).otherwise(0),
        "principal_write_off_am_4in": F.when(write_off, balance * 4 / 5).otherwise(0),
        "settled_am_4in": F.when(write_off & (h.unit("settled", *_ROW) < 0.3), balance / 2).otherwise(0),
        "interest_rate_4in": 8 + h.below("rate", 29, *_A),
        "suit_filed_wilful_def_stat_cd_4in": F.when(h.unit("suit", *_ROW) < 0.05,
                                                    h.pick("suit_cd", ("00", "01", "02", "03"), *_ROW)),
        "wo_settled_stat_cd_4in": F.when(write_off, h.pick("wo_cd", ("02", "03", "04", "05"), *_ROW)),
        "soft_del_cd": F.when(v == 3, h.pick("del_cd", ("1", "4"), *_AM))
        .when(h.unit("del0", *_ROW) < 0.4, F.lit("0")),
        "base_ts": F.timestamp_micros(F.col("_base")),
        "insert_ts": F.timestamp_micros(F.col("_ins")),
        "update_ts": F.timestamp_micros(F.col("_upd")),
        "rpt_as_of_mo": F.date_format(month_date, "yyyy-MM"),
    }
    for name in _SENTINEL_COLUMNS:
        sentinel = h.pick(f"sentinel_value_{name}", SENTINEL_AMOUNTS, *_ROW)
        values[name] = F.when(h.unit(f"sentinel_{name}", *_ROW) < 0.01, sentinel).otherwise(values[name])
    for name in _DATE_COLUMNS:
        ancient = h.pick(f"ancient_value_{name}", _ANCIENT_DATES, *_ROW).cast("date")
        values[name] = F.when(h.unit(f"ancient_{name}", *_ROW) < 0.005, ancient).otherwise(values[name])
    # One cast per column to its SOURCE_SCHEMA type (arithmetic widens INT to BIGINT or DOUBLE).
    return df.select(*[values[c].cast(_TYPES[c]).alias(c) for c in _COLUMNS])


def _month_first(month: str) -> date:
    n = _month_number(month, "month")
    return date(n // 12, n % 12 + 1, 1)


def _demo_row(key: int, month: str, balance: int, base_ts: datetime) -> tuple[object, ...]:
    """One fully populated, plausible version (no NULL anywhere) of a performing account."""
    first = _month_first(month)
    last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    opened = date(2020, 1, 1) + timedelta(days=key % 365)
    limit = max(balance * 2, 20_000)
    emi = limit // 24
    values: dict[str, object] = {
        "cons_acct_key": key, "bureau_mbr_id": f"MBR{key % 500:04d}", "port_type_cd": "R",
        "acct_type_dtl_cd": "5", "acct_open_dt": opened, "acct_closed_dt": opened + timedelta(days=3652),
        "pymt_terms_cd": "M", "pymt_terms_dtl_cd": "01", "acct_dt": last, "acct_stat_cd": "11",
        "acct_pymt_stat_cd": "0", "acct_pymt_stat_dtl_cd": "C", "acct_credit_ext_am": limit,
        "acct_bal_am": balance, "past_due_am": 0, "actual_pymt_am": emi,
        "last_pymt_dt": first + timedelta(days=9),
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
    rows = [
        _demo_row(1, "2026-01", 11_000, base_ts),
        _demo_row(2, "2026-01", 6_000, base_ts),
        _demo_row(1, "2025-11", 10_700, base_ts),
        _demo_row(2, "2025-10", 5_300, base_ts),
        _demo_row(9999, "2026-01", 50_000, base_ts),
    ]
    months = ["2025-08", "2025-09", "2025-10", "2025-11", "2025-12", "2026-01"]
    rows += [_demo_row(9998, m, 20_000 + 500 * i, base_ts) for i, m in enumerate(months)]
    return spark.createDataFrame(rows, SOURCE_SCHEMA)


def create_source_table(spark: SparkSession, table: str) -> None:
    """Create the source table like ``reference/accounts_all.sql`` (and its namespace) when missing.

    In production the source table is the user's; tests, the demo and benchmarks make their own with this.
    """
    ensure_namespace(spark, table)
    spark.sql(f"CREATE TABLE IF NOT EXISTS {table} ({SOURCE_SCHEMA}) USING iceberg "
              "PARTITIONED BY (rpt_as_of_mo)")


def append_source(df: DataFrame, table: str) -> int:
    """Append ``df`` to the source table as one commit and return how many rows it held.

    Counting first reads the input twice, which is harmless for generated data and keeps the write a plain
    Iceberg append.
    """
    n = df.count()
    df.writeTo(table).append()
    return int(n)
