"""inspect: one account, month by month, from the tables."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from factories import T0, config_file, load_source, new_config, version
from summary_pipeline.config import PipelineConfig
from summary_pipeline.errors import UnknownAccountError
from summary_pipeline.ops.inspect_account import inspect_account
from summary_pipeline.result import RunOptions
from summary_pipeline.runner import run

pytestmark = pytest.mark.spark

LATER = T0 + dt.timedelta(hours=1)


@pytest.fixture(scope="module")
def built(spark: SparkSession) -> PipelineConfig:
    """Account 7: 2025-01, 2025-02, (gap), 2025-04, and 2025-05 deleted after it arrived."""
    cfg = new_config()
    rows = [version(7, "2025-01", 10), version(7, "2025-02", 20), version(7, "2025-04", 40),
            version(7, "2025-05", 50), version(7, "2025-05", 50, ts=LATER, soft_del_cd="4"), version(8, "2025-01", 1)]
    load_source(spark, cfg, rows)
    run(spark, cfg, RunOptions(mode="initial"))
    return cfg


def test_months_newest_first_with_flags_values_and_the_latest_history(spark: SparkSession,
                                                                      built: PipelineConfig) -> None:
    view = inspect_account(spark, built, "7")
    assert [m["month"] for m in view.months] == ["2025-05", "2025-04", "2025-02", "2025-01"]
    assert [m["flags"] for m in view.months] == ["tombstone 4", "latest", "", ""]
    assert [m["balance_am"] for m in view.months] == [None, 40, 20, 10]  # a tombstone shows no value
    assert view.months[0]["fact_base_ts"] == LATER and view.months[1]["base_ts"] == T0
    assert view.latest_month == "2025-04"
    assert [(h["index"], h["month"], h["balance_am"]) for h in view.history] == [
        (0, "2025-04", 40), (2, "2025-02", 20), (3, "2025-01", 10)]  # 2025-03 has no value anywhere: left out
    assert "payment_history_grid" in view.months[0]


def test_an_unknown_account_or_a_key_of_the_wrong_type_is_one_clear_error(spark: SparkSession,
                                                                          built: PipelineConfig) -> None:
    with pytest.raises(UnknownAccountError, match="account 999 has no row in"):
        inspect_account(spark, built, "999")
    with pytest.raises(UnknownAccountError, match="'abc' is not a value of cons_acct_key"):
        inspect_account(spark, built, "abc")


def test_the_command_prints_both_views(built: PipelineConfig, tmp_path: Path, cli_in_process: Callable[..., int],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    config = str(config_file(built, tmp_path))
    assert cli_in_process(["inspect", "--config", config, "--account", "7"]) == 0
    out = capsys.readouterr().out
    assert f"Account 7: 4 month(s) in {built.destination_table} (2025-01 to 2025-05)" in out
    assert "2025-05  tombstone 4" in out and "History arrays of the" in out
    assert cli_in_process(["inspect", "--config", config, "--account", "999"]) == 1
    assert "account 999 has no row" in capsys.readouterr().err
    assert cli_in_process(["inspect", "--config", config, "--account", "8", "--output", "json"]) == 0
    view = json.loads(capsys.readouterr().out)
    assert view["latest_month"] == "2025-01" and view["months"][0]["balance_am"] == 1
