"""``initial`` (full rebuild) against the oracle: every SPEC 7 example a full rebuild can show.

All scenarios use different accounts of one source table and one run, which keeps Spark's fixed costs down;
each test then looks at its own accounts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from pyspark.sql import SparkSession

from factories import T0, assert_matches_oracle, load_source, new_config, read_tables, version
from oracle import add_months
from summary_pipeline.config import PipelineConfig
from summary_pipeline.errors import TablesNotEmptyError
from summary_pipeline.result import RunOptions, RunResult
from summary_pipeline.runner import run

pytestmark = pytest.mark.spark

H = 36


def months(start: str, count: int) -> list[str]:
    return [add_months(start, i) for i in range(count)]


def _scenarios() -> list[dict[str, Any]]:
    v = version
    rows: list[dict[str, Any]] = []
    # 1. New account 9999, 2026-01, balance 50000.
    rows.append(v(9999, "2026-01", 50000, days_past_due_ct_4in=0))
    # 3. Forward gap: 2025-11 4500, 2025-12 5000, then 2026-03 6000.
    rows += [v(3, "2025-11", 4500), v(3, "2025-12", 5000), v(3, "2026-03", 6000)]
    # 5. New account with 12 months.
    rows += [v(5, m, 100 + i) for i, m in enumerate(months("2025-01", 12))]
    # 6. A 48-month account.
    rows += [v(6, m, i) for i, m in enumerate(months("2022-01", 48))]
    # 8. Three versions of one key; 12:00 wins. Plus tie-breakers on equal base_ts.
    for hour, bal in ((10, 1), (12, 3), (11, 2)):
        rows.append(v(8, "2026-01", bal, ts=dt.datetime(2026, 1, 15, hour)))
    rows += [v(81, "2026-01", 1, insert_ts=dt.datetime(2026, 1, 1)),
             v(81, "2026-01", 2, insert_ts=dt.datetime(2026, 1, 2)),
             v(81, "2026-01", 3, insert_ts=None)]
    # 9. Deletes: 2026-01 deleted between two active months; a delete of the latest month; a delete alone.
    later = T0 + dt.timedelta(days=30)
    rows += [v(9, "2025-12", 12), v(9, "2026-01", 1), v(9, "2026-02", 2),
             v(9, "2026-01", 1, ts=later, soft_del_cd="1")]
    rows += [v(91, "2025-12", 12), v(91, "2026-01", 1), v(91, "2026-01", 1, ts=later, soft_del_cd="4")]
    rows += [v(92, "2025-12", 12), v(92, "2026-03", 3, soft_del_cd="1")]
    # Sentinels, '999', payment rating codes, dates before year 1000.
    rows += [v(20, "2026-01", -2147483647, acct_credit_ext_am=-1, acct_type_dtl_cd="",
               days_past_due_ct_4in=-5, asset_class_cd_4in="03", acct_open_dt=dt.date(1, 1, 1)),
             v(20, "2026-02", -214748364, acct_type_dtl_cd=None, days_past_due_ct_4in=95),
             v(20, "2026-03", -21474836, days_past_due_ct_4in=200, asset_class_cd_4in=None)]
    # Bad rows (quarantined, not in the tables).
    rows += [v(30, "2026-13", 1), v(30, "26-01", 1), v(30, "", 1), v(None, "2026-01", 1),  # type: ignore[arg-type]
             {**v(30, "2026-01", 1), "base_ts": None}]
    return rows


@pytest.fixture(scope="module")
def built(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> tuple[PipelineConfig, RunResult, Any]:
    cfg = new_config()
    versions = _scenarios()
    load_source(spark, cfg, versions)
    result = run(spark, cfg, RunOptions(mode="initial"))
    return cfg, result, versions


@pytest.fixture(scope="module")
def tables(spark: SparkSession, built: tuple[PipelineConfig, RunResult, Any]) -> Any:
    return read_tables(spark, built[0])


def test_initial_equals_oracle_on_every_column(spark: SparkSession, built: Any) -> None:
    cfg, _, versions = built
    assert_matches_oracle(spark, cfg, versions)


def test_new_account_gets_one_row_and_a_grid(tables: Any) -> None:
    summary, latest = tables
    row = summary[(9999, "2026-01")]
    assert row["balance_am_history"] == [50000] + [None] * (H - 1)
    assert row["payment_history_grid"] == "0" + "?" * (H - 1)
    assert latest[9999]["rpt_as_of_mo"] == "2026-01"


def test_forward_gap_leaves_nulls(tables: Any) -> None:
    summary, _ = tables
    assert summary[(3, "2026-03")]["balance_am_history"][:5] == [6000, None, None, 5000, 4500]


def test_twelve_months_in_one_batch(tables: Any) -> None:
    summary, _ = tables
    assert summary[(5, "2025-12")]["balance_am_history"][:12] == list(range(111, 99, -1))


def test_48_month_account_drops_the_oldest_year(tables: Any) -> None:
    summary, _ = tables
    hist = summary[(6, "2025-12")]["balance_am_history"]
    assert hist[35] == 12  # 2023-01 is the 13th month (value 12)
    assert len(hist) == H


def test_newest_version_wins_and_tie_breakers_order(tables: Any) -> None:
    summary, _ = tables
    assert summary[(8, "2026-01")]["balance_am"] == 3
    assert summary[(81, "2026-01")]["balance_am"] == 2  # NULL insert_ts ranks below every value


def test_deletes_make_tombstones_and_move_latest(tables: Any) -> None:
    summary, latest = tables
    tomb = summary[(9, "2026-01")]
    assert tomb["soft_del_cd"] == "1" and tomb["balance_am"] == 1
    assert tomb["balance_am_history"][:2] == [None, 12]
    assert summary[(9, "2026-02")]["balance_am_history"][:3] == [2, None, 12]
    assert latest[91]["rpt_as_of_mo"] == "2025-12"
    assert (92, "2026-03") not in summary and latest[92]["rpt_as_of_mo"] == "2025-12"


def test_sentinels_codes_and_old_dates(tables: Any) -> None:
    summary, _ = tables
    jan, feb, mar = (summary[(20, m)] for m in ("2026-01", "2026-02", "2026-03"))
    assert jan["balance_am"] is None and jan["credit_limit_am"] is None
    assert jan["acct_type_dtl_cd"] == "999" and feb["acct_type_dtl_cd"] == "999"
    assert jan["open_dt"] is None
    assert (jan["payment_rating_cd"], feb["payment_rating_cd"], mar["payment_rating_cd"]) == ("D", "3", "6")
    assert mar["payment_history_grid"].startswith("63D")


def test_bad_rows_are_counted_not_written(built: Any, tables: Any) -> None:
    _, result, _ = built
    summary, _ = tables
    assert result.rejected_total == 5
    assert not [k for k in summary if k[0] == 30 or k[0] is None]


def test_counts(built: Any) -> None:
    result = built[1]
    assert result.status == "succeeded"
    assert result.duplicates_dropped == 2 + 2 + 1 + 1
    assert result.soft_deletes_applied == 2 and result.soft_deletes_ignored == 1


@pytest.mark.slow
def test_initial_refuses_non_empty_tables_then_replaces(spark: SparkSession, built: Any,
                                                        make_config: Callable[..., PipelineConfig]) -> None:
    cfg, _, versions = built
    with pytest.raises(TablesNotEmptyError, match="--replace") as err:
        run(spark, cfg, RunOptions(mode="initial"))
    assert err.value.exit_code == 2
    ranged = run(spark, cfg, RunOptions(mode="initial", replace=True, start_month="2026-01", end_month="2026-01"))
    summary, _ = read_tables(spark, cfg)
    assert {k[1] for k in summary} == {"2026-01"}
    assert ranged.status == "succeeded"
    in_range = [v for v in versions if v["rpt_as_of_mo"] == "2026-01"]
    assert_matches_oracle(spark, cfg, in_range)
