"""validate (SPEC 10): passes on tables the pipeline built; each check catches the corruption it is for."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from factories import T0, config_file, load_source, new_config, version
from summary_pipeline.config import PipelineConfig
from summary_pipeline.ops.validate import CHECKS, Validation, validate
from summary_pipeline.result import RunOptions
from summary_pipeline.runner import run
from summary_pipeline.store.snapshots import state

pytestmark = pytest.mark.spark

LATER = T0 + dt.timedelta(hours=1)


@pytest.fixture(scope="module")
def built(spark: SparkSession) -> PipelineConfig:
    """Three accounts: six straight months; a gap; a latest month turned into a tombstone."""
    cfg = new_config()
    rows = [version(1, f"2025-0{m}", 100 * m) for m in range(1, 7)]
    rows += [version(2, "2025-03", 5), version(2, "2025-05", 7, ts=LATER)]
    rows += [version(3, "2025-04", 1), version(3, "2025-05", 2), version(3, "2025-05", 3, ts=LATER, soft_del_cd="1")]
    load_source(spark, cfg, rows)
    run(spark, cfg, RunOptions(mode="initial"))
    return cfg


@pytest.fixture
def tables(spark: SparkSession, built: PipelineConfig) -> Iterator[tuple[PipelineConfig, str, str]]:
    """The built tables, put back to their clean snapshots after the test corrupts them."""
    names = (built.destination_table, built.latest_history_table)
    before = {name: state(spark, name) for name in names}
    yield built, *names
    for name, snapshot in before.items():
        if state(spark, name) != snapshot:
            spark.sql(f"CALL {built.catalog_name}.system.set_current_snapshot('{name}', {snapshot})")


def failed(report: Validation) -> dict[str, list[dict[str, Any]]]:
    return {c.name: c.examples for c in report.checks if not c.ok}


def test_the_tables_the_pipeline_builds_pass_every_check(spark: SparkSession, built: PipelineConfig) -> None:
    report = validate(spark, built)
    assert report.ok and failed(report) == {}
    assert [c.name for c in report.checks] == [name for name, _, _ in CHECKS]
    assert report.summary_rows == 6 + 2 + 2 and report.latest_rows == 3
    assert report.latest_month == "2025-06" and report.latest_base_ts == LATER


#: A corruption: the SQL that makes it, and per check that must catch it, its first offending (key, month, problem).
CORRUPTIONS: dict[str, tuple[str, dict[str, tuple[int, str | None, str]]]] = {
    "a duplicate row": (
        "INSERT INTO {summary} SELECT * FROM {summary} WHERE cons_acct_key = 1 AND rpt_as_of_mo = '2025-03'",
        {"duplicate_rows": (1, "2025-03", "2 rows")}),
    "a short array": (
        "UPDATE {summary} SET balance_am_history = slice(balance_am_history, 1, 35) "
        "WHERE cons_acct_key = 1 AND rpt_as_of_mo = '2025-02'",
        {"array_length": (1, "2025-02", "summary.balance_am_history"),
         "shifted": (1, "2025-02", "balance_am_history")}),
    "a shifted array": (
        "UPDATE {summary} SET balance_am_history = concat(slice(balance_am_history, 1, 1), array(NULL), "
        "slice(balance_am_history, 2, 34)) WHERE cons_acct_key = 1 AND rpt_as_of_mo = '2025-04'",
        {"shifted": (1, "2025-04", "balance_am_history")}),
    "a row whose own value is not its index 0": (
        "UPDATE {summary} SET balance_am = 999 WHERE cons_acct_key = 1 AND rpt_as_of_mo = '2025-02'",
        {"index_zero": (1, "2025-02", "balance_am_history")}),
    "a stale latest row": (
        "UPDATE {latest} SET rpt_as_of_mo = '2025-05', balance_am = 500 WHERE cons_acct_key = 1",
        {"latest_row": (1, "2025-05", "rpt_as_of_mo, balance_am")}),
    "a missing latest row": (
        "DELETE FROM {latest} WHERE cons_acct_key = 2",
        {"latest_row": (2, "2025-05", "no latest row")}),
    "a duplicate latest row": (
        "INSERT INTO {latest} SELECT * FROM {latest} WHERE cons_acct_key = 2",
        {"duplicate_latest": (2, None, "2 latest rows")}),
    "a wrong grid": (
        "UPDATE {summary} SET payment_history_grid = concat('X', substring(payment_history_grid, 2)) "
        "WHERE cons_acct_key = 2 AND rpt_as_of_mo = '2025-03'",
        {"grids": (2, "2025-03", "payment_history_grid")}),
    "a base_ts that is not its window's greatest": (
        "UPDATE {summary} SET base_ts = base_ts - INTERVAL 1 DAY WHERE cons_acct_key = 1 AND rpt_as_of_mo = '2025-03'",
        {"base_ts": (1, "2025-03", "base_ts")}),
}


@pytest.mark.slow
@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_each_corruption_is_caught_by_its_check(spark: SparkSession, tables: Any, corruption: str) -> None:
    cfg, summary, latest = tables
    statement, expected = CORRUPTIONS[corruption]
    spark.sql(statement.format(summary=summary, latest=latest))
    report = validate(spark, cfg)
    found = failed(report)
    assert set(found) == set(expected), corruption
    for name, (key, month, problem) in expected.items():
        example = found[name][0]
        assert example["cons_acct_key"] == key and example["problem"] == problem
        if month is not None:
            assert example["rpt_as_of_mo"] == month


def test_a_sample_checks_whole_accounts(spark: SparkSession, built: PipelineConfig) -> None:
    report = validate(spark, built, sample=0.5)
    assert report.ok and report.sample == 0.5
    assert report.summary_rows < 10  # some accounts left out, and whole: no check sees half an account


@pytest.mark.slow
def test_the_command_exits_1_and_names_the_offending_keys(spark: SparkSession, tables: Any, tmp_path: Path,
                                                          cli_in_process: Callable[..., int],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    cfg, summary, _ = tables
    config = str(config_file(cfg, tmp_path))
    assert cli_in_process(["validate", "--config", config]) == 0
    out = capsys.readouterr().out
    assert "SUMMARY PIPELINE - VALIDATE" in out and "OK   index_zero" in out and "Validation passed" in out
    spark.sql(f"UPDATE {summary} SET balance_am = 999 WHERE cons_acct_key = 1 AND rpt_as_of_mo = '2025-02'")
    assert cli_in_process(["validate", "--config", config]) == 1
    out = capsys.readouterr().out
    assert "FAIL index_zero" in out and "cons_acct_key=1, rpt_as_of_mo=2025-02" in out
    assert "Validation failed: index_zero" in out
    assert cli_in_process(["validate", "--config", config, "--output", "json", "--sample", "1"]) == 1
    report = json.loads(capsys.readouterr().out)
    zero = next(c for c in report["checks"] if c["name"] == "index_zero")
    assert report["ok"] is False and zero["violations"] == 1 and zero["examples"][0]["cons_acct_key"] == "1"
