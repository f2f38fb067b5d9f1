"""The run lock (SPEC 8): refused while its holder may be alive, taken over once it is provably gone."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from pyspark.sql import SparkSession

from factories import load_source, new_config, version
from summary_pipeline.config import PipelineConfig
from summary_pipeline.errors import CommitFailed, LockedError, LockLostError
from summary_pipeline.result import RunOptions
from summary_pipeline.runner import run
from summary_pipeline.store.ledger import ensure_ledger
from summary_pipeline.store.lock import Owner, RunLock, clear_lock, machine_id, read_owner
from summary_pipeline.store.snapshots import swap_properties
from summary_pipeline.store.tables import table_exists

pytestmark = pytest.mark.spark


def _ledger(spark: SparkSession, make: Callable[..., PipelineConfig] = new_config) -> str:
    table = make().ledger_table
    ensure_ledger(spark, table)
    return table


def _hold(spark: SparkSession, table: str, run_id: str, **fields: Any) -> None:
    """Write a lock holder straight into the properties, as another process would have.

    Like a real taker it tries again when its compare-and-swap loses, here to a live holder's heartbeat.
    """
    now = time.time()
    owner = Owner(**{"run_id": run_id, "mode": "incremental", "host": socket.gethostname(),
                     "machine": machine_id(), "pid": -1, "jvm_pid": -1, "since": now, "heartbeat": now, **fields})
    for attempt in range(5):
        try:
            swap_properties(spark, table, lambda _: owner.properties())
            return
        except CommitFailed:
            if attempt == 4:
                raise


@pytest.mark.slow
def test_a_live_holder_is_refused_by_name_and_taken_over_once_its_process_is_gone(spark: SparkSession) -> None:
    cfg = new_config()
    load_source(spark, cfg, [version(1, "2026-01", 1)])
    ensure_ledger(spark, cfg.ledger_table)
    holder = subprocess.Popen(["sleep", "120"])
    try:
        _hold(spark, cfg.ledger_table, "beefbeefbeefbeef", pid=holder.pid)
        with pytest.raises(LockedError) as refused:
            run(spark, cfg, RunOptions(mode="initial"))
        assert f"run beefbeefbeefbeef (incremental), pid {holder.pid} on host {socket.gethostname()}" in str(
            refused.value)
        assert "summary-pipeline unlock" in str(refused.value) and refused.value.exit_code == 2
        assert not table_exists(spark, cfg.destination_table)  # nothing written
    finally:
        holder.kill()
        holder.wait()
    result = run(spark, cfg, RunOptions(mode="initial"))  # its process is gone: the lock is taken over
    assert result.status == "succeeded"
    assert any("took over the lock from run beefbeefbeefbeef" in w and "no longer exist" in w
               for w in result.warnings)
    assert read_owner(spark, cfg.ledger_table) is None


def test_a_holder_on_another_host_is_judged_by_its_heartbeat(
        spark: SparkSession, any_catalog: Callable[..., PipelineConfig]) -> None:
    table = _ledger(spark, any_catalog)
    _hold(spark, table, "remote1", host="elsewhere", pid=1)
    with pytest.raises(LockedError, match="run remote1"):
        RunLock(spark, table, "me1", "incremental", timeout=600).acquire()
    _hold(spark, table, "remote2", host="elsewhere", pid=1, heartbeat=time.time() - 601)
    lock = RunLock(spark, table, "me2", "incremental", timeout=600)
    taken = lock.acquire()
    assert taken is not None and taken[0].run_id == "remote2" and "heartbeat is 601 s old" in taken[1]
    lock.release()
    assert read_owner(spark, table) is None


def test_the_heartbeat_renews_the_lock_and_a_lost_lock_stops_the_run(
        spark: SparkSession, any_catalog: Callable[..., PipelineConfig]) -> None:
    table = _ledger(spark, any_catalog)
    lock = RunLock(spark, table, "holder", "incremental", timeout=2)  # beats every 0.5 s
    lock.acquire()
    first = read_owner(spark, table)
    time.sleep(1.5)
    renewed = read_owner(spark, table)
    assert first is not None and renewed is not None and renewed.heartbeat > first.heartbeat
    lock.check()
    _hold(spark, table, "usurper", host="elsewhere")  # another run judged it dead and took over
    time.sleep(1.5)
    with pytest.raises(LockLostError, match="taken over by run usurper"):
        lock.check()
    lock.release()  # gives back nothing it no longer holds
    owner = read_owner(spark, table)
    assert owner is not None and owner.run_id == "usurper"


def test_two_runs_racing_for_the_lock_never_both_win(
        spark: SparkSession, any_catalog: Callable[..., PipelineConfig]) -> None:
    table = _ledger(spark, any_catalog)
    outcomes: list[str] = []
    locks = [RunLock(spark, table, f"racer{i}", "incremental", timeout=600) for i in range(3)]
    go = threading.Barrier(len(locks))

    def race(lock: RunLock) -> None:
        go.wait()
        try:
            lock.acquire()
            outcomes.append("won")
        except LockedError:
            outcomes.append("refused")

    threads = [threading.Thread(target=race, args=(lock,)) for lock in locks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["refused", "refused", "won"]
    for lock in locks:
        lock.release()
    assert read_owner(spark, table) is None


def test_a_holder_in_another_pid_namespace_is_judged_by_its_heartbeat_only(
        spark: SparkSession, any_catalog: Callable[..., PipelineConfig]) -> None:
    table = _ledger(spark, any_catalog)
    _hold(spark, table, "container", machine="another-boot:4026531836", pid=999_999)  # same host name
    with pytest.raises(LockedError, match="run container"):
        RunLock(spark, table, "me3", "incremental", timeout=600).acquire()
    clear_lock(spark, table, timeout=600, force=True)


def test_unlock_refuses_a_live_holder_unless_forced(
        spark: SparkSession, any_catalog: Callable[..., PipelineConfig]) -> None:
    table = _ledger(spark, any_catalog)
    _hold(spark, table, "alive", host="elsewhere")
    with pytest.raises(LockedError, match="may still be running"):
        clear_lock(spark, table, timeout=600)
    cleared = clear_lock(spark, table, timeout=600, force=True)
    assert cleared is not None and cleared.run_id == "alive"
    assert read_owner(spark, table) is None
    assert clear_lock(spark, table, timeout=600) is None
