"""Property tests over sequences of runs: after every run, the tables equal the oracle over R (the versions
the runs have read), and after a final full read they equal a full rebuild of the whole source.

Each example keeps 50 to 60 independent accounts in one table and runs several modes in a row, so one CI run
covers about a hundred account histories through several incremental runs each. CI runs two examples (about
130 s each; every CI run draws new ones); ``HYPOTHESIS_PROFILE=long`` runs 40.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyspark.sql import SparkSession

from factories import assert_matches_oracle, load_source, new_config, read_tables
from oracle import add_months
from strategies import BASE_MONTH, batch_steps
from summary_pipeline.result import RunOptions
from summary_pipeline.runner import run

pytestmark = [pytest.mark.spark, pytest.mark.slow]

SPARK_EXAMPLES = 40 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else 2


def _valid(row: dict[str, Any]) -> bool:
    return row["cons_acct_key"] is not None and row["base_ts"] is not None


@settings(max_examples=SPARK_EXAMPLES)
@given(data=st.data(), history_length=st.sampled_from([3, 6, 36]))
def test_runs_in_any_mix_of_modes_equal_the_oracle(spark: SparkSession, data: st.DataObject,
                                                   history_length: int) -> None:
    accounts = data.draw(st.integers(50, 60))
    steps = data.draw(batch_steps(accounts, 4))
    cfg = new_config(history_length=history_length)
    source: list[dict[str, Any]] = []
    read: list[dict[str, Any]] = []  # R: what the runs have read
    watermark: dt.datetime | None = None
    for mode, rows in steps:
        load_source(spark, cfg, rows)
        source += rows
        if mode == "initial":
            options = RunOptions(mode="initial")
            chosen = list(source)
        elif mode == "incremental":
            options = RunOptions(mode="incremental")
            chosen = [r for r in source if r["base_ts"] is not None and watermark is not None
                      and r["base_ts"] > watermark]
        elif mode == "forward":
            start = data.draw(st.integers(0, 30))
            end = start + data.draw(st.integers(0, 6))
            first, last = add_months(BASE_MONTH, start), add_months(BASE_MONTH, end)
            options = RunOptions(mode="forward", start_month=first, end_month=last)
            chosen = [r for r in source if r["rpt_as_of_mo"] and first <= r["rpt_as_of_mo"] <= last]
        else:
            account = data.draw(st.integers(1, accounts))
            options = RunOptions(mode="backfill", backfill_filter=f"cons_acct_key = {account}")
            chosen = [r for r in source if r["cons_acct_key"] == account]
        run(spark, cfg, options)
        read += chosen
        if mode in ("initial", "incremental"):
            stamps = [r["base_ts"] for r in chosen if r["base_ts"] is not None]
            if stamps:
                watermark = max([*stamps, *([watermark] if watermark else [])])
        assert_matches_oracle(spark, cfg, [r for r in read if _valid(r)])
    # Once every version is in R, the tables equal a full rebuild of the whole source.
    run(spark, cfg, RunOptions(mode="forward", start_month="2000-01", end_month="2099-12"))
    incremental = read_tables(spark, cfg)
    assert_matches_oracle(spark, cfg, source)
    rebuilt = cfg.model_copy(update={"destination_table": cfg.destination_table + "_full",
                                     "latest_history_table": cfg.latest_history_table + "_full"})
    run(spark, rebuilt, RunOptions(mode="initial"))
    full = read_tables(spark, rebuilt)
    assert incremental == full
