"""Catching up after missed days (issue 19): several days of batches applied by one incremental run leave the
tables exactly as one incremental run per day does, and both equal the oracle."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pyspark.sql import SparkSession

from factories import assert_matches_oracle, load_source, new_config, read_tables, version
from summary_pipeline.result import RunOptions
from summary_pipeline.runner import read_watermark, run

pytestmark = [pytest.mark.spark, pytest.mark.slow]

T0 = dt.datetime(2026, 1, 5, 6)
INCREMENTAL = RunOptions(mode="incremental")


def _initial() -> list[dict[str, Any]]:
    months = ("2025-07", "2025-08", "2025-09", "2025-10", "2025-11", "2025-12")
    return [version(a, m, 100 * a + i, ts=T0) for a in range(1, 7) for i, m in enumerate(months)]


def _deleted(account: int, month: str, ts: dt.datetime) -> dict[str, Any]:
    return version(account, month, 0, ts=ts, soft_del_cd="1")


def _day(d: int) -> list[dict[str, Any]]:
    """Day ``d``'s batch, each day at later times than the day before: new months, corrections of older months
    (some of them months an earlier day delivered), brand-new accounts and a soft delete."""
    at = T0 + dt.timedelta(days=d)
    morning, noon = at + dt.timedelta(hours=2), at + dt.timedelta(hours=6)
    if d == 1:
        return [*(version(a, "2026-01", 1000 + a, ts=morning) for a in (1, 2, 3, 4)),
                version(1, "2025-10", 7, ts=morning),  # a correction
                *(version(101, m, 50, ts=morning) for m in ("2025-11", "2025-12", "2026-01")),  # new, three months
                _deleted(2, "2025-09", morning)]
    if d == 2:
        return [*(version(a, "2026-02", 2000 + a, ts=morning) for a in (1, 3, 4)),  # account 2 skips a month
                *(version(5, m, 500, ts=morning) for m in ("2026-01", "2026-02")),  # two forward months, one batch
                version(3, "2026-01", 31, ts=morning), version(3, "2026-01", 32, ts=noon),  # the later one wins
                version(102, "2026-02", 60, ts=morning),
                _deleted(101, "2025-11", noon)]  # a month of an account new yesterday
    if d == 3:
        return [*(version(a, "2026-03", 3000 + a, ts=morning) for a in (1, 2, 3, 5)),
                version(2, "2026-02", 2002, ts=morning),  # the month it skipped, now late
                version(101, "2025-12", 51, ts=noon),
                version(103, "2025-06", 70, ts=morning), version(103, "2026-03", 71, ts=morning),
                _deleted(4, "2026-02", noon)]  # account 4's latest month: its latest row moves back
    return [version(1, "2026-03", 3101, ts=morning),  # yesterday's month corrected
            version(2, "2025-09", 209, ts=morning),  # the month deleted on day 1, active again
            version(5, "2025-08", 8, ts=noon),  # far back: every later row of the window changes
            version(104, "2026-04", 80, ts=morning), version(6, "2026-04", 4006, ts=noon),
            _deleted(3, "2024-01", noon)]  # a month it never had: changes nothing


def test_one_run_after_missed_days_equals_one_run_per_day(spark: SparkSession) -> None:
    daily = new_config(history_length=6)
    caught_up = daily.model_copy(update={"destination_table": daily.destination_table + "_caught_up",
                                         "latest_history_table": daily.latest_history_table + "_caught_up"})
    versions = _initial()
    load_source(spark, daily, versions)  # one source table: both configs read the same rows
    run(spark, daily, RunOptions(mode="initial"))
    run(spark, caught_up, RunOptions(mode="initial"))

    days = [_day(d) for d in (1, 2, 3, 4)]
    for batch in days:
        load_source(spark, daily, batch)
        versions += batch
        assert run(spark, daily, INCREMENTAL).source_rows == len(batch)
    once = run(spark, caught_up, INCREMENTAL)
    assert once.source_rows == sum(len(batch) for batch in days)

    assert read_tables(spark, caught_up) == read_tables(spark, daily)  # every column, internal ones too
    assert read_watermark(spark, caught_up) == read_watermark(spark, daily) == max(r["base_ts"] for r in versions)
    assert_matches_oracle(spark, daily, versions)
    assert_matches_oracle(spark, caught_up, versions)
