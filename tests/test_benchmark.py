"""The benchmark's workloads have production's and the seed's shapes, its report says which targets were met, and
a second call measures again on the tables the first one kept.

The benchmark itself is run by hand (``summary-pipeline benchmark``); tests never time anything.
"""

from __future__ import annotations

import datetime as dt
import io

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from factories import new_config
from summary_pipeline.console import Console
from summary_pipeline.tools.benchmark import TARGETS, Phase, Profile, Report, run_benchmark
from summary_pipeline.tools.generate import generate_versions
from summary_pipeline.tools.workloads import END_MONTH, NEXT_MONTH, make_batch, make_seed_batch


@pytest.mark.slow
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


@pytest.mark.slow
@pytest.mark.spark
def test_the_seed_batch_has_the_seed_mix(spark: SparkSession) -> None:
    accounts, at = 4_000, dt.datetime(2026, 2, 15)
    source = generate_versions(spark, accounts=accounts, start_month="2024-01", end_month=END_MONTH, seed=3).cache()
    batch = make_seed_batch(spark, source, accounts, at).cache()
    key, month = F.col("cons_acct_key"), F.col("rpt_as_of_mo")
    existing = key <= accounts
    forward = batch.where(existing & (month == NEXT_MONTH)).select(key).distinct().count()
    two_months = batch.where(existing & (month == "2026-02")).select(key).distinct().count()
    versions = batch.where(existing & (month >= NEXT_MONTH)).count()
    corrections = batch.where(existing & (F.col("base_ts") == F.lit(at + dt.timedelta(hours=1))))
    per_account = corrections.groupBy(key).count()
    resent = per_account.where(F.col("count") > 1)  # whole grids; a single correction is one month
    singles = per_account.where(F.col("count") == 1).count()
    fills = corrections.join(source.select(key, month).distinct(), ["cons_acct_key", "rpt_as_of_mo"], "left_anti")
    new = batch.where(~existing).groupBy(key).agg(F.countDistinct(month).alias("months"))
    assert 0.89 * accounts < forward < 0.95 * accounts
    assert 0.005 * forward < two_months < 0.02 * forward
    assert 1.04 * (forward + two_months) < versions < 1.1 * (forward + two_months)  # ~2% extra, and the generator's
    assert 0.005 * accounts < resent.count() < 0.015 * accounts
    assert resent.agg(F.max("count")).collect()[0][0] == 24
    assert 0.01 * accounts < singles < 0.035 * accounts
    assert 0.1 * singles < fills.count() < 0.4 * singles  # a quarter of them fill a month the account is missing
    assert new.count() == accounts // 20
    assert new.where(F.col("months") == 3).count() == accounts // 200
    batch.unpersist()
    source.unpersist()


def test_the_report_prints_each_phase_and_each_target() -> None:
    report = Report(profile="small", accounts=10, months=120, short_months=30, history_length=36,
                    started_at="2026-11-29T00:00:00+00:00")
    report.phases = [Phase("initial (120 months)", 10.0, 300_000, "summary rows", 512.0, spark_jobs=42)]
    report.ratios = {"full_over_incremental": 12.0, "incremental_over_floor": 2.5}
    report.checks = {"incremental_equals_full_rebuild": True}
    out = io.StringIO()
    Console(out=out).benchmark(report, "benchmark-small.json")
    text = out.getvalue()
    assert "initial (120 months)  10.0     300,000 summary rows  30,000  512.0          42" in text
    assert "full_over_incremental   12.00  >= 10.0  yes" in text
    assert "incremental_over_floor  2.50   <= 2.0   NO" in text
    assert "incremental_equals_full_rebuild: yes" in text


@pytest.mark.spark
@pytest.mark.slow
def test_a_second_call_measures_again_on_the_kept_tables(spark: SparkSession) -> None:
    profile, base = Profile("tiny", 100, "1g", months=16, short_months=10, batch="seed"), new_config(history_length=6)
    first = run_benchmark(spark, base, profile, lambda _line: None)
    assert [p.name for p in first.phases] == [
        "initial (10 months)", "initial (16 months)", "initial floor (16 months)", "incremental (16 months)",
        "incremental (10 months)", "full rebuild (16 months)", "I/O floor (16 months)"]
    assert set(first.ratios) == set(TARGETS)
    assert first.checks == {"incremental_equals_full_rebuild": True}
    assert all(p.spark_jobs for p in first.phases)
    floor = first.phase("initial floor (16 months)")
    assert floor.rows == first.phase("initial (16 months)").rows
    assert 0.8 * floor.rows < spark.table("bench_tiny.floor_initial").count() < 1.2 * floor.rows

    said: list[str] = []
    again = run_benchmark(spark, base, profile, said.append, reuse=True, phases=("incremental", "floor"))
    assert again.reused and "  rolling back the incremental runs of the earlier call" in said
    assert [p.name for p in again.phases] == [
        "incremental (16 months)", "incremental (10 months)", "I/O floor (16 months)"]
    assert again.phase("incremental (16 months)").rows == first.phase("incremental (16 months)").rows
    assert set(again.ratios) == {"incremental_120_over_30", "incremental_over_floor"}
    assert again.checks == {"incremental_equals_full_rebuild": True}
