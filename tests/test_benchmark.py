"""The benchmark's workload has production's shape, and its report says which targets were met.

The benchmark itself is run by hand (``summary-pipeline benchmark``); tests never time anything.
"""

from __future__ import annotations

import datetime as dt
import io

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from summary_pipeline.benchmark import END_MONTH, NEXT_MONTH, Phase, Report, make_batch
from summary_pipeline.console import Console
from summary_pipeline.generate import generate_versions


@pytest.mark.spark
def test_the_batch_has_the_production_mix(spark: SparkSession) -> None:
    accounts, at = 4_000, dt.datetime(2026, 2, 15)
    source = generate_versions(spark, accounts=accounts, start_month="2022-01", end_month=END_MONTH, seed=3)
    batch = make_batch(spark, source, accounts, at).cache()
    key, month = F.col("cons_acct_key"), F.col("rpt_as_of_mo")
    forward = batch.where((key <= accounts) & (month == NEXT_MONTH)).select(key).distinct().count()
    new = batch.where(key > accounts).select(key).distinct().count()
    new_with_history = batch.where((key > accounts) & (month < NEXT_MONTH)).select(key).distinct().count()
    corrected_at = F.col("base_ts") == F.lit(at + dt.timedelta(hours=1))
    corrections = batch.where((key <= accounts) & (month <= END_MONTH) & corrected_at)
    deletes = batch.where(F.col("soft_del_cd") == "1").where(month == END_MONTH).count()
    assert 0.87 * accounts < forward < 0.93 * accounts
    assert 0.95 * (accounts // 20) <= new <= accounts // 20
    assert 0.6 * (new // 5) <= new_with_history <= new // 5  # a fifth arrive with 12-48 months of history
    assert 0.03 * accounts < corrections.count() < 0.05 * accounts
    older = corrections.where(month < "2023-01").count()  # more than 36 months before 2025-12
    assert 0 < older < 0.25 * corrections.count()
    assert 0 < deletes < 0.005 * accounts
    batch.unpersist()


def test_the_report_prints_each_phase_and_each_target() -> None:
    report = Report(profile="small", accounts=10, months=120, short_months=30, history_length=36,
                    started_at="2026-11-29T00:00:00+00:00")
    report.phases = [Phase("initial (120 months)", 10.0, 300_000, "summary rows", 512.0)]
    report.ratios = {"full_over_incremental": 12.0, "incremental_over_floor": 2.5}
    report.checks = {"incremental_equals_full_rebuild": True}
    out = io.StringIO()
    Console(out=out).benchmark(report, "benchmark-small.json")
    text = out.getvalue()
    assert "initial (120 months)  10.0     300,000 summary rows  30,000" in text
    assert "full_over_incremental   12.00  >= 10.0  yes" in text
    assert "incremental_over_floor  2.50   <= 2.0   NO" in text
    assert "incremental_equals_full_rebuild: yes" in text
