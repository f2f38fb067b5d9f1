"""Crash safety (SPEC 8): a run killed at any step boundary, or failing there, is repaired by running again.

A simulated kill is an exception that is not an ``Exception``: it skips every cleanup, as SIGKILL would, and
leaves the lock held and the ledger row ``running``. One table sequence goes through a kill at every step of
:data:`~summary_pipeline.store.protocol.STEPS`, each time with a new batch; after each kill, a reader who follows the
ledger's last succeeded run sees the oracle's tables for the versions read so far, and the final run leaves
exactly the oracle's tables for every version.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import pytest
from pyspark.sql import SparkSession

from factories import Kill, fault, load_source, new_config, oracle_config, version
from oracle import expected_tables
from summary_pipeline import runner
from summary_pipeline.config import PipelineConfig
from summary_pipeline.errors import ConflictError, LockLostError
from summary_pipeline.result import RunOptions
from summary_pipeline.runner import read_watermark, run
from summary_pipeline.store import protocol
from summary_pipeline.store.ledger import ledger_rows
from summary_pipeline.store.lock import Owner, clear_lock, read_owner
from summary_pipeline.store.protocol import STEPS
from summary_pipeline.store.refs import refs
from summary_pipeline.store.snapshots import RUN_ID_PROPERTY, state, swap_properties

pytestmark = [pytest.mark.spark, pytest.mark.slow]

T0 = dt.datetime(2026, 1, 10, 8)
INCREMENTAL = RunOptions(mode="incremental")


def _batch(i: int) -> list[dict[str, Any]]:
    """Batch ``i``: the next month for accounts 1-3, a correction, a new account, a delete, a bad row."""
    ts = T0 + dt.timedelta(hours=i + 1)
    month = f"2026-{i + 1:02d}" if i < 12 else f"2027-{i - 11:02d}"
    rows = [version(a, month, 1000 * a + i, ts=ts) for a in (1, 2, 3)]
    rows += [version(1, "2025-12", 500 + i, ts=ts)]  # a correction of an older month
    rows += [version(100 + i, month, i, ts=ts)]  # a new account
    rows += [version(2, "2025-11", 0, ts=ts, soft_del_cd="1")] if i == 3 else []
    rows += [version(3, "2026-13", 1, ts=ts)]  # quarantined every time (once)
    return rows


def _initial() -> list[dict[str, Any]]:
    return [version(a, m, a * 10, ts=T0) for a in (1, 2, 3) for m in ("2025-10", "2025-11", "2025-12")]


def _tables_at(spark: SparkSession, cfg: PipelineConfig, snapshots: dict[str, int]
               ) -> tuple[dict[Any, dict[str, Any]], dict[Any, dict[str, Any]]]:
    """summary and latest_summary as of the given snapshot ids (what a reader following the ledger reads)."""
    def read(table: str) -> list[dict[str, Any]]:
        return [r.asDict() for r in spark.read.option("snapshot-id", snapshots[table]).table(table).collect()]
    summary = {(r[cfg.key], r[cfg.month]): r for r in read(cfg.destination_table)}
    latest = {r[cfg.key]: r for r in read(cfg.latest_history_table)}
    return summary, latest


def _assert_equal(cfg: PipelineConfig, got: tuple[dict[Any, dict[str, Any]], dict[Any, dict[str, Any]]],
                  versions: list[dict[str, Any]]) -> None:
    want_summary, want_latest = expected_tables(versions, oracle_config(cfg))
    got_summary, got_latest = got
    assert set(got_summary) == set(want_summary)
    assert set(got_latest) == set(want_latest)
    for key, row in want_summary.items():
        assert {c: got_summary[key][c] for c in cfg.summary_columns} == {c: row[c] for c in cfg.summary_columns}
    for key, row in want_latest.items():
        assert {c: got_latest[key][c] for c in cfg.latest_columns} == {c: row[c] for c in cfg.latest_columns}


def _last_succeeded(spark: SparkSession, cfg: PipelineConfig) -> dict[str, Any]:
    return ledger_rows(spark, cfg.ledger_table, "succeeded")[-1]


def test_a_kill_at_every_step_is_repaired_by_the_next_run(spark: SparkSession,
                                                          any_catalog: Callable[..., PipelineConfig]) -> None:
    cfg = any_catalog(history_length=6)
    versions = _initial()
    load_source(spark, cfg, versions)
    run(spark, cfg, RunOptions(mode="initial"))
    applied = list(versions)  # the versions the last succeeded run had read
    for i, step in enumerate(STEPS):
        batch = _batch(i)
        load_source(spark, cfg, batch)
        versions += batch
        hook = fault(step, Kill(step))
        with pytest.raises(Kill):
            run(spark, cfg, INCREMENTAL, on_step=hook)
        if step in ("recorded", "released"):
            applied = list(versions)
        # A reader who follows the ledger sees a whole run's state, never a half-written one.
        last = _last_succeeded(spark, cfg)
        _assert_equal(cfg, _tables_at(spark, cfg, last["snapshots_after"]), applied)
        assert read_owner(spark, cfg.ledger_table) is not None or step == "released"
    result = run(spark, cfg, INCREMENTAL)
    _assert_equal(cfg, _tables_at(spark, cfg, result.snapshots_after), versions)  # type: ignore[arg-type]
    assert read_owner(spark, cfg.ledger_table) is None

    rows = ledger_rows(spark, cfg.ledger_table)
    statuses = [r["status"] for r in rows]
    # initial; the runs killed after they started (undone by the next run; a kill at "locked" comes before the
    # run's row); the two killed after their commit point; the final run
    assert statuses == ["succeeded"] + ["failed"] * (len(STEPS) - 3) + ["succeeded"] * 3
    assert all("undone by run" in r["error"] for r in rows if r["status"] == "failed")
    assert read_watermark(spark, cfg) == T0 + dt.timedelta(hours=len(STEPS))
    # Every snapshot of the three data tables names a run of the ledger.
    ids = {r["run_id"] for r in rows}
    for table in protocol.data_tables(cfg):
        tags = {r[0].get(RUN_ID_PROPERTY) for r in spark.sql(f"SELECT summary FROM {table}.snapshots").collect()}
        assert tags <= ids, table
    # One bad row per batch, each read again by the reruns, each kept once.
    assert spark.table(cfg.quarantine).count() == len(STEPS)


def _built_then_batch(spark: SparkSession, make: Callable[..., PipelineConfig] = new_config
                      ) -> tuple[PipelineConfig, list[dict[str, Any]]]:
    """Tables built from the initial versions, then batch 0 in the source (not applied); every version."""
    cfg = make(history_length=6)
    versions = _initial()
    load_source(spark, cfg, versions)
    run(spark, cfg, RunOptions(mode="initial"))
    load_source(spark, cfg, _batch(0))
    return cfg, versions + _batch(0)


def test_a_failure_undoes_its_writes_and_a_concurrent_writer_is_a_clean_failure(
        spark: SparkSession, any_catalog: Callable[..., PipelineConfig]) -> None:
    cfg, versions = _built_then_batch(spark, any_catalog)
    before = {t: state(spark, t) for t in protocol.data_tables(cfg)}

    hook = fault("latest_summary", RuntimeError("disk full"))  # summary and latest_summary committed, then a failure
    with pytest.raises(RuntimeError, match="disk full"):
        run(spark, cfg, INCREMENTAL, on_step=hook)
    assert {t: state(spark, t) for t in protocol.data_tables(cfg)} == before
    failed = ledger_rows(spark, cfg.ledger_table)[-1]
    assert (failed["status"], failed["error"]) == ("failed", "disk full")
    assert read_owner(spark, cfg.ledger_table) is None

    def other_writer() -> None:  # commits to latest_summary between this run's two commits
        spark.sql(f"UPDATE {cfg.latest_history_table} SET {cfg.key} = {cfg.key} WHERE {cfg.key} = 1")
    hook = fault("summary", other_writer)
    with pytest.raises(ConflictError, match="changed by another writer during this run"):
        run(spark, cfg, INCREMENTAL, on_step=hook)
    assert state(spark, cfg.destination_table) == before[cfg.destination_table]  # undone
    assert state(spark, cfg.latest_history_table) != before[cfg.latest_history_table]  # the other writer's
    assert ledger_rows(spark, cfg.ledger_table)[-1]["status"] == "failed"

    # The same writer between the audit and the publish: summary's main has moved when latest_summary's
    # fast-forward finds its main moved too; summary is put back.
    before = {t: state(spark, t) for t in protocol.data_tables(cfg)}
    hook = fault("audited", other_writer)
    with pytest.raises(ConflictError, match="while this run staged its writes"):
        run(spark, cfg, INCREMENTAL, on_step=hook)
    assert state(spark, cfg.destination_table) == before[cfg.destination_table]

    result = run(spark, cfg, INCREMENTAL)  # the same command repairs it
    _assert_equal(cfg, _tables_at(spark, cfg, result.snapshots_after), versions)  # type: ignore[arg-type]


def test_a_run_that_lost_its_lock_stops_before_its_next_commit_and_is_undone(
        spark: SparkSession, any_catalog: Callable[..., PipelineConfig]) -> None:
    cfg, versions = _built_then_batch(spark, any_catalog)
    before = state(spark, cfg.destination_table)

    def usurp() -> None:  # after this run's summary commit, another host judges it dead and takes the lock
        now = time.time()
        usurper = Owner("usurper", "incremental", "elsewhere", "", 1, 1, now, now)
        swap_properties(spark, cfg.ledger_table, lambda _: usurper.properties())
    hook = fault("summary", usurp)
    with pytest.raises(LockLostError, match="taken over by run usurper"):
        run(spark, cfg, INCREMENTAL, on_step=hook)
    assert state(spark, cfg.destination_table) == before  # its summary commit is on its branch, not published
    assert [r for r in refs(spark, cfg.destination_table) if r.startswith("sp_run_")]  # the run's branch
    clear_lock(spark, cfg.ledger_table, cfg.lock_timeout, force=True)  # the usurper "finished"
    result = run(spark, cfg, INCREMENTAL)
    assert any("had stopped half-way" in w for w in result.warnings)
    assert not [r for r in refs(spark, cfg.destination_table) if r.startswith("sp_run_")]  # removed by the rerun
    _assert_equal(cfg, _tables_at(spark, cfg, result.snapshots_after), versions)  # type: ignore[arg-type]


def test_a_run_with_nothing_new_writes_its_ledger_row_once_and_an_early_failure_is_recorded(
        spark: SparkSession, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, versions = _built_then_batch(spark)
    run(spark, cfg, INCREMENTAL)
    before = {t: state(spark, t) for t in (*protocol.data_tables(cfg), cfg.ledger_table)}
    quiet = run(spark, cfg, INCREMENTAL)  # nothing new since the last run
    assert quiet.message == "no new records"
    after = {t: state(spark, t) for t in (*protocol.data_tables(cfg), cfg.ledger_table)}
    assert {t: after[t] for t in protocol.data_tables(cfg)} == {t: before[t] for t in protocol.data_tables(cfg)}
    new_commits = spark.sql(f"SELECT count(*) FROM {cfg.ledger_table}.snapshots "
                            f"WHERE parent_id = {before[cfg.ledger_table]}").collect()[0][0]
    assert new_commits == 1 and after[cfg.ledger_table] != before[cfg.ledger_table]
    row = ledger_rows(spark, cfg.ledger_table)[-1]
    assert (row["run_id"], row["status"]) == (quiet.run_id, "succeeded")
    assert row["snapshots_after"] == row["snapshots_before"] == {t: before[t] for t in protocol.data_tables(cfg)}

    # A run that fails while classifying, before any write, has nothing to undo and is still recorded.
    load_source(spark, cfg, _batch(1))

    def broken(*_args: Any, **_kw: Any) -> Any:
        raise RuntimeError("classify broke")
    monkeypatch.setattr(runner, "decide", broken)
    with pytest.raises(RuntimeError, match="classify broke"):
        run(spark, cfg, INCREMENTAL)
    monkeypatch.undo()
    failed = ledger_rows(spark, cfg.ledger_table)[-1]
    assert (failed["status"], failed["error"]) == ("failed", "classify broke")
    assert read_owner(spark, cfg.ledger_table) is None
    result = run(spark, cfg, INCREMENTAL)
    _assert_equal(cfg, _tables_at(spark, cfg, result.snapshots_after), versions + _batch(1))  # type: ignore[arg-type]
