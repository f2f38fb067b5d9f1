"""Maintenance (issue 5): compaction changes no row, expiry keeps the last runs undoable and no older one."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import SparkSession

from factories import Kill, assert_matches_oracle, fault, load_source, new_config, version
from summary_pipeline.errors import RestoreError
from summary_pipeline.ops.maintain import maintain, procedure_target
from summary_pipeline.result import RunOptions, RunResult
from summary_pipeline.runner import new_result, read_watermark, run
from summary_pipeline.store.ledger import ledger_rows
from summary_pipeline.store.lock import read_owner
from summary_pipeline.store.protocol import StepHook, data_tables, rollback
from summary_pipeline.store.snapshots import RUN_ID_PROPERTY

T0 = dt.datetime(2026, 4, 1, 8)


def _batch(hours: int, month: str) -> list[dict[str, object]]:
    ts = T0 + dt.timedelta(hours=hours)
    return [version(a, month, a * hours, ts=ts) for a in (1, 2, 3)] + [version(1, "2025-11", hours, ts=ts)]


@pytest.mark.slow
@pytest.mark.spark
def test_maintenance_compacts_without_changing_rows_and_keeps_the_last_runs_undoable(spark: SparkSession) -> None:
    cfg = new_config(history_length=6, tags={"enabled": False})  # a tag keeps its snapshot (test_publish)
    versions = [version(a, m, a, ts=T0) for a in (1, 2, 3) for m in ("2025-10", "2025-11", "2025-12")]
    load_source(spark, cfg, versions)
    run(spark, cfg, RunOptions(mode="initial"))
    ids = []
    for i, month in enumerate(("2026-01", "2026-02"), start=1):
        load_source(spark, cfg, _batch(i, month))
        versions += _batch(i, month)
        ids.append(run(spark, cfg, RunOptions(mode="incremental")).run_id)
    files_before = spark.table(f"{cfg.destination_table}.files").count()

    watermark = read_watermark(spark, cfg)
    result = maintain(spark, cfg, new_result("maintain", cfg, {"keep_runs": 1}), 1, print)
    assert result.status == "succeeded"
    assert read_watermark(spark, cfg) == watermark == T0 + dt.timedelta(hours=2)
    assert_matches_oracle(spark, cfg, versions)
    assert spark.table(f"{cfg.destination_table}.files").count() <= files_before
    assert ledger_rows(spark, cfg.ledger_table)[-1]["mode"] == "maintain"

    # The first incremental's snapshots are expired: it can no longer be undone; the last one still can.
    with pytest.raises(RestoreError, match="was expired"):
        rollback(spark, cfg, new_result("rollback", cfg, {}), ids[0], True, print)
    rollback(spark, cfg, new_result("rollback", cfg, {}), ids[1], False, print)
    assert_matches_oracle(spark, cfg, versions[:-len(_batch(2, "2026-02"))])


def test_procedure_target_splits_the_catalog(spark: SparkSession) -> None:
    assert procedure_target(spark, "glue.db.summary") == ("glue", "db.summary")
    assert procedure_target(spark, "db.summary") == ("local", "db.summary")


@pytest.mark.slow
@pytest.mark.spark
def test_a_maintenance_killed_at_any_step_is_completed_by_running_the_same_command_again(
        spark: SparkSession) -> None:
    cfg = new_config(history_length=6, tags={"enabled": False})  # a tag keeps its snapshot (test_publish)
    versions = [version(a, m, a, ts=T0) for a in (1, 2, 3) for m in ("2025-10", "2025-11", "2025-12")]
    load_source(spark, cfg, versions)
    run(spark, cfg, RunOptions(mode="initial"))

    def upkeep(on_step: StepHook | None = None) -> RunResult:
        """``summary-pipeline maintain --keep-runs 1``, as each attempt types it."""
        return maintain(spark, cfg, new_result("maintain", cfg, {"keep_runs": 1}), 1, print, on_step)

    passed: list[str] = []
    upkeep(passed.append)  # one uninterrupted maintenance, and the steps it passes
    assert passed == ["locked", "started", "summary", "latest_summary", "deletes", "changes", "recorded", "released"]
    reruns = []
    for i, step in enumerate(passed, start=1):
        batch = _batch(i, f"2026-{i:02d}")  # new small files for the maintenance to compact, a run to keep
        load_source(spark, cfg, batch)
        versions += batch
        last = run(spark, cfg, RunOptions(mode="incremental"))
        watermark = read_watermark(spark, cfg)
        with pytest.raises(Kill):
            upkeep(fault(step, Kill(step)))
        again = upkeep()  # the same command
        reruns.append(again.run_id)
        assert again.status == "succeeded", step
        assert_matches_oracle(spark, cfg, versions)
        assert read_watermark(spark, cfg) == watermark == last.watermark_committed
        rows = ledger_rows(spark, cfg.ledger_table)
        assert (rows[-1]["run_id"], rows[-1]["status"]) == (again.run_id, "succeeded")
        assert [r for r in rows if r["status"] == "running"] == []
        assert read_owner(spark, cfg.ledger_table) is None

    # Killed before its commit point, a maintenance is recorded failed (after it, succeeded); every commit to
    # the data tables but a compaction (Iceberg's procedures carry no run id) names a run of the ledger; the
    # last run is still undoable.
    rows = ledger_rows(spark, cfg.ledger_table)
    killed = [r["status"] for r in rows if r["mode"] == "maintain" and r["run_id"] not in reruns][1:]
    assert killed == ["failed"] * 5 + ["succeeded"] * 2  # a kill at "locked" comes before the run's row
    ids = {r["run_id"] for r in rows}
    for table in data_tables(cfg):
        made_by = {r[0].get(RUN_ID_PROPERTY)
                   for r in spark.sql(f"SELECT summary FROM {table}.snapshots WHERE operation != 'replace'").collect()}
        assert made_by <= ids, table
    rollback(spark, cfg, new_result("rollback", cfg, {}), last.run_id, False, print)
    assert_matches_oracle(spark, cfg, versions[:-len(batch)])
