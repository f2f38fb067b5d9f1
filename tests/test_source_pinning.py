"""A run reads one snapshot of the source from start to end (issue 19): its owner may compact the table or
append to it while the run works, and the run neither sees the new rows nor fails; the next run reads them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from factories import SOURCE_COLUMNS, assert_matches_oracle, fault, load_source, new_config, version
from summary_pipeline.ops.maintain import procedure_target
from summary_pipeline.result import RunOptions
from summary_pipeline.runner import run
from summary_pipeline.store.ledger import ledger_rows
from summary_pipeline.store.snapshots import state
from summary_pipeline.tools.generate import SOURCE_SCHEMA

pytestmark = pytest.mark.spark

T0 = dt.datetime(2026, 3, 1, 8)
INCREMENTAL = RunOptions(mode="incremental")


def _ledger_row(spark: SparkSession, table: str, run_id: str) -> dict[str, Any]:
    return next(r for r in ledger_rows(spark, table) if r["run_id"] == run_id)


@pytest.mark.slow
def test_a_run_reads_the_snapshot_it_started_with_while_the_owner_compacts_and_appends(
        spark: SparkSession) -> None:
    cfg = new_config(history_length=6)
    months = ("2025-10", "2025-11", "2025-12")
    first = [version(a, m, a * 10, ts=T0) for a in (1, 2) for m in months]
    second = [version(3, m, 30, ts=T0) for m in months]
    load_source(spark, cfg, first)
    load_source(spark, cfg, second)  # two appends: every month's partition has two files to compact
    run(spark, cfg, RunOptions(mode="initial"))

    hour = dt.timedelta(hours=1)
    batch = [version(1, "2026-01", 11, ts=T0 + hour), version(2, "2025-11", 21, ts=T0 + hour),
             version(10, "2026-01", 100, ts=T0 + hour)]
    load_source(spark, cfg, batch)
    pinned = state(spark, cfg.source_table)
    late = [version(1, "2026-02", 12, ts=T0 + 2 * hour), version(2, "2025-11", 22, ts=T0 + 2 * hour),
            version(3, "2026-01", 31, ts=T0 + 2 * hour), version(11, "2026-02", 110, ts=T0 + 2 * hour)]

    def owner_rewrites_the_source() -> None:
        catalog, target = procedure_target(spark, cfg.source_table)
        done = spark.sql(f"CALL {catalog}.system.rewrite_data_files(table => '{target}', "
                         "options => map('min-input-files', '2'))").collect()
        assert done[0]["rewritten_data_files_count"] > 0
        load_source(spark, cfg, late)

    # "locked" comes after the run took the source and before it reads a row of it.
    result = run(spark, cfg, INCREMENTAL, on_step=fault("locked", owner_rewrites_the_source))
    operations = [r[0] for r in spark.sql(f"SELECT operation FROM {cfg.source_table}.snapshots "
                                          "ORDER BY committed_at").collect()]
    assert operations[-3:] == ["append", "replace", "append"]  # the batch, the compaction, the late versions
    assert result.status == "succeeded" and result.source_rows == len(batch)
    assert result.source_snapshot == pinned
    assert _ledger_row(spark, cfg.ledger_table, result.run_id)["source_snapshot"] == pinned
    assert result.watermark_committed == T0 + hour
    assert_matches_oracle(spark, cfg, first + second + batch)

    after = run(spark, cfg, INCREMENTAL)  # the appended versions are the next run's
    assert after.source_rows == len(late)
    assert after.source_snapshot == state(spark, cfg.source_table)
    assert _ledger_row(spark, cfg.ledger_table, after.run_id)["source_snapshot"] == after.source_snapshot
    assert_matches_oracle(spark, cfg, first + second + batch + late)


def test_a_source_that_is_not_an_iceberg_table_is_read_as_it_is(spark: SparkSession, tmp_path: Path) -> None:
    name = f"spark_catalog.default.{new_config().destination_table.split('.')[0]}_accounts_all"
    cfg = new_config(history_length=6, source_table=name)
    versions = [version(a, m, a, ts=T0) for a in (1, 2) for m in ("2025-11", "2025-12")]
    spark.createDataFrame([tuple(v.get(c) for c in SOURCE_COLUMNS) for v in versions],
                          SOURCE_SCHEMA).write.parquet(str(tmp_path / "source"))
    spark.sql(f"CREATE TABLE {name} ({SOURCE_SCHEMA}) USING parquet LOCATION '{tmp_path / 'source'}'")
    result = run(spark, cfg, RunOptions(mode="initial"))
    assert result.status == "succeeded" and result.source_snapshot is None
    assert _ledger_row(spark, cfg.ledger_table, result.run_id)["source_snapshot"] is None
    assert_matches_oracle(spark, cfg, versions)
