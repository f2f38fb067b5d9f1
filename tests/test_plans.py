"""What an incremental run reads: summary partitions within H-1 months of a correction, and nothing of summary
for a batch of forward months and new accounts. Checked on the physical plan of the read the runner makes."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from factories import load_source, new_config, version
from summary_pipeline.core.engine import month_name
from summary_pipeline.core.prepare import INVALID_DATES, RAW, REJECT, prepare
from summary_pipeline.plan import make_plan, summary_window
from summary_pipeline.preflight import read_source
from summary_pipeline.result import RunOptions
from summary_pipeline.runner import run
from summary_pipeline.spark import _prefer_hash_joins
from summary_pipeline.store.tables import snapshot_ids

pytestmark = pytest.mark.spark

LATER = dt.datetime(2026, 3, 1)


def _batch(spark: SparkSession, cfg, rows):  # type: ignore[no-untyped-def]
    load_source(spark, cfg, rows)
    source = read_source(spark, cfg).where(F.col("base_ts") >= F.lit(LATER))
    batch = prepare(source, cfg).where(F.col(REJECT).isNull()).drop(REJECT, RAW, INVALID_DATES)
    return batch, make_plan(spark, cfg, batch, full_rebuild=False)


def test_reads_only_the_correction_window_and_nothing_for_forward_months(spark: SparkSession) -> None:
    cfg = new_config(history_length=3)
    load_source(spark, cfg, [version(a, f"2025-{m:02d}", m) for a in (1, 2) for m in range(1, 13)])
    run(spark, cfg, RunOptions(mode="initial"))

    batch, plan = _batch(spark, cfg, [version(1, "2026-01", 1, ts=LATER), version(3, "2026-01", 1, ts=LATER)])
    assert plan.window_months == () and summary_window(spark, cfg, plan, batch) is None  # forward + new

    batch, plan = _batch(spark, cfg, [version(2, "2025-06", 66, ts=LATER)])
    assert plan.window_months == ("2025-04", "2025-05", "2025-06", "2025-07", "2025-08")  # H = 3
    window = summary_window(spark, cfg, plan, batch)
    assert window is not None
    plan = window._jdf.queryExecution().executedPlan().toString()
    scans = [line for line in plan.splitlines() if "BatchScan" in line and cfg.destination_table in line]
    assert len(scans) == 1
    months = sorted(set(re.findall(r"20\d\d-\d\d", scans[0])))
    assert months == [month_name(2025 * 12 + m) for m in range(3, 8)]  # 2025-04 .. 2025-08 (H = 3)
    assert {r["rpt_as_of_mo"] for r in window.collect()} == {"2025-04", "2025-05", "2025-06", "2025-07", "2025-08"}


@pytest.mark.slow
def test_dry_run_writes_nothing(spark: SparkSession) -> None:
    cfg = new_config(history_length=3)
    load_source(spark, cfg, [version(1, "2025-01", 1)])
    run(spark, cfg, RunOptions(mode="initial"))
    tables = (cfg.destination_table, cfg.latest_history_table, cfg.deletes_table)
    before = {t: snapshot_ids(spark, t) for t in tables}
    load_source(spark, cfg, [version(1, "2025-02", 2, ts=LATER), version(1, "2025-01", 0, ts=LATER, soft_del_cd="1")])
    result = run(spark, cfg, RunOptions(mode="incremental", dry_run=True))
    assert result.status == "planned" and result.case_ii == 1 and result.soft_deletes_applied == 1
    assert result.summary_rows_written == 2 and result.latest_rows_written == 1
    assert {t: snapshot_ids(spark, t) for t in tables} == before
    again = run(spark, cfg, RunOptions(mode="incremental"))  # the watermark did not move either
    assert again.case_ii == 1


def test_the_session_prefers_hash_joins_up_to_the_advisory_size_unless_told_otherwise(spark: SparkSession) -> None:
    threshold = "spark.sql.adaptive.maxShuffledHashJoinLocalMapThreshold"
    assert spark.conf.get(threshold) == spark.conf.get("spark.sql.adaptive.advisoryPartitionSizeInBytes")
    own = str(spark.conf.get(threshold))
    try:
        spark.conf.set(threshold, "1m")  # as a config's `spark` block or the cluster's defaults would
        _prefer_hash_joins(spark)
        assert spark.conf.get(threshold) == "1m"
    finally:
        spark.conf.set(threshold, own)
