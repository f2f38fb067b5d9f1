"""The synthetic source generator: reference schema, reproducibility, and every kind of mess it promises.

Other tests, the demo and the benchmarks lean on these properties (a late correction exists, a delete exists,
sentinels exist...), so they are pinned here on small samples rather than trusted.
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from factories import shared_dir
from summary_pipeline.errors import SummaryPipelineError
from summary_pipeline.tools.demo import DEMO_MARK, demo_warehouse
from summary_pipeline.tools.generate import (
    ASSET_CLASS_CODES,
    SENTINEL_AMOUNTS,
    SOURCE_SCHEMA,
    append_source,
    create_source_table,
    demo_batch,
    generate_versions,
    source_ddl,
)

START, END = "2024-11", "2025-12"
T0 = datetime(2026, 1, 15, 10, 0, 0)
AMOUNTS = ("acct_credit_ext_am", "acct_bal_am", "past_due_am", "actual_pymt_am", "next_schd_pymt_am",
           "total_write_off_am_4in")
DATES = ("acct_open_dt", "acct_closed_dt", "acct_dt", "last_pymt_dt", "schd_pymt_dt", "orig_pymt_due_dt",
         "write_off_dt")


def _small(spark: SparkSession, *, seed: int = 42, accounts: int = 30, first_account: int = 1) -> DataFrame:
    """The everyday sample: 30 accounts over 14 months (~400 versions)."""
    return generate_versions(spark, accounts=accounts, start_month=START, end_month=END, seed=seed,
                             first_account=first_account)


def _sorted(rows: list[Row]) -> list[tuple[Any, ...]]:
    return sorted((tuple(r) for r in rows), key=repr)


def _months(start: str, end: str) -> list[str]:
    y, m = map(int, start.split("-"))
    out = []
    while f"{y:04d}-{m:02d}" <= end:
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


@pytest.fixture(scope="module")
def small_df(spark: SparkSession) -> DataFrame:
    return _small(spark)


@pytest.fixture(scope="module")
def small(small_df: DataFrame) -> list[Row]:
    return small_df.collect()


@pytest.fixture(scope="module")
def large(spark: SparkSession) -> list[Row]:
    """Big enough (~2,400 keys) that the rare cases (0.5% deletes, 19 asset codes) all show up."""
    df = generate_versions(spark, accounts=200, start_month="2024-01", end_month="2024-12", seed=7)
    return df.collect()


def _by_key(rows: list[Row]) -> dict[tuple[int, str], list[Row]]:
    keys: dict[tuple[int, str], list[Row]] = defaultdict(list)
    for r in rows:
        keys[(r.cons_acct_key, r.rpt_as_of_mo)].append(r)
    return keys


def test_source_schema_is_the_reference_sql() -> None:
    sql = (shared_dir() / "reference" / "accounts_all.sql").read_text()
    body = sql[sql.index("(") + 1: sql.index(") USING")]
    expected = [tuple(line.split()) for line in body.splitlines() if re.match(r"\s*\w+\s+\w+,?\s*$", line)]
    expected = [(name, kind.rstrip(",")) for name, kind in expected]
    assert [tuple(part.split()) for part in SOURCE_SCHEMA.split(", ")] == expected
    assert len(expected) == 39
    assert source_ddl() == sql  # the copy shipped in the package is the reference, word for word
    assert source_ddl("raw.accounts").count("CREATE TABLE IF NOT EXISTS raw.accounts (") == 1


@pytest.mark.spark
def test_generated_schema_is_source_schema(spark: SparkSession, small_df: DataFrame) -> None:
    reference = spark.createDataFrame([], SOURCE_SCHEMA).schema
    for df in (small_df, demo_batch(spark, T0)):
        assert [(f.name, f.dataType) for f in df.schema] == [(f.name, f.dataType) for f in reference]


@pytest.mark.spark
def test_same_arguments_same_rows_other_seed_other_rows(spark: SparkSession, small: list[Row]) -> None:
    again = _sorted(_small(spark).collect())
    assert _sorted(small) == again
    assert _sorted(_small(spark, seed=43, accounts=3).collect()) != _sorted([r for r in small
                                                                             if r.cons_acct_key <= 3])


@pytest.mark.spark
def test_rows_depend_on_the_key_not_on_position_or_partitioning(spark: SparkSession,
                                                                small: list[Row]) -> None:
    part = _small(spark, accounts=20, first_account=11).collect()
    assert _sorted(part) == _sorted([r for r in small if r.cons_acct_key >= 11])


@pytest.mark.spark
def test_accounts_months_gaps_and_late_starts(small: list[Row]) -> None:
    months = _months(START, END)
    per_account: dict[int, set[str]] = defaultdict(set)
    for r in small:
        per_account[r.cons_acct_key].add(r.rpt_as_of_mo)
    assert set(per_account) == set(range(1, 31))
    assert all(m in months for ms in per_account.values() for m in ms)
    assert any(min(ms) > months[0] for ms in per_account.values()), "no account starts late"
    gaps = sum(len(months[months.index(min(ms)):]) - len(ms) for ms in per_account.values())
    keys = sum(len(ms) for ms in per_account.values())
    assert 0 < gaps < 0.15 * keys


@pytest.mark.spark
def test_default_base_ts_is_the_month_after(small_df: DataFrame) -> None:
    df = small_df
    month_after = F.date_format(F.add_months(F.to_date(F.concat("rpt_as_of_mo", F.lit("-01"))), 1), "yyyy-MM")
    first = df.groupBy("cons_acct_key", "rpt_as_of_mo").agg(F.min("base_ts").alias("ts"))
    wrong = first.where((F.date_format("ts", "yyyy-MM") != month_after) | (F.dayofmonth("ts") != 15))
    assert wrong.count() == 0


@pytest.mark.spark
def test_given_base_ts_stamps_every_row_within_minutes(spark: SparkSession) -> None:
    rows = generate_versions(spark, accounts=50, start_month="2026-01", end_month="2026-01", base_ts=T0,
                             first_account=5000).collect()
    assert {r.cons_acct_key for r in rows} == set(range(5000, 5050))
    assert all(T0 <= r.base_ts < T0 + timedelta(minutes=10) for r in rows)


@pytest.mark.spark
def test_versions_corrections_ties_and_deletes(large: list[Row]) -> None:
    keys = _by_key(large)
    later = ties = deletes = 0
    for versions in keys.values():
        first = min(versions, key=lambda r: r.base_ts)
        for r in versions:
            if r.soft_del_cd in ("1", "4"):
                deletes += 1
                assert r.base_ts > first.base_ts and first.soft_del_cd not in ("1", "4")
            elif r is not first and r.base_ts > first.base_ts:
                later += 1
            elif r is not first:
                ties += 1
                assert r.base_ts == first.base_ts
                assert (r.insert_ts, r.update_ts) != (first.insert_ts, first.update_ts)
    n = len(keys)
    assert 0.01 * n < later < 0.04 * n
    assert 0 < ties < 0.03 * n
    assert 0 < deletes < 0.015 * n
    assert {r.soft_del_cd for r in large} == {None, "0", "1", "4"}


@pytest.mark.spark
def test_messy_values_all_appear(large: list[Row]) -> None:
    sentinels = {r[c] for r in large for c in AMOUNTS if r[c] is not None and r[c] < 0}
    assert sentinels == set(SENTINEL_AMOUNTS)
    assert any(r[c] is not None and r[c].year < 1000 for r in large for c in DATES)
    types = {r.acct_type_dtl_cd for r in large}
    assert {"", None, "5", "214", "220", "213", "224"} <= types
    negative = {r.asset_class_cd_4in for r in large if r.days_past_due_ct_4in is not None
                and r.days_past_due_ct_4in < 0}
    assert negative >= set(ASSET_CLASS_CODES)
    dpd = {r.days_past_due_ct_4in for r in large if r.days_past_due_ct_4in is not None}
    assert {0, 200} <= dpd and any(30 <= d <= 59 for d in dpd) and any(150 <= d <= 199 for d in dpd)


@pytest.mark.spark
def test_balances_evolve_plausibly(large: list[Row]) -> None:
    first_versions = {k: min(v, key=lambda r: r.base_ts) for k, v in _by_key(large).items()}
    balances: dict[int, list[int]] = defaultdict(list)
    for (acct, _), r in sorted(first_versions.items()):
        if r.acct_bal_am is not None and r.acct_bal_am >= 0:
            balances[acct].append(r.acct_bal_am)
    steps = [abs(b - a) for bs in balances.values() for a, b in itertools.pairwise(bs)]
    assert max(max(bs) for bs in balances.values()) > 0
    assert sorted(steps)[len(steps) // 2] < 2_000, "month-to-month balances jump around"


@pytest.mark.spark
@pytest.mark.parametrize(("kwargs", "message"), [
    ({"start_month": "2025-13", "end_month": "2025-12"}, "start_month must be 'YYYY-MM'"),
    ({"start_month": "2025-12", "end_month": "2025-1"}, "end_month must be 'YYYY-MM'"),
    ({"start_month": "2025-12", "end_month": "2025-11"}, "is before start_month"),
    ({"start_month": "2025-12", "end_month": "2025-12", "accounts": -1}, "accounts must be >= 0"),
])
def test_bad_arguments_are_refused(spark: SparkSession, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(SummaryPipelineError, match=re.escape(message)):
        generate_versions(spark, **{"accounts": 1, **kwargs})


@pytest.mark.spark
def test_demo_batch_is_the_seed_batch(spark: SparkSession) -> None:
    rows = demo_batch(spark, T0).collect()
    got = sorted((r.cons_acct_key, r.rpt_as_of_mo, r.acct_bal_am) for r in rows)
    new_account = [(9998, m, 20_000 + 500 * i) for i, m in enumerate(_months("2025-08", "2026-01"))]
    assert got == sorted([(1, "2026-01", 11_000), (2, "2026-01", 6_000), (1, "2025-11", 10_700),
                          (2, "2025-10", 5_300), (9999, "2026-01", 50_000), *new_account])
    assert all(r.base_ts == T0 for r in rows)
    assert all(v is not None for r in rows for v in r)
    assert all(r.soft_del_cd not in ("1", "4") for r in rows)


@pytest.mark.spark
def test_create_and_append_source(spark: SparkSession, small_df: DataFrame) -> None:
    table = f"gen_{uuid.uuid4().hex[:12]}.accounts_all"
    create_source_table(spark, table)
    create_source_table(spark, table)  # idempotent
    assert append_source(demo_batch(spark, T0), table) == 11
    generated = small_df.where("cons_acct_key BETWEEN 10 AND 14 AND rpt_as_of_mo < '2025-01'")
    n = append_source(generated, table)
    stored = spark.table(table)
    assert stored.count() == 11 + n
    assert [(f.name, f.dataType) for f in stored.schema] == \
        [(f.name, f.dataType) for f in spark.createDataFrame([], SOURCE_SCHEMA).schema]
    partitions = spark.sql(f"SELECT partition.rpt_as_of_mo AS m FROM {table}.partitions").collect()
    assert {r.m for r in partitions} == {"2024-11", "2024-12", *_months("2025-08", "2026-01")}
    back = stored.where("cons_acct_key BETWEEN 10 AND 14").collect()
    assert _sorted(back) == _sorted(generated.collect())


def test_the_demo_starts_from_an_empty_warehouse_it_made_and_never_deletes_other_tables(tmp_path: Path) -> None:
    ours = tmp_path / "demo"
    assert demo_warehouse(ours) == f"Demo warehouse: {ours}"
    (ours / "default").mkdir()  # tables the demo wrote
    assert "removed the previous demo's tables" in demo_warehouse(ours)
    assert sorted(p.name for p in ours.iterdir()) == [DEMO_MARK]
    theirs = tmp_path / "theirs"
    (theirs / "sales").mkdir(parents=True)
    assert "holds tables the demo did not make; using them as they are" in demo_warehouse(theirs)
    assert (theirs / "sales").exists() and not (theirs / DEMO_MARK).exists()
