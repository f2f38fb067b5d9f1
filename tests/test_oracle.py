"""Pin the pure-Python oracle on the SPEC 7 worked examples, so Spark tests compare against a trusted model.

The oracle only sees a full history (R = the given versions), so the incremental examples appear here as the
final state they must reach. No Spark: these run in well under a second.
"""

from __future__ import annotations

import copy
import json
import os
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from oracle import OracleError, add_months, expected_tables

H = 36
ACCOUNT = 1


def _shared_dir() -> Path:
    """`shared/` sits beside the repository; SUMMARY_SHARED_DIR overrides that for other CI layouts."""
    override = os.environ.get("SUMMARY_SHARED_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    """The reference config, parsed; tests copy it before changing anything."""
    path = _shared_dir() / "reference" / "summary_config.json"
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def ts(day: int, hour: int = 10, month: int = 1, year: int = 2026) -> datetime:
    """A base_ts literal; most examples only vary the day and the hour."""
    return datetime(year, month, day, hour)


def v(
    month: str | None, base_ts: datetime | None, account: int | None = ACCOUNT, **source: Any
) -> dict[str, Any]:
    """One source version keyed by SOURCE column names; unspecified columns are NULL."""
    return {"cons_acct_key": account, "rpt_as_of_mo": month, "base_ts": base_ts, **source}


def arr(*values: Any, length: int = H) -> list[Any]:
    """`[a, b]` in SPEC 7 notation: the given leading positions, NULL for the rest."""
    return [*values, *([None] * (length - len(values)))]


def months(first: str, count: int) -> list[str]:
    """`count` consecutive months from `first`, so long histories need no literal lists."""
    return [add_months(first, i) for i in range(count)]


# ----------------------------------------------------------------------------------------------------------
# The oracle itself
# ----------------------------------------------------------------------------------------------------------


def test_every_reference_expression_is_modelled(config: dict[str, Any]) -> None:
    assert expected_tables([], config) == ({}, {})


def test_unknown_expression_is_rejected(config: dict[str, Any]) -> None:
    changed = copy.deepcopy(config)
    changed["inferred_columns"].append({"name": "x", "mapper_expr": "balance_am + 1"})
    with pytest.raises(OracleError, match=r"balance_am \+ 1"):
        expected_tables([], changed)


def test_add_months() -> None:
    assert add_months("2026-01", -1) == "2025-12"
    assert add_months("2025-12", 1) == "2026-01"
    assert add_months("2026-03", -36) == "2023-03"


# ----------------------------------------------------------------------------------------------------------
# SPEC 7 worked examples
# ----------------------------------------------------------------------------------------------------------


def test_example_1_new_account(config: dict[str, Any]) -> None:
    summary, latest = expected_tables(
        [v("2026-01", ts(15), account=9999, acct_bal_am=50000, days_past_due_ct_4in=0)], config
    )
    assert list(summary) == [(9999, "2026-01")]
    row = summary[(9999, "2026-01")]
    assert row["balance_am"] == 50000
    assert row["balance_am_history"] == arr(50000)
    assert row["payment_history_grid"] == "0" + "?" * 35
    assert row["fact_base_ts"] == row["base_ts"] == ts(15)
    assert row["cons_acct_key"] == 9999
    assert row["rpt_as_of_mo"] == "2026-01"
    assert latest == {9999: row}


def test_example_2_backfill_as_full_history(config: dict[str, Any]) -> None:
    versions = [
        v("2025-10", ts(15, month=10, year=2025), acct_bal_am=9000),
        v("2025-11", ts(15, month=11, year=2025), acct_bal_am=9500),
        v("2025-12", ts(15, month=12, year=2025), acct_bal_am=10000),
        v("2026-01", ts(15), acct_bal_am=11000),
        v("2025-11", ts(15), acct_bal_am=10700),  # the late correction outranks the 9500 version
    ]
    summary, latest = expected_tables(versions, config)
    assert summary[(ACCOUNT, "2025-11")]["balance_am_history"] == arr(10700, 9000)
    assert summary[(ACCOUNT, "2025-12")]["balance_am_history"] == arr(10000, 10700, 9000)
    assert summary[(ACCOUNT, "2026-01")]["balance_am_history"] == arr(11000, 10000, 10700, 9000)
    # The correction's base_ts reaches every row whose window holds 2025-11.
    assert summary[(ACCOUNT, "2025-12")]["base_ts"] == ts(15)
    assert summary[(ACCOUNT, "2025-12")]["fact_base_ts"] == ts(15, month=12, year=2025)
    assert summary[(ACCOUNT, "2025-10")]["base_ts"] == ts(15, month=10, year=2025)
    assert latest[ACCOUNT]["rpt_as_of_mo"] == "2026-01"


def test_example_3_forward_gap(config: dict[str, Any]) -> None:
    versions = [
        v("2025-11", ts(15, month=11, year=2025), acct_bal_am=4500),
        v("2025-12", ts(15, month=12, year=2025), acct_bal_am=5000),
        v("2026-03", ts(15, month=3), acct_bal_am=6000),
    ]
    summary, latest = expected_tables(versions, config)
    assert sorted(summary) == [(ACCOUNT, "2025-11"), (ACCOUNT, "2025-12"), (ACCOUNT, "2026-03")]
    assert summary[(ACCOUNT, "2026-03")]["balance_am_history"] == arr(6000, None, None, 5000, 4500)
    assert latest[ACCOUNT] == summary[(ACCOUNT, "2026-03")]


def test_example_4_several_forward_months(config: dict[str, Any]) -> None:
    versions = [
        v("2025-12", ts(1), acct_bal_am=100),
        v("2026-01", ts(2), acct_bal_am=1),
        v("2026-02", ts(2), acct_bal_am=2),
        v("2026-03", ts(2), acct_bal_am=3),
    ]
    summary, _ = expected_tables(versions, config)
    assert summary[(ACCOUNT, "2026-03")]["balance_am_history"] == arr(3, 2, 1, 100)


def test_example_5_new_account_with_twelve_months(config: dict[str, Any]) -> None:
    year = months("2025-01", 12)
    versions = [v(m, ts(15), acct_bal_am=i + 1) for i, m in enumerate(year)]
    summary, latest = expected_tables(versions, config)
    assert len(summary) == 12
    for i, m in enumerate(year):
        assert summary[(ACCOUNT, m)]["balance_am_history"] == arr(*range(i + 1, 0, -1))
    assert summary[(ACCOUNT, "2025-12")]["balance_am_history"] == arr(12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1)
    assert latest[ACCOUNT]["rpt_as_of_mo"] == "2025-12"


def test_example_6_forty_eight_months(config: dict[str, Any]) -> None:
    all_months = months("2022-01", 48)
    stamps = {m: datetime(2026, 1, 1) + timedelta(days=i) for i, m in enumerate(all_months)}
    stamps.update({m: datetime(2030, 1, 1) for m in all_months if m.startswith("2022")})
    # Values are yyyymm so each position says which month it came from; 2022 also has the newest base_ts.
    versions = [v(m, stamps[m], acct_bal_am=int(m.replace("-", ""))) for m in all_months]
    summary, _ = expected_tables(versions, config)
    dec = summary[(ACCOUNT, "2025-12")]["balance_am_history"]
    assert len(dec) == H
    assert dec[0] == 202512
    assert dec[35] == 202301
    assert not any(str(x).startswith("2022") for x in dec)
    # base_ts is the window maximum: 2022 is outside 2025-12's window but inside 2023-12's.
    assert summary[(ACCOUNT, "2025-12")]["base_ts"] == stamps["2025-12"]
    assert summary[(ACCOUNT, "2023-12")]["base_ts"] == datetime(2030, 1, 1)


def test_example_8_newest_of_three_versions_wins(config: dict[str, Any]) -> None:
    versions = [
        v("2026-01", ts(15, 11), acct_bal_am=11),
        v("2026-01", ts(15, 12), acct_bal_am=12),
        v("2026-01", ts(15, 10), acct_bal_am=10),
    ]
    summary, _ = expected_tables(versions, config)
    row = summary[(ACCOUNT, "2026-01")]
    assert row["balance_am"] == 12
    assert row["balance_am_history"] == arr(12)
    assert row["fact_base_ts"] == ts(15, 12)


def test_tie_breakers_in_order_with_null_lowest(config: dict[str, Any]) -> None:
    same = ts(15)
    versions = [
        v("2026-01", same, insert_ts=ts(1), update_ts=ts(9), acct_bal_am=1),
        v("2026-01", same, insert_ts=ts(2), update_ts=None, acct_bal_am=2),
        v("2026-01", same, insert_ts=ts(2), update_ts=ts(3), acct_bal_am=3),
        v("2026-01", same, insert_ts=None, update_ts=ts(20), acct_bal_am=4),
    ]
    summary, _ = expected_tables(versions, config)
    assert summary[(ACCOUNT, "2026-01")]["balance_am"] == 3


def test_full_ties_break_on_prepared_values_regardless_of_order(config: dict[str, Any]) -> None:
    versions = [
        v("2026-01", ts(15), acct_bal_am=5),
        v("2026-01", ts(15), acct_bal_am=7),
        v("2026-01", ts(15), acct_bal_am=None),
    ]
    for ordering in (versions, versions[::-1], versions[1:] + versions[:1]):
        summary, _ = expected_tables(ordering, config)
        assert summary[(ACCOUNT, "2026-01")]["balance_am"] == 7


def _example_9_versions() -> list[dict[str, Any]]:
    return [
        v("2025-12", ts(1), acct_bal_am=100),
        v("2026-01", ts(1), acct_bal_am=200, bureau_mbr_id="M1"),
        v("2026-02", ts(1), acct_bal_am=300),
    ]


def test_example_9_delete_makes_a_tombstone(config: dict[str, Any]) -> None:
    versions = [*_example_9_versions(), v("2026-01", ts(20), soft_del_cd="1")]
    summary, latest = expected_tables(versions, config)
    tomb = summary[(ACCOUNT, "2026-01")]
    assert tomb["soft_del_cd"] == "1"
    assert tomb["balance_am"] == 200  # the active version's values, not the delete's NULLs
    assert tomb["bureau_member_id"] == "M1"
    assert tomb["balance_am_history"] == arr(None, 100)
    assert tomb["payment_history_grid"] == "?" * 36
    assert tomb["fact_base_ts"] == ts(20)
    feb = summary[(ACCOUNT, "2026-02")]
    assert feb["balance_am_history"] == arr(300, None, 100)
    assert feb["base_ts"] == ts(20)  # the tombstone's fact_base_ts is in February's window
    assert feb["fact_base_ts"] == ts(1)
    assert latest[ACCOUNT] == feb


def test_example_9_delete_of_latest_month_moves_latest_back(config: dict[str, Any]) -> None:
    versions = [*_example_9_versions(), v("2026-02", ts(20), soft_del_cd="4")]
    summary, latest = expected_tables(versions, config)
    assert summary[(ACCOUNT, "2026-02")]["soft_del_cd"] == "4"
    assert latest[ACCOUNT] == summary[(ACCOUNT, "2026-01")]


def test_example_9_delete_without_a_row_changes_nothing(config: dict[str, Any]) -> None:
    before = expected_tables(_example_9_versions(), config)
    after = expected_tables([*_example_9_versions(), v("2026-03", ts(20), soft_del_cd="1")], config)
    assert after == before
    only_deletes = expected_tables([v("2026-01", ts(1), account=7, soft_del_cd="1")], config)
    assert only_deletes == ({}, {})


def test_active_version_above_a_delete_is_an_ordinary_row(config: dict[str, Any]) -> None:
    versions = [
        v("2026-01", ts(1), acct_bal_am=1),
        v("2026-01", ts(2), soft_del_cd="1"),
        v("2026-01", ts(3), acct_bal_am=3, soft_del_cd="2"),
    ]
    summary, _ = expected_tables(versions, config)
    row = summary[(ACCOUNT, "2026-01")]
    assert (row["balance_am"], row["soft_del_cd"], row["balance_am_history"]) == (3, "2", arr(3))


def test_tombstone_shows_highest_active_version_below_delete(config: dict[str, Any]) -> None:
    versions = [
        v("2026-01", ts(1), acct_bal_am=1),
        v("2026-01", ts(2), acct_bal_am=2),
        v("2026-01", ts(3), soft_del_cd="4"),
        v("2026-01", ts(4), soft_del_cd="1"),
    ]
    summary, _ = expected_tables(versions, config)
    row = summary[(ACCOUNT, "2026-01")]
    assert (row["balance_am"], row["soft_del_cd"], row["fact_base_ts"]) == (2, "1", ts(4))


def test_account_with_only_tombstones_has_its_greatest_tombstone_as_latest(config: dict[str, Any]) -> None:
    versions = [
        v("2025-12", ts(1), acct_bal_am=1),
        v("2025-12", ts(2), soft_del_cd="1"),
        v("2026-01", ts(1), acct_bal_am=2),
        v("2026-01", ts(2), soft_del_cd="1"),
    ]
    summary, latest = expected_tables(versions, config)
    assert latest[ACCOUNT] == summary[(ACCOUNT, "2026-01")]
    assert latest[ACCOUNT]["balance_am_history"] == arr()


def test_latest_is_a_copy(config: dict[str, Any]) -> None:
    summary, latest = expected_tables([v("2026-01", ts(1), acct_bal_am=1)], config)
    latest[ACCOUNT]["balance_am_history"][0] = 99
    assert summary[(ACCOUNT, "2026-01")]["balance_am_history"][0] == 1


# ----------------------------------------------------------------------------------------------------------
# Preparation (SPEC 4)
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sentinel", [-2147483647, -214748364, -21474836, -1])
def test_sentinel_amounts_become_null(config: dict[str, Any], sentinel: int) -> None:
    amounts = [
        "total_write_off_am_4in",
        "acct_credit_ext_am",
        "next_schd_pymt_am",
        "acct_bal_am",
        "actual_pymt_am",
        "past_due_am",
    ]
    summary, _ = expected_tables([v("2026-01", ts(1), **dict.fromkeys(amounts, sentinel))], config)
    row = summary[(ACCOUNT, "2026-01")]
    for name in [
        "charge_off_am",
        "credit_limit_am",
        "emi_amt",
        "balance_am",
        "actual_payment_am",
        "past_due_am",
    ]:
        assert row[name] is None, name
    assert row["balance_am_history"] == arr()


@pytest.mark.parametrize("amount", [-2, 0, 1, None])
def test_other_amounts_are_kept(config: dict[str, Any], amount: int | None) -> None:
    summary, _ = expected_tables([v("2026-01", ts(1), acct_bal_am=amount, past_due_am=amount)], config)
    row = summary[(ACCOUNT, "2026-01")]
    assert (row["balance_am"], row["past_due_am"], row["balance_am_history"][0]) == (amount, amount, amount)


@pytest.mark.parametrize(("raw", "prepared"), [("", "999"), (None, "999"), ("5", "5"), (" ", " ")])
def test_acct_type_dtl_cd_defaults_to_999(config: dict[str, Any], raw: str | None, prepared: str) -> None:
    summary, _ = expected_tables([v("2026-01", ts(1), acct_type_dtl_cd=raw)], config)
    assert summary[(ACCOUNT, "2026-01")]["acct_type_dtl_cd"] == prepared


@pytest.mark.parametrize(
    ("acct_type", "credit_limit", "expected"),
    [("5", 100, 900), ("224", 100, 900), ("10", 100, 100), (None, 100, 100), ("10", -1, None)],
)
def test_orig_loan_am(
    config: dict[str, Any], acct_type: str | None, credit_limit: int, expected: int | None
) -> None:
    version = v(
        "2026-01", ts(1), acct_type_dtl_cd=acct_type, acct_credit_ext_am=credit_limit, high_credit_am_4in=900
    )
    summary, _ = expected_tables([version], config)
    assert summary[(ACCOUNT, "2026-01")]["orig_loan_am"] == expected


@pytest.mark.parametrize(
    ("days", "asset", "rating"),
    [
        (None, "S", None),
        (None, None, None),
        (0, None, "0"),
        (29, "S", "0"),
        (30, None, "1"),
        (59, None, "1"),
        (60, None, "2"),
        (89, None, "2"),
        (90, None, "3"),
        (119, None, "3"),
        (120, None, "4"),
        (149, None, "4"),
        (150, None, "5"),
        (179, None, "5"),
        (180, None, "6"),
        (999, None, "6"),
        (-1, "1", "S"),
        (-1, "01", "S"),
        (-1, "S", "S"),
        (-1, "02", "B"),
        (-1, "3", "D"),
        (-1, "04", "L"),
        (-5, "M", "M"),
        (-1, "0", "0"),
        (-1, "6", "6"),
        (-1, "G", "G"),
        (-1, "L", "L"),
        (-1, "C", "C"),
        (-1, "X", None),
        (-1, None, None),
        (-1, "", None),
    ],
)
def test_payment_rating_cd(
    config: dict[str, Any], days: int | None, asset: str | None, rating: str | None
) -> None:
    version = v("2026-01", ts(1), days_past_due_ct_4in=days, asset_class_cd_4in=asset)
    summary, _ = expected_tables([version], config)
    row = summary[(ACCOUNT, "2026-01")]
    assert row["payment_rating_cd"] == rating
    assert row["payment_rating_cd_history"] == arr(rating)
    assert row["payment_history_grid"] == (rating or "?") + "?" * 35


def test_grid_over_several_months(config: dict[str, Any]) -> None:
    versions = [
        v("2025-11", ts(1), days_past_due_ct_4in=45),
        v("2025-12", ts(1), days_past_due_ct_4in=None),
        v("2026-01", ts(1), days_past_due_ct_4in=-1, asset_class_cd_4in="04"),
    ]
    summary, _ = expected_tables(versions, config)
    assert summary[(ACCOUNT, "2026-01")]["payment_history_grid"] == "L?1" + "?" * 33


@pytest.mark.parametrize(
    ("raw", "prepared"),
    [
        (date(999, 12, 31), None),
        (date(1000, 1, 1), date(1000, 1, 1)),
        (date(2020, 5, 1), date(2020, 5, 1)),
        (None, None),
    ],
)
def test_ancient_dates_become_null(config: dict[str, Any], raw: date | None, prepared: date | None) -> None:
    summary, _ = expected_tables([v("2026-01", ts(1), acct_open_dt=raw, write_off_dt=raw)], config)
    row = summary[(ACCOUNT, "2026-01")]
    assert (row["open_dt"], row["dflt_status_dt"]) == (prepared, prepared)


# ----------------------------------------------------------------------------------------------------------
# Bad input (SPEC 9) and config variations
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        v("2026-01", ts(5), account=None),
        v(None, ts(5)),
        v("2026-13", ts(5)),
        v("2026-00", ts(5)),
        v("2026-1", ts(5)),
        v("202601", ts(5)),
        v("2026-01-01", ts(5)),
        v("2026-01", None),
    ],
)
def test_invalid_rows_are_ignored(config: dict[str, Any], bad: dict[str, Any]) -> None:
    good = [v("2026-01", ts(1), acct_bal_am=1)]
    assert expected_tables([*good, {**bad, "acct_bal_am": 2}], config) == expected_tables(good, config)


def test_short_history_and_other_separator(config: dict[str, Any]) -> None:
    changed = copy.deepcopy(config)
    changed["history_length"] = 3
    for rolling in changed["rolling_columns"]:
        rolling["num_cols"] = 3
    grid = changed["grid_columns"][0]
    del grid["separator"]
    grid["seperator"] = "|"
    grid["placeholder"] = "-"
    versions = [
        v("2025-10", ts(9), acct_bal_am=10, days_past_due_ct_4in=0),
        v("2025-11", ts(1), acct_bal_am=11, days_past_due_ct_4in=35),
        v("2026-01", ts(2), acct_bal_am=1, days_past_due_ct_4in=95),
    ]
    summary, _ = expected_tables(versions, changed)
    assert summary[(ACCOUNT, "2025-11")]["balance_am_history"] == [11, 10, None]
    jan = summary[(ACCOUNT, "2026-01")]
    assert jan["balance_am_history"] == [1, None, 11]
    assert jan["payment_history_grid"] == "3|-|1"
    assert jan["base_ts"] == ts(2)  # 2025-10 (ts 9) is outside the three-month window
    assert summary[(ACCOUNT, "2025-11")]["base_ts"] == ts(9)


def test_num_cols_must_match_history_length(config: dict[str, Any]) -> None:
    changed = copy.deepcopy(config)
    changed["history_length"] = 12
    with pytest.raises(OracleError, match="num_cols"):
        expected_tables([], changed)
