"""A real catalog: Iceberg's JDBC catalog on a PostgreSQL server on 127.0.0.1, and the faults users meet there.

The scenario, crash and lock tests run on this catalog too (the ``any_catalog`` fixture and test_incremental's
``scenario``). Here: a commit the catalog accepted whose answer was lost, for every commit of a run; the catalog
unreachable at start, mid-run and at the commit point; two processes on two hosts racing; no secret in any log
or in the ledger. A lost answer is simulated right after the real commit (the step hook runs after it), as the
error a client sees when its connection drops before the catalog's reply.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from factories import assert_matches_oracle, fault, load_source, reference_raw, version
from pgserver import PgServer
from summary_pipeline.config import PipelineConfig
from summary_pipeline.errors import spark_error_message
from summary_pipeline.result import RunOptions
from summary_pipeline.runner import run
from summary_pipeline.store.ledger import ledger_rows
from summary_pipeline.store.lock import HOST_ENV, read_owner
from summary_pipeline.store.protocol import STEPS, data_tables
from summary_pipeline.store.snapshots import state

pytestmark = [pytest.mark.spark]

T0 = dt.datetime(2026, 2, 1, 8)
INCREMENTAL = RunOptions(mode="incremental")


class CommitStateUnknown(RuntimeError):
    """What a client raises when its connection to the catalog dropped after the commit was sent."""

    def __init__(self, step: str) -> None:
        super().__init__(f"CommitStateUnknownException: the connection to the catalog was lost at {step}; "
                         "cannot tell whether the commit succeeded")


def _initial() -> list[dict[str, Any]]:
    return [version(a, m, a * 10, ts=T0) for a in (1, 2, 3) for m in ("2025-10", "2025-11", "2025-12")]


def _batch(i: int) -> list[dict[str, Any]]:
    """Day ``i``: a new month for accounts 1-3, a correction, a new account, a bad row every day."""
    ts = T0 + dt.timedelta(hours=i + 1)
    month = f"2026-{i % 12 + 1:02d}" if i < 12 else f"2027-{i % 12 + 1:02d}"
    rows = [version(a, month, 1000 * a + i, ts=ts) for a in (1, 2, 3)]
    rows += [version(1, "2025-11", 500 + i, ts=ts), version(200 + i, month, i, ts=ts)]
    rows += [version(3, "2026-13", 1, ts=ts)]  # quarantined
    return rows


def _built(spark: SparkSession, make: Callable[..., PipelineConfig]) -> tuple[PipelineConfig, list[dict[str, Any]]]:
    cfg = make(history_length=6)
    versions = _initial()
    load_source(spark, cfg, versions)
    run(spark, cfg, RunOptions(mode="initial"))
    return cfg, versions


@pytest.mark.slow
def test_a_commit_whose_answer_was_lost_is_never_applied_twice(spark: SparkSession,
                                                              pg_catalog: Callable[..., PipelineConfig]) -> None:
    """After each commit of a run (lock, ledger rows, quarantine, each staged table, each fast-forward, the
    commit point, the lock's release) the client hears an error instead of the catalog's answer. The run then
    undoes what it can; the plain rerun converges, and every version counts once."""
    cfg, versions = _built(spark, pg_catalog)
    steps = [s for s in STEPS if s != "audited"]  # the audit commits nothing
    seen = {r["run_id"] for r in ledger_rows(spark, cfg.ledger_table)}
    for i, step in enumerate(steps):
        load_source(spark, cfg, _batch(i))
        versions += _batch(i)
        with pytest.raises(CommitStateUnknown):
            run(spark, cfg, INCREMENTAL, on_step=fault(step, CommitStateUnknown(step)))
        # Past the commit point the catalog has the run succeeded, and its failure does not overwrite that;
        # before it, the run is recorded failed (a run that failed taking the lock has no row).
        rows = ledger_rows(spark, cfg.ledger_table)
        mine = [r["status"] for r in rows if r["run_id"] not in seen]
        seen |= {r["run_id"] for r in rows}
        assert mine == (["succeeded"] if step in ("recorded", "released") else [] if step == "locked"
                        else ["failed"]), step
        # A reader who follows the ledger sees a whole run's state: main is the last succeeded run's.
        last = ledger_rows(spark, cfg.ledger_table, "succeeded")[-1]
        for table in data_tables(cfg):
            if table != cfg.changes_table:
                assert state(spark, table) == last["snapshots_after"][table], (step, table)
    run(spark, cfg, INCREMENTAL)
    assert_matches_oracle(spark, cfg, versions)
    assert read_owner(spark, cfg.ledger_table) is None
    assert spark.table(cfg.quarantine).count() == len(steps)  # each bad row kept once
    statuses = [r["status"] for r in ledger_rows(spark, cfg.ledger_table)]
    assert "running" not in statuses


@pytest.mark.slow
def test_an_unreachable_catalog_is_one_clear_message_and_the_rerun_converges(
        spark: SparkSession, pg_catalog: Callable[..., PipelineConfig], pg_server: PgServer) -> None:
    cfg, versions = _built(spark, pg_catalog)
    before = {t: state(spark, t) for t in data_tables(cfg)}
    for i, step in enumerate(("start", "latest_summary", "published")):
        load_source(spark, cfg, _batch(i))
        versions += _batch(i)
        if step == "start":
            pg_server.stop()
        with pytest.raises(Exception) as caught:
            run(spark, cfg, INCREMENTAL, on_step=fault(step, pg_server.stop))
        message = spark_error_message(caught.value) or str(caught.value)
        assert message.startswith("the catalog cannot be reached"), message
        assert "run the same command again" in message
        pg_server.start()
        # Nothing half-written is visible: main is where the last succeeded run left it.
        last = ledger_rows(spark, cfg.ledger_table, "succeeded")[-1]
        assert {t: last["snapshots_after"].get(t) for t in before if t != cfg.changes_table} == {
            t: s for t, s in before.items() if t != cfg.changes_table} or step == "published"
    run(spark, cfg, INCREMENTAL)
    assert_matches_oracle(spark, cfg, versions)
    assert read_owner(spark, cfg.ledger_table) is None


#: The CLI, stopping at one step (argv[1]) until a file (argv[2]) exists: a run that holds the lock for as long
#: as the test needs.
_HOLDING = """
import os, sys, time
from summary_pipeline import cli
from summary_pipeline.store import protocol
step, at, release = protocol.RunGuard.step, sys.argv.pop(1), sys.argv.pop(1)
def holding(self, name):
    step(self, name)
    if name == at:
        print(f"holding at {name}", flush=True)
        while not os.path.exists(release):
            time.sleep(0.2)
protocol.RunGuard.step = holding
sys.exit(cli.main(sys.argv[1:]))
"""


def _config_file(cfg: PipelineConfig, directory: Path) -> Path:
    """The config as an operator writes it: two-part table names in the config's catalog, credentials named
    by environment variable only."""
    raw = reference_raw()
    raw.update({k: getattr(cfg, k).removeprefix("pg.") for k in
                ("source_table", "destination_table", "latest_history_table")},
               history_length=cfg.history_length, catalog_name="pg",
               catalog=cfg.catalog.model_dump(exclude_defaults=True))
    for r in raw["rolling_columns"]:
        r["num_cols"] = cfg.history_length
    path = directory / "config.json"
    path.write_text(json.dumps(raw))
    return path


@pytest.mark.slow
def test_two_hosts_race_and_no_secret_reaches_a_log_or_the_ledger(
        spark: SparkSession, pg_catalog: Callable[..., PipelineConfig], pg_server: PgServer, tmp_path: Path) -> None:
    cfg, versions = _built(spark, pg_catalog)
    load_source(spark, cfg, _batch(0))
    versions += _batch(0)
    config = _config_file(cfg, tmp_path)
    assert pg_server.password not in config.read_text()
    release = tmp_path / "release"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    logs = [tmp_path / "a.err", tmp_path / "b.err"]
    with open(logs[0], "w") as err_a:
        first = subprocess.Popen([sys.executable, "-c", _HOLDING, "summary", str(release), "--config", str(config),
                                  "--verbose"], stdout=subprocess.PIPE, stderr=err_a, text=True,
                                 env={**env, HOST_ENV: "host-a"})
    assert first.stdout is not None
    out_a = []
    for line in first.stdout:
        out_a.append(line)
        if "holding at summary" in line:
            break
    else:
        pytest.fail("".join(out_a) + logs[0].read_text())
    with open(logs[1], "w") as err_b:
        second = subprocess.run([sys.executable, "-m", "summary_pipeline", "--config", str(config), "--verbose"],
                                stdout=subprocess.PIPE, stderr=err_b, text=True, env={**env, HOST_ENV: "host-b"},
                                timeout=600)
    release.touch()
    rest, _ = first.communicate(timeout=600)
    out_a.append(rest)
    assert first.returncode == 0, logs[0].read_text()[-3000:]
    assert second.returncode == 2, logs[1].read_text()[-3000:]
    refused = logs[1].read_text()
    assert "another run holds the lock" in refused and "on host host-a" in refused
    assert_matches_oracle(spark, cfg, versions)
    rows = ledger_rows(spark, cfg.ledger_table)
    assert [(r["status"], r["host"]) for r in rows][-1] == ("succeeded", "host-a")

    # No secret anywhere: the runs' output and Spark's own log (--verbose: INFO up), every ledger column, the
    # tables' metadata files.
    seen = "".join(out_a) + second.stdout + "".join(p.read_text() for p in logs)
    assert pg_server.password not in seen
    assert all(pg_server.password not in json.dumps(r, default=str) for r in rows)
    warehouse = Path(cfg.catalog.warehouse or "")
    assert not [p for p in warehouse.rglob("*.json") if pg_server.password in p.read_text()]


def test_a_catalog_block_defines_the_catalog_and_secrets_come_from_the_environment(
        pg_server: PgServer, pg_catalog: Callable[..., PipelineConfig]) -> None:
    from summary_pipeline.errors import ConfigError, SummaryPipelineError
    from summary_pipeline.spark import catalog_settings

    cfg = pg_catalog()
    settings = catalog_settings(cfg, environ={"SP_TEST_CATALOG_USER": "u", "SP_TEST_CATALOG_PASSWORD": "p"})
    assert settings["spark.sql.catalog.pg.type"] == "jdbc"
    assert settings["spark.sql.catalog.pg.uri"] == pg_server.uri
    assert settings["spark.sql.catalog.pg.jdbc.password"] == "p"
    assert settings["spark.sql.defaultCatalog"] == "pg"
    with pytest.raises(SummaryPipelineError, match="environment variable SP_TEST_CATALOG_PASSWORD"):
        catalog_settings(cfg, environ={"SP_TEST_CATALOG_USER": "u"})
    for block, says in (({"type": "jdbc", "uri": pg_server.uri + "?password=x", "warehouse": "w"}, "holds a secret"),
                        ({"type": "jdbc", "uri": pg_server.uri, "warehouse": "w",
                          "properties": {"jdbc.password": "x"}}, "look like secrets"),
                        ({"type": "jdbc", "warehouse": "w"}, "catalog.uri is required"),
                        ({"type": "glue"}, "catalog.warehouse is required"),
                        ({"type": "jdbc", "uri": pg_server.uri, "warehouse": "w",
                          "secrets_env": {"jdbc.password": "hunter2!"}}, "name of an environment variable")):
        with pytest.raises(ConfigError, match=says) as caught:
            pg_catalog(catalog=block)
        assert "x" not in str(caught.value).split("holds a secret")[0][-3:]
        assert "hunter2" not in str(caught.value)

