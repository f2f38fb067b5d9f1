"""Memory (issue 14): the embedded driver is sized from the machine, and running out of memory is reported as
exactly that, with the setting to raise, never as whatever failed after it; the next run settles the run."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from factories import assert_matches_oracle, config_file, load_source, new_config, version
from summary_pipeline.errors import jvm_stopped, out_of_memory
from summary_pipeline.result import RunOptions
from summary_pipeline.runner import run
from summary_pipeline.spark import default_driver_memory, machine_memory
from summary_pipeline.store.ledger import ledger_rows
from summary_pipeline.store.lock import RunLock
from summary_pipeline.store.protocol import RunGuard

T0 = dt.datetime(2026, 3, 1, 8)


def test_the_embedded_driver_gets_half_the_machine() -> None:
    assert default_driver_memory(24 * 2**30) == "12g"
    assert default_driver_memory(3 * 2**30) == "1g"  # never below Spark's own default
    assert default_driver_memory(512 * 2**30) == "31g"  # compressed pointers end at 32 GiB
    assert default_driver_memory(None) == "1g"
    total = machine_memory()
    assert total is None or total > 2**28


def _real_out_of_memory(spark: SparkSession) -> Exception:
    """A real java.lang.OutOfMemoryError through Py4J: an array larger than the JVM allows (costs nothing)."""
    jvm = spark._jvm
    assert jvm is not None
    try:
        jvm.java.lang.reflect.Array.newInstance(jvm.java.lang.Long.TYPE, 2**31 - 1)
    except Exception as err:
        return err
    raise AssertionError("the JVM allocated the array")


@pytest.mark.spark
def test_a_java_out_of_memory_error_is_recognised(spark: SparkSession) -> None:
    err = _real_out_of_memory(spark)
    assert out_of_memory(err)
    assert not out_of_memory(ValueError("no"))
    assert jvm_stopped(ConnectionRefusedError("[Errno 111] Connection refused"))
    assert not jvm_stopped(err)


@pytest.mark.slow
@pytest.mark.spark
def test_a_run_that_runs_out_of_memory_says_so_and_the_next_run_repairs_it(
        spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        cli_in_process: Callable[..., int]) -> None:
    cfg = new_config()  # the reference config, as the CLI reads it from the file
    versions = [version(a, m, a * 10, ts=T0) for a in (1, 2) for m in ("2025-11", "2025-12")]
    load_source(spark, cfg, versions)
    run(spark, cfg, RunOptions(mode="initial"))
    batch = [version(1, "2026-01", 7, ts=T0 + dt.timedelta(hours=1)),
             version(2, "2025-11", 8, ts=T0 + dt.timedelta(hours=1))]
    load_source(spark, cfg, batch)
    oom = _real_out_of_memory(spark)

    def after_summary(self: RunGuard, name: str) -> None:
        if name == "summary":  # summary is written, latest_summary not yet: the run must be undone
            raise oom

    # What an out-of-memory that stops Spark also does: every later call fails, the lock's release included.
    def release(self: RunLock) -> None:
        self.stop()
        raise ConnectionRefusedError("[Errno 111] Connection refused")

    # The CLI takes no step hook: the guard's own step method is replaced for this one run.
    step = RunGuard.step
    monkeypatch.setattr(RunGuard, "step", after_summary)
    released = RunLock.release
    monkeypatch.setattr(RunLock, "release", release)
    path = str(config_file(cfg, tmp_path))
    assert cli_in_process(["--config", path]) == 1
    err = capsys.readouterr().err
    assert "Spark ran out of memory (OutOfMemoryError: Requested array size exceeds VM limit)" in err
    assert '"spark.driver.memory"' in err and "Connection refused" not in err
    monkeypatch.setattr(RunGuard, "step", step)
    monkeypatch.setattr(RunLock, "release", released)

    # The lock still names the dead run, which is no longer running in this process: the next run takes it over.
    assert cli_in_process(["--config", path]) == 0
    statuses = [r["status"] for r in ledger_rows(spark, cfg.ledger_table)]
    assert statuses == ["succeeded", "failed", "succeeded"]
    assert_matches_oracle(spark, cfg, versions + batch)
