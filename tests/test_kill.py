"""Real processes (SPEC 8): SIGKILL at several points of a CLI run, reruns, two runs started together, and
Ctrl-C / SIGTERM (a run stops at a safe point, undoes itself and says so in one line).

The CLI runs in subprocesses on the test session's own warehouse (distinct namespaces), so the test reads
what they wrote by table name. Kill points are found from the run's own progress lines (right after summary's
staged commit: latest_summary's MERGE is under way) or from a pause the test adds at a step (between the
publish's two fast-forwards). A kill before any commit is test_crash's (in-process, at every step); each real process
costs CI about 30 s.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from factories import assert_matches_oracle, load_source, new_config, reference_raw, version
from summary_pipeline.config import PipelineConfig
from summary_pipeline.result import RunOptions
from summary_pipeline.runner import run
from summary_pipeline.store.ledger import ledger_rows
from summary_pipeline.store.lock import read_owner
from summary_pipeline.store.protocol import data_tables
from summary_pipeline.store.refs import refs
from summary_pipeline.store.snapshots import state

pytestmark = [pytest.mark.spark, pytest.mark.slow]

T0 = dt.datetime(2026, 3, 1, 8)


def _setup(spark: SparkSession, tmp_path: Path) -> tuple[PipelineConfig, Path, list[dict[str, Any]]]:
    cfg = new_config(history_length=6)
    raw = reference_raw()
    raw.update(source_table=cfg.source_table, destination_table=cfg.destination_table,
               latest_history_table=cfg.latest_history_table, history_length=6,
               warehouse=spark.conf.get(f"spark.sql.catalog.{cfg.catalog_name}.warehouse"))
    for r in raw["rolling_columns"]:
        r["num_cols"] = 6
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw))
    versions = [version(a, m, a, ts=T0) for a in range(1, 30) for m in ("2025-10", "2025-11", "2025-12")]
    load_source(spark, cfg, versions)
    run(spark, cfg, RunOptions(mode="initial"))
    return cfg, path, versions


def _batch(i: int) -> list[dict[str, Any]]:
    ts = T0 + dt.timedelta(hours=i + 1)
    rows = [version(a, f"2026-{i + 1:02d}", 100 * i + a, ts=ts) for a in range(1, 30)]
    rows += [version(a, "2025-11", -a - i, ts=ts) for a in range(1, 30, 3)]  # corrections
    rows += [version(1000 + i, "2025-06", i, ts=ts)]  # a new account
    return rows


_STDERR: dict[int, Path] = {}


#: The CLI, pausing at one step of the run (its name in argv[1]) after printing "paused at <step>": the test's
#: way to kill a real process at an exact point, here between two fast-forwards of the publish.
_PAUSING = """
import sys, time
from summary_pipeline import cli
from summary_pipeline.store import protocol
step, at = protocol.RunGuard.step, sys.argv.pop(1)
def pausing(self, name):
    step(self, name)
    if name == at:
        print(f"paused at {name}", flush=True)
        time.sleep(600)
protocol.RunGuard.step = pausing
sys.exit(cli.main(sys.argv[1:]))
"""


def _start(config: Path, pause_at: str | None = None, **env_extra: str) -> subprocess.Popen[str]:
    """The CLI's default command (incremental) in a new process (and process group, as a scheduler starts
    it), pausing at step ``pause_at``; stderr goes to a file beside the config (a pipe nobody reads could fill
    up and stall the run)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **env_extra}
    path = config.with_suffix(f".{os.urandom(4).hex()}.err")
    command = ["-c", _PAUSING, pause_at] if pause_at else ["-m", "summary_pipeline"]
    with open(path, "w") as stderr:
        proc = subprocess.Popen([sys.executable, *command, "--config", str(config)],
                                stdout=subprocess.PIPE, stderr=stderr, text=True, env=env,
                                start_new_session=True)
    _STDERR[proc.pid] = path
    return proc


def _stderr(proc: subprocess.Popen[str]) -> str:
    return _STDERR[proc.pid].read_text()


def _wait_for(proc: subprocess.Popen[str], marker: str) -> list[str]:
    """Read the run's stdout until a line contains ``marker``; fails if the run ends first."""
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if marker in line:
            return seen
    proc.wait()
    raise AssertionError(f"the run ended before {marker!r}:\n{''.join(seen)}\n{_stderr(proc)}")


def test_sigkill_at_several_points_then_the_plain_rerun_repairs_it(spark: SparkSession, tmp_path: Path) -> None:
    cfg, config, versions = _setup(spark, tmp_path)
    before = {t: state(spark, t) for t in data_tables(cfg)}
    # Right after summary's staged commit (latest_summary's is under way), then between the publish's two
    # fast-forwards: summary's main has moved, latest_summary's has not.
    for i, (marker, pause_at) in enumerate(((f"{cfg.destination_table}: ", None),
                                            ("paused at published_summary", "published_summary"))):
        load_source(spark, cfg, _batch(i))
        versions += _batch(i)
        proc = _start(config, pause_at)
        _wait_for(proc, marker)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        owner = read_owner(spark, cfg.ledger_table)
        assert owner is not None and owner.pid == proc.pid  # the lock outlives its holder
        moved = {t for t in data_tables(cfg) if state(spark, t) != before[t]} - {cfg.changes_table}  # made on use
        assert moved == (set() if pause_at is None else {cfg.destination_table}), moved
    rerun = _start(config)
    out, _ = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, _stderr(rerun)
    assert "Warning: took over the lock from run" in out and "no longer exist on this host" in out
    assert "had stopped half-way" in out and "undid commits of runs that did not succeed" in out
    assert_matches_oracle(spark, cfg, versions)
    statuses = [r["status"] for r in ledger_rows(spark, cfg.ledger_table)]
    assert statuses == ["succeeded", "failed", "failed", "succeeded"]
    assert read_owner(spark, cfg.ledger_table) is None
    assert not [r for t in data_tables(cfg) for r in refs(spark, t) if r.startswith("sp_run_")]


