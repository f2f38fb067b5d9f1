"""Every SPEC 7 example as an incremental scenario: state built by an earlier run, then the batch.

All scenarios use different accounts of one source table: one initial run builds the state, one incremental
run applies the mixed batch, and each test looks at its own accounts. The whole result also equals the oracle.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pyspark.sql import SparkSession

from factories import assert_matches_oracle, load_source, new_config, read_tables, version
from oracle import add_months
from summary_pipeline.config import PipelineConfig
from summary_pipeline.result import RunOptions, RunResult
from summary_pipeline.runner import run
from summary_pipeline.store.tables import snapshot_ids

pytestmark = [pytest.mark.spark, pytest.mark.slow]

H = 36
OLD = dt.datetime(2026, 1, 1, 8)
NEW = dt.datetime(2026, 1, 15, 10)


def months(start: str, count: int) -> list[str]:
    return [add_months(start, i) for i in range(count)]


def _state() -> list[dict[str, Any]]:
    v = version
    rows = [v(1, "2025-10", 10200, ts=OLD), v(1, "2025-11", 9500, ts=OLD), v(1, "2025-12", 10000, ts=OLD)]
    rows += [v(2, "2025-10", 5000, ts=OLD), v(2, "2025-12", 6500, ts=OLD)]
    rows += [v(3, "2025-11", 4500, ts=OLD), v(3, "2025-12", 5000, ts=OLD)]
    rows += [v(4, "2025-12", 400, ts=OLD)]
    rows += [v(7, m, i, ts=OLD) for i, m in enumerate(months("2024-01", 24))]  # 2024-01 .. 2025-12
    rows += [v(9, "2025-12", 12, ts=OLD), v(9, "2026-01", 1, ts=OLD), v(9, "2026-02", 2, ts=OLD)]
    rows += [v(91, "2025-11", 11, ts=OLD), v(91, "2025-12", 12, ts=OLD)]
    rows += [v(92, "2025-12", 12, ts=OLD)]
    rows += [v(93, "2020-01", 1, ts=OLD), v(93, "2025-12", 2, ts=OLD)]  # its older month is out of every window
    rows += [v(10, m, i, ts=OLD) for i, m in enumerate(months("2021-01", 60))]  # 2021-01 .. 2025-12
    rows += [v(11, "2025-10", 1, ts=OLD), v(11, "2025-11", 2, ts=OLD), v(11, "2025-12", 3, ts=OLD, soft_del_cd="1"),
             v(11, "2025-12", 33, ts=OLD - dt.timedelta(hours=1))]  # a tombstone after the latest active month
    rows += [v(12, "2025-12", 7, ts=OLD)]
    return rows


def _batch() -> list[dict[str, Any]]:
    v = version
    rows = [v(1, "2026-01", 11000, ts=NEW), v(1, "2025-11", 10700, ts=NEW)]  # the seed's example
    rows += [v(2, "2026-01", 6000, ts=NEW), v(2, "2025-10", 5300, ts=NEW)]
    rows += [v(9999, "2026-01", 50000, ts=NEW)]  # 1. new account
    rows += [v(3, "2026-03", 6000, ts=NEW)]  # 3. forward gap
    rows += [v(4, "2026-01", 401, ts=NEW), v(4, "2026-02", 402, ts=NEW), v(4, "2026-03", 403, ts=NEW)]  # 4.
    rows += [v(5, m, 100 + i, ts=NEW) for i, m in enumerate(months("2025-01", 12))]  # 5. 12 new months
    rows += [v(6, m, i, ts=NEW) for i, m in enumerate(months("2022-01", 48))]  # 6. 48-month new account
    rows += [v(7, "2024-12", 999, ts=NEW)]  # 7. correction 12 months back
    rows += [v(8, "2026-01", b, ts=NEW + dt.timedelta(hours=h)) for h, b in ((0, 1), (2, 3), (1, 2))]  # 8.
    rows += [v(9, "2026-01", 1, ts=NEW, soft_del_cd="1")]  # 9. delete a middle month
    rows += [v(91, "2025-12", 12, ts=NEW, soft_del_cd="4")]  # 9. delete the latest month
    rows += [v(92, "2026-05", 5, ts=NEW, soft_del_cd="1")]  # 9. delete a month with no row
    rows += [v(93, "2025-12", 2, ts=NEW, soft_del_cd="1")]  # 9. delete the latest; the next is 71 months back
    rows += [v(10, "2021-06", -1, ts=NEW), v(10, "2025-12", 77, ts=NEW)]  # >36 months back; the latest month
    rows += [v(11, "2026-01", 4, ts=NEW)]  # forward after a trailing tombstone
    rows += [v(12, "2026-01", 8, ts=NEW), v(12, "2026-01", 8, ts=NEW + dt.timedelta(hours=1), soft_del_cd="1")]
    return rows  # 12: the next month arrives deleted, so the latest row stays 2025-12 (and its last month moves)


@pytest.fixture(scope="module", params=["hadoop", "jdbc"])
def scenario(spark: SparkSession, request: pytest.FixtureRequest
             ) -> tuple[PipelineConfig, RunResult, dict[str, list[int]], dict[str, list[int]]]:
    """The scenario in the embedded catalog, and again in the JDBC catalog on PostgreSQL."""
    cfg = request.getfixturevalue("pg_catalog")() if request.param == "jdbc" else new_config()
    load_source(spark, cfg, _state())
    run(spark, cfg, RunOptions(mode="initial"))
    before = {t: snapshot_ids(spark, t) for t in (cfg.destination_table, cfg.latest_history_table)}
    load_source(spark, cfg, _batch())
    result = run(spark, cfg, RunOptions(mode="incremental"))
    after = {t: snapshot_ids(spark, t) for t in (cfg.destination_table, cfg.latest_history_table)}
    return cfg, result, before, after


@pytest.fixture(scope="module")
def tables(spark: SparkSession, scenario: Any) -> Any:
    return read_tables(spark, scenario[0])


def test_incremental_equals_oracle(spark: SparkSession, scenario: Any) -> None:
    assert_matches_oracle(spark, scenario[0], _state() + _batch())


def test_one_commit_per_table(scenario: Any) -> None:
    cfg, _, before, after = scenario
    for table in (cfg.destination_table, cfg.latest_history_table):
        assert len(after[table]) == len(before[table]) + 1


def test_case_counts(scenario: Any) -> None:
    result = scenario[1]
    assert result.case_i == 4  # 9999, 5, 6, 8
    assert result.case_iv == 11 + 47
    assert result.case_ii == 1 + 1 + 1 + 3 + 1  # accounts 1, 2, 3, 4 (three months), 11
    assert result.case_iii == 1 + 1 + 1 + 2  # 1, 2, 7, 10 (two)
    assert result.soft_deletes_applied == 4 and result.soft_deletes_ignored == 1  # 9, 91, 93, 12; 92
    assert result.duplicates_dropped == 3  # 8 (two), 12 (the version under its delete)


def test_seed_example_backfill_then_forward(tables: Any) -> None:
    summary, latest = tables
    assert summary[(1, "2025-11")]["balance_am_history"][:2] == [10700, 10200]
    assert summary[(1, "2025-12")]["balance_am_history"][:3] == [10000, 10700, 10200]
    assert summary[(1, "2026-01")]["balance_am_history"][:4] == [11000, 10000, 10700, 10200]
    assert latest[1]["rpt_as_of_mo"] == "2026-01"


def test_new_account_gap_and_forward_chain(tables: Any) -> None:
    summary, _ = tables
    assert summary[(9999, "2026-01")]["payment_history_grid"] == "0" + "?" * (H - 1)
    assert summary[(3, "2026-03")]["balance_am_history"][:5] == [6000, None, None, 5000, 4500]
    assert summary[(4, "2026-03")]["balance_am_history"][:4] == [403, 402, 401, 400]


def test_new_accounts_with_history(tables: Any) -> None:
    summary, latest = tables
    assert summary[(5, "2025-12")]["balance_am_history"][:12] == list(range(111, 99, -1))
    assert summary[(6, "2025-12")]["balance_am_history"][35] == 12
    assert latest[6]["rpt_as_of_mo"] == "2025-12"


def test_backfill_twelve_months_back(tables: Any) -> None:
    summary, _ = tables
    assert summary[(7, "2024-12")]["balance_am_history"][0] == 999
    for later in months("2025-01", 12):
        row = summary[(7, later)]
        k = 12 - months("2025-01", 12).index(later) - 1
        assert row["balance_am_history"][12 - k - 1 if False else months("2024-12", 13).index(later)] == 999
        assert row["base_ts"] == NEW and row["fact_base_ts"] == OLD and row["balance_am"] != 999


def test_deletes(tables: Any) -> None:
    summary, latest = tables
    assert summary[(9, "2026-01")]["balance_am_history"][:2] == [None, 12]
    assert summary[(9, "2026-02")]["balance_am_history"][:3] == [2, None, 12]
    assert latest[91]["rpt_as_of_mo"] == "2025-11"
    assert (92, "2026-05") not in summary and latest[92]["rpt_as_of_mo"] == "2025-12"
    assert latest[93]["rpt_as_of_mo"] == "2020-01" and latest[93]["balance_am"] == 1


def test_old_and_latest_month_corrections(tables: Any) -> None:
    summary, latest = tables
    assert summary[(10, "2021-06")]["balance_am"] is None
    assert summary[(10, "2025-12")]["balance_am_history"][0] == 77
    assert latest[10]["balance_am"] == 77
    assert summary[(11, "2026-01")]["balance_am_history"][:4] == [4, None, 2, 1]
    assert summary[(12, "2026-01")]["soft_del_cd"] == "1" and latest[12]["rpt_as_of_mo"] == "2025-12"


def test_rerun_without_new_versions_changes_nothing(spark: SparkSession, scenario: Any) -> None:
    cfg, _, _, after = scenario
    again = run(spark, cfg, RunOptions(mode="incremental"))
    assert again.message == "no new records"
    forward = run(spark, cfg, RunOptions(mode="forward", start_month="2025-10", end_month="2026-03"))
    assert forward.status == "succeeded" and forward.summary_rows_written == 0
    for table in (cfg.destination_table, cfg.latest_history_table):
        assert snapshot_ids(spark, table) == after[table]


def test_writes_exactly_the_rows_that_change(scenario: Any) -> None:
    from factories import oracle_config
    from oracle import expected_tables

    cfg, result, _, _ = scenario
    before = expected_tables(_state(), oracle_config(cfg))
    after = expected_tables(_state() + _batch(), oracle_config(cfg))

    def changed(old: dict[Any, Any], new: dict[Any, Any], columns: tuple[str, ...]) -> int:
        return sum(1 for k, row in new.items() if k not in old or any(old[k][c] != row[c] for c in columns))

    assert result.summary_rows_written == changed(before[0], after[0], cfg.summary_columns)
    # 12's latest row shows the same values, but its internal last month moves to the deleted month.
    assert result.latest_rows_written == changed(before[1], after[1], cfg.latest_columns) + 1


def test_bucketed_merge_on_read_layout_gives_the_same_tables(spark: SparkSession) -> None:
    """The layout knobs change where rows live and how MERGE writes, never what the tables hold."""
    layout = {"summary_buckets": 2, "latest_buckets": 2, "write_mode": "merge-on-read",
              "latest_write_mode": "copy-on-write"}
    cfg = new_config(layout=layout)
    previous = {k: spark.conf.get(k, None) for k in cfg.layout.settings()}
    for key, value in cfg.layout.settings().items():  # the storage-partitioned join settings a run would use
        spark.conf.set(key, value)
    try:
        load_source(spark, cfg, _state())
        run(spark, cfg, RunOptions(mode="initial"))
        load_source(spark, cfg, _batch())
        run(spark, cfg, RunOptions(mode="incremental"))
    finally:
        for key, value in previous.items():
            spark.conf.unset(key) if value is None else spark.conf.set(key, value)
    assert_matches_oracle(spark, cfg, _state() + _batch())
    spec = {t: spark.sql(f"DESCRIBE TABLE EXTENDED {t}").collect()
            for t in (cfg.destination_table, cfg.latest_history_table)}
    partitioning = {t: [r[1] for r in rows if r[0].startswith("Part ")] for t, rows in spec.items()}
    assert partitioning[cfg.destination_table] == ["rpt_as_of_mo", "bucket(2, cons_acct_key)"]
    assert partitioning[cfg.latest_history_table] == ["bucket(2, cons_acct_key)"]
    modes = {t: {r[0]: r[1] for r in spark.sql(f"SHOW TBLPROPERTIES {t}").collect()}["write.merge.mode"]
             for t in spec}
    assert modes == {cfg.destination_table: "merge-on-read", cfg.latest_history_table: "copy-on-write"}
