"""Rollback (issue 4): the tables and the watermark back to before a run; later runs only when told to."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import SparkSession

from factories import Kill, assert_matches_oracle, fault, load_source, new_config, version
from summary_pipeline.errors import NotReadyError, RollbackRefusedError
from summary_pipeline.result import RunOptions, RunResult
from summary_pipeline.runner import new_result, read_watermark, run
from summary_pipeline.store.ledger import ledger_rows
from summary_pipeline.store.lock import read_owner
from summary_pipeline.store.protocol import StepHook, rollback
from summary_pipeline.store.tables import table_exists

pytestmark = [pytest.mark.spark, pytest.mark.slow]

T0 = dt.datetime(2026, 2, 1, 8)
INCREMENTAL = RunOptions(mode="incremental")


def _batch(month: str, hours: int) -> list[dict[str, object]]:
    ts = T0 + dt.timedelta(hours=hours)
    return [version(1, month, hours, ts=ts), version(2, month, 2 * hours, ts=ts), version(1, "2025-12", -hours, ts=ts)]


def test_rollback_restores_tables_and_watermark_and_a_killed_rollback_is_finished(
        spark: SparkSession, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = new_config(history_length=6)
    say: list[str] = []
    first = [version(a, m, a, ts=T0) for a in (1, 2) for m in ("2025-11", "2025-12")]
    load_source(spark, cfg, first)
    a = run(spark, cfg, RunOptions(mode="initial"))
    load_source(spark, cfg, _batch("2026-01", 1))
    b = run(spark, cfg, INCREMENTAL)
    load_source(spark, cfg, _batch("2026-02", 2))
    c = run(spark, cfg, INCREMENTAL)
    assert read_watermark(spark, cfg) == T0 + dt.timedelta(hours=2)

    with pytest.raises(RollbackRefusedError, match=f"also undoes 1 later run\\(s\\): {c.run_id}"):
        rollback(spark, cfg, new_result("rollback", cfg, {"run_id": b.run_id}), b.run_id, False, say.append)

    # A rollback killed before it changed anything is finished by whichever run comes next.
    def kill(step: str) -> None:
        if step == "started":
            raise Kill(step)
    with pytest.raises(Kill):
        rollback(spark, cfg, new_result("rollback", cfg, {"run_id": c.run_id}), c.run_id, False, say.append,
                 on_step=kill)
    again = run(spark, cfg, INCREMENTAL)  # finishes the rollback of c, then reads c's batch again
    assert any(f"(rollback of {c.run_id}) had stopped half-way; finished it" in w for w in again.warnings)
    assert again.source_rows == 3
    assert_matches_oracle(spark, cfg, first + _batch("2026-01", 1) + _batch("2026-02", 2))
    finished = next(r for r in ledger_rows(spark, cfg.ledger_table) if r["mode"] == "rollback")
    assert finished["status"] == "succeeded" and len(finished["snapshots_after"]) == 4  # later settles keep it
    status = {r["run_id"]: r["status"] for r in ledger_rows(spark, cfg.ledger_table)}
    assert (status[a.run_id], status[b.run_id], status[c.run_id], status[again.run_id]) == (
        "succeeded", "succeeded", "rolled_back", "succeeded")

    done = rollback(spark, cfg, new_result("rollback", cfg, {"run_id": again.run_id}), again.run_id, False,
                    say.append)
    assert done.watermark_committed == T0 + dt.timedelta(hours=1) == read_watermark(spark, cfg)
    assert_matches_oracle(spark, cfg, first + _batch("2026-01", 1))

    rollback(spark, cfg, new_result("rollback", cfg, {"run_id": a.run_id}), a.run_id, True, say.append)
    assert not table_exists(spark, cfg.destination_table)  # initial created the tables: they are gone
    assert read_watermark(spark, cfg) is None
    with pytest.raises(NotReadyError):
        run(spark, cfg, INCREMENTAL)


def test_a_rollback_killed_at_any_step_is_completed_by_running_the_same_command_again(
        spark: SparkSession) -> None:
    cfg = new_config(history_length=6)
    say: list[str] = []
    before = [version(a, m, a, ts=T0) for a in (1, 2) for m in ("2025-11", "2025-12")] + _batch("2026-01", 1)
    load_source(spark, cfg, before)
    run(spark, cfg, RunOptions(mode="initial"))
    load_source(spark, cfg, _batch("2026-02", 2))

    def undo(run_id: str, on_step: StepHook | None = None) -> RunResult:
        """``summary-pipeline rollback --run-id RUN_ID``, as each attempt types it."""
        return rollback(spark, cfg, new_result("rollback", cfg, {"run_id": run_id}), run_id, False, say.append,
                        on_step=on_step)

    last = run(spark, cfg, INCREMENTAL)
    passed: list[str] = []
    undo(last.run_id, passed.append)  # one uninterrupted rollback, and the steps it passes
    assert passed == ["locked", "started", "published", "recorded", "released"]
    assert_matches_oracle(spark, cfg, before)
    for step in passed:
        last = run(spark, cfg, INCREMENTAL)  # reads the rolled-back batch again, and tags its month again
        assert last.source_rows == 3 and last.tags == ["report-2026-02"]
        assert_matches_oracle(spark, cfg, before + _batch("2026-02", 2))
        with pytest.raises(Kill):
            undo(last.run_id, fault(step, Kill(step)))
        again = undo(last.run_id)  # the same command
        assert again.status == "succeeded", step
        # Killed once it had started, the rollback was finished by the next command that locked: this one.
        assert (again.message == f"run {last.run_id} was already rolled back") == (step != "locked")
        assert_matches_oracle(spark, cfg, before)
        assert read_watermark(spark, cfg) == T0 + dt.timedelta(hours=1)
        rows = ledger_rows(spark, cfg.ledger_table)
        assert {r["run_id"]: r["status"] for r in rows}[last.run_id] == "rolled_back"
        assert [r for r in rows if r["status"] == "running"] == []
        assert read_owner(spark, cfg.ledger_table) is None