def test_ctrl_c_and_sigterm_undo_the_run_in_one_line_and_the_rerun_completes_it(
        spark: SparkSession, tmp_path: Path) -> None:
    cfg, config, versions = _setup(spark, tmp_path)
    before = {t: state(spark, t) for t in data_tables(cfg)}
    load_source(spark, cfg, _batch(0))
    versions += _batch(0)
    # Ctrl-C to the process right after summary's commit (latest_summary's MERGE is under way); SIGTERM to the
    # whole process group, as a scheduler sends it, while the run rebuilds and starts writing.
    for marker, sig, code in ((f"{cfg.destination_table}: ", signal.SIGINT, 130),
                              ("Rebuilding history arrays", signal.SIGTERM, 143)):
        proc = _start(config, SUMMARY_PIPELINE_PROGRESS_SECONDS="1")  # stderr is a file: plain progress lines
        _wait_for(proc, marker)
        (os.kill if sig == signal.SIGINT else os.killpg)(proc.pid, sig)
        proc.communicate(timeout=300)
        lines = _stderr(proc).rstrip().splitlines()
        ticks = [line for line in lines if re.match(r"  (\[[a-z ]+ \d+ s\]|Spark stage)", line)]
        assert any(re.match(r"  \[(read|classify|rebuild) \d+ s\] Spark stage \d+: [\d,]+/[\d,]+ tasks", line)
                   for line in ticks), lines
        assert len(lines) == len(ticks) + 1, [line for line in lines if line not in ticks]  # no traceback, no log
        err = lines[-1]
        assert proc.returncode == code, err
        name = "SIGINT (Ctrl-C)" if sig == signal.SIGINT else "SIGTERM"
        assert err.startswith("interrupted: run ") and f"was stopped by {name}" in err, err
        assert err.endswith("Run the same command again to complete the work.") or "before it wrote" in err, err
        if sig == signal.SIGINT:  # its commits were on its branches: main never moved
            assert "and undone (nothing had been published yet)" in err, err
        assert {t: state(spark, t) for t in data_tables(cfg)} == before
        row = ledger_rows(spark, cfg.ledger_table)[-1]
        assert (row["status"], row["error"]) == ("interrupted", f"interrupted by {name}")
        assert read_owner(spark, cfg.ledger_table) is None  # the lock was given back
    rerun = _start(config)
    out, _ = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, _stderr(rerun)
    assert "had stopped half-way" not in out  # nothing was left for it to repair
    assert_matches_oracle(spark, cfg, versions)
    assert [r["status"] for r in ledger_rows(spark, cfg.ledger_table)] == [
        "succeeded", "interrupted", "interrupted", "succeeded"]


def test_two_runs_started_together_never_both_write(spark: SparkSession, tmp_path: Path,
                                                   cli_in_process: Callable[..., int],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    cfg, config, versions = _setup(spark, tmp_path)
    load_source(spark, cfg, _batch(0))
    versions += _batch(0)
    first = _start(config)
    _wait_for(first, "New records to process")  # it holds the lock now
    second = _start(config)
    out2, _ = second.communicate(timeout=600)
    first.communicate(timeout=600)
    err2 = _stderr(second)
    assert first.returncode == 0, _stderr(first)
    if second.returncode == 2:  # the usual case: it met the lock
        assert "another run holds the lock on this pipeline's tables: run " in err2
        assert f"pid {first.pid}" in err2 and "Wait for it to finish" in err2
    else:  # it started so late that the first had finished: it found nothing left to do
        assert second.returncode == 0 and "No new records to process" in out2, err2
    assert_matches_oracle(spark, cfg, versions)
    rows = ledger_rows(spark, cfg.ledger_table)
    assert [r["status"] for r in rows][:2] == ["succeeded", "succeeded"]

    # The ledger commands as an operator types them (in this process: the runs above already start the CLI
    # as a user does, and each new JVM costs CI about 20 s).
    last = rows[-1]["run_id"]
    assert cli_in_process(["rollback", "--config", str(config), "--run-id", last]) == 0
    assert f"Rolled back run {last}" in capsys.readouterr().out
    assert cli_in_process(["runs", "--config", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Next incremental run reads versions after: 2026-03-01 ")
    assert lines[1] == f"Runs in {cfg.ledger_table} (newest first)"
    assert "rollback" in lines[3] and "succeeded" in lines[3] and last in lines[4] and "rolled_back" in lines[4]
