"""Monitoring figures (issue 6): per run, in the result, the ledger and a JSON file; JSON log lines on request."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from factories import config_file, load_source, new_config, version
from summary_pipeline import cli
from summary_pipeline.console import Console
from summary_pipeline.metrics import SPARK_FIGURES
from summary_pipeline.result import RunOptions
from summary_pipeline.runner import run
from summary_pipeline.store.ledger import COLUMNS, ensure_ledger, ledger_rows

pytestmark = pytest.mark.spark


@pytest.mark.slow
def test_a_run_records_data_quality_partitions_and_spark_figures(spark: SparkSession) -> None:
    cfg = new_config()
    rows = [version(1, "2025-01", 1, acct_open_dt=dt.date(999, 1, 1)), version(1, "2025-02", 2),
            version(2, "2025-02", 3, acct_open_dt=dt.date(202, 5, 1), last_pymt_dt=dt.date(201, 1, 1))]
    load_source(spark, cfg, rows)
    result = run(spark, cfg, RunOptions(mode="initial"))
    metrics = result.metrics
    assert metrics["invalid_dates"] == 3 and metrics["null_arrays"] == 0 and metrics["partitions_written"] == 2
    assert set(SPARK_FIGURES) <= set(metrics)
    assert metrics["spark_jobs"] > 0 and metrics["spark_stages"] > 0
    assert metrics["input_bytes"] > 0 and metrics["shuffle_write_bytes"] > 0
    (row,) = ledger_rows(spark, cfg.ledger_table)
    assert row["metrics"] == metrics
    assert json.loads(row["details"])["metrics"] == metrics


def test_an_older_ledger_gains_the_new_columns(spark: SparkSession) -> None:
    table = new_config().ledger_table
    old = ", ".join(f"{name} {kind}" for name, kind in COLUMNS if name != "metrics")
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {table.split('.')[0]}")
    spark.sql(f"CREATE TABLE {table} ({old}) USING iceberg")
    ensure_ledger(spark, table)
    assert spark.table(table).columns == [name for name, _ in COLUMNS if name != "metrics"] + ["metrics"]


def test_the_cli_writes_a_metrics_file_and_json_log_lines(spark: SparkSession, tmp_path: Path,
                                                          cli_in_process: Callable[..., int],
                                                          caplog: pytest.LogCaptureFixture) -> None:
    cfg = new_config()
    load_source(spark, cfg, [version(1, "2025-01", 1)])
    metrics_file = tmp_path / "out" / "run.json"
    with caplog.at_level(logging.INFO, logger="summary_pipeline.progress"):
        assert cli_in_process(["--config", str(config_file(cfg, tmp_path)), "--mode", "initial",
                               "--log-format", "json", "--metrics-file", str(metrics_file)]) == 0
    figures = json.loads(metrics_file.read_text())
    assert figures["status"] == "succeeded" and figures["metrics"]["partitions_written"] == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "summary_pipeline.progress"]
    assert "New records to process: 1" in lines and not any(set(line) == {"="} for line in lines)


def test_the_json_log_format_is_one_object_per_line() -> None:
    record = logging.LogRecord("summary_pipeline.progress", logging.INFO, __file__, 1, "Case I: %d", (3,), None)
    data = json.loads(cli.JsonLogFormatter().format(record))
    assert data["message"] == "Case I: 3" and data["level"] == "INFO" and data["time"].endswith("Z")
    assert Console(json_logs=True).json_logs
