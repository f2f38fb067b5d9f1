"""Rollback (issue 4): the tables and the watermark back to before a run; later runs only when told to."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import SparkSession

from factories import assert_matches_oracle, load_source, new_config, version
from summary_pipeline.errors import NotReadyError, RollbackRefusedError
from summary_pipeline.result import RunOptions
from summary_pipeline.runner import new_result, read_watermark, run
from summary_pipeline.store.ledger import ledger_rows
from summary_pipeline.store.protocol import rollback
from summary_pipeline.store.tables import table_exists

pytestmark = [pytest.mark.spark, pytest.mark.slow]

T0 = dt.datetime(2026, 2, 1, 8)
INCREMENTAL = RunOptions(mode="incremental")


class Kill(BaseException):
    """A simulated SIGKILL."""


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
