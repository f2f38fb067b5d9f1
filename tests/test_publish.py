"""Write, audit, publish (issue 17): a run stages its writes on a branch, audits them, then publishes; what it
published can be read back later (tags, run ids, timestamps), and its change record says which keys it changed.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from factories import T0, assert_matches_oracle, config_file, load_source, new_config, version
from summary_pipeline.errors import AuditError, SummaryPipelineError
from summary_pipeline.ops.changes import read_changes
from summary_pipeline.ops.inspect_account import inspect_account
from summary_pipeline.ops.maintain import maintain
from summary_pipeline.ops.validate import validate
from summary_pipeline.result import RunOptions
from summary_pipeline.runner import new_result, run
from summary_pipeline.store import protocol
from summary_pipeline.store.as_of import resolve
from summary_pipeline.store.ledger import ledger_rows
from summary_pipeline.store.refs import refs, run_branch
from summary_pipeline.store.snapshots import state

INCREMENTAL = RunOptions(mode="incremental")
LATER = T0 + dt.timedelta(days=30)


def _months(first: int, last: int) -> list[str]:
    return [f"2025-{m:02d}" for m in range(first, last + 1)]


def test_an_audit_failure_publishes_nothing_names_the_account_and_the_repaired_rerun_publishes(
        spark: SparkSession) -> None:
    cfg = new_config(history_length=6)
    versions = [version(a, m, 100 * a + i, ts=T0) for a in (1, 2) for i, m in enumerate(_months(1, 6))]
    load_source(spark, cfg, versions)
    run(spark, cfg, RunOptions(mode="initial"))
    good = state(spark, cfg.latest_history_table)
    # The corruption: account 1's latest row has its balance history shifted by one month.
    spark.sql(f"UPDATE {cfg.latest_history_table} SET balance_am_history = "
              "concat(array(CAST(NULL AS BIGINT)), slice(balance_am_history, 1, 5)) WHERE cons_acct_key = 1")
    batch = [version(1, "2025-07", 170, ts=LATER), version(2, "2025-07", 270, ts=LATER)]
    load_source(spark, cfg, batch)
    before = {t: state(spark, t) for t in protocol.data_tables(cfg)}

    with pytest.raises(AuditError, match=r"rows: 1 row\(s\), e\.g\. 1 2025-07 \(shifted \(balance_am_history\)\)"
                       ) as caught:
        run(spark, cfg, INCREMENTAL)
    assert caught.value.facts["accounts"] == ["1"]
    assert {t: state(spark, t) for t in protocol.data_tables(cfg)} == before  # main unchanged
    failed = ledger_rows(spark, cfg.ledger_table)[-1]
    assert failed["status"] == "failed" and "shifted" in failed["error"] and "1 2025-07" in failed["error"]
    branch = run_branch(failed["run_id"])
    assert branch in refs(spark, cfg.destination_table)  # left for inspection
    staged = inspect_account(spark, cfg, "1", as_of=resolve(spark, cfg, failed["run_id"]))
    assert staged.months[0]["month"] == "2025-07" and "not published" in str(staged.as_of)
    assert inspect_account(spark, cfg, "1").months[0]["month"] == "2025-06"

    # The repair: the latest row put back; the same command then publishes, and the branch is gone.
    spark.sql(f"CALL {cfg.catalog_name}.system.set_current_snapshot('{cfg.latest_history_table}', {good})")
    result = run(spark, cfg, INCREMENTAL)
    assert result.status == "succeeded" and result.metrics["audit_checks"] == 3
    assert not any(r.startswith("sp_run_") for t in protocol.data_tables(cfg) for r in refs(spark, t))
    assert_matches_oracle(spark, cfg, versions + batch)


@pytest.mark.slow
def test_no_audit_publishes_what_the_audit_would_refuse(spark: SparkSession) -> None:
    cfg = new_config(history_length=6, audit=False)
    versions = [version(1, m, i, ts=T0) for i, m in enumerate(_months(1, 3))]
    load_source(spark, cfg, versions)
    run(spark, cfg, RunOptions(mode="initial"))
    spark.sql(f"UPDATE {cfg.latest_history_table} SET balance_am_history = "
              "concat(array(CAST(NULL AS BIGINT)), slice(balance_am_history, 1, 5))")
    load_source(spark, cfg, [version(1, "2025-04", 9, ts=LATER)])
    result = run(spark, cfg, INCREMENTAL)  # the config turned the audit off
    assert result.status == "succeeded" and "audit" not in result.timings
    assert not validate(spark, cfg).ok


def _changed(spark: SparkSession, cfg: Any, run_id: str) -> set[tuple[int, str, str, str]]:
    record = read_changes(spark, cfg, run_id)
    return {(r[cfg.key], r[cfg.month], r["table_name"], r["kind"]) for r in record.rows}


@pytest.mark.slow
def test_change_records_tags_and_as_of_reads(spark: SparkSession, tmp_path: Path,
                                            cli_in_process: Callable[..., int],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    cfg = new_config(history_length=6, tags={"retain_days": 400})
    versions = [version(a, m, 10 * a + i, ts=T0) for a in (1, 2, 3) for i, m in enumerate(_months(1, 3))]
    load_source(spark, cfg, versions)
    first = run(spark, cfg, RunOptions(mode="initial"))
    assert first.tags == ["report-2025-03"]
    assert read_changes(spark, cfg, first.run_id).note.startswith("a full rebuild")  # type: ignore[union-attr]
    time.sleep(1.1)
    between = dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    batch = [version(1, "2025-04", 14, ts=LATER),  # forward
             version(2, "2025-02", 99, ts=LATER),  # a correction: 2025-02 and 2025-03 rewritten
             version(3, "2025-03", 0, ts=LATER, soft_del_cd="1"),  # a delete of the latest month
             version(4, "2025-04", 40, ts=LATER)]  # a new account
    load_source(spark, cfg, batch)
    second = run(spark, cfg, INCREMENTAL)

    assert _changed(spark, cfg, second.run_id) == {
        (1, "2025-04", "summary", "inserted"), (1, "2025-04", "latest_summary", "latest moved"),
        (2, "2025-02", "summary", "updated"), (2, "2025-03", "summary", "updated"),
        (2, "2025-03", "latest_summary", "latest moved"),
        (3, "2025-03", "summary", "tombstoned"), (3, "2025-02", "latest_summary", "latest moved"),
        (4, "2025-04", "summary", "inserted"), (4, "2025-04", "latest_summary", "latest moved")}
    assert second.metrics["changes_inserted"] == 2 and second.metrics["changes_latest_moved"] == 4
    config = str(config_file(cfg, tmp_path))
    capsys.readouterr()
    assert cli_in_process(["changes", "--config", config, "--run-id", second.run_id, "--output", "json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 9 and json.loads(lines[0])["run_id"] == second.run_id
    assert cli_in_process(["changes", "--config", config, "--run-id", second.run_id, "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert "9 row(s) changed" in out and "summary inserted: 2" in out and "the first 2" in out
    assert cli_in_process(["inspect", "--config", config, "--account", "1", "--as-of", "report-2025-03"]) == 0
    assert "Reading the tables tag report-2025-03" in capsys.readouterr().out

    # The tag names the published state of both tables; every reference reads the same state back.
    assert second.tags == ["report-2025-04"]
    for table in (cfg.destination_table, cfg.latest_history_table):
        assert refs(spark, table)["report-2025-04"] == ("TAG", second.snapshots_after[table])
        assert refs(spark, table)["report-2025-03"] == ("TAG", first.snapshots_after[table])
    retention = spark.sql(f"SELECT max_reference_age_in_ms FROM {cfg.destination_table}.refs "
                          "WHERE name = 'report-2025-04'").collect()[0][0]
    assert retention == 400 * 24 * 3600 * 1000  # tags.retain_days
    for reference in ("report-2025-03", first.run_id, between):
        as_of = resolve(spark, cfg, reference)
        assert [m["month"] for m in inspect_account(spark, cfg, "1", as_of=as_of).months] == _months(1, 3)[::-1]
        report = validate(spark, cfg, as_of=as_of)
        assert report.ok and report.summary_rows == 9 and report.latest_rows == 3
    assert resolve(spark, cfg, "report-2025-04").read(spark, cfg.destination_table).count() == 11
    with pytest.raises(SummaryPipelineError, match="tags: report-2025-03, report-2025-04"):
        resolve(spark, cfg, "no-such-thing")

    # maintain expires what no kept run needs, but never a tagged snapshot.
    maintain(spark, cfg, new_result("maintain", cfg, {}), keep_runs=1, say=lambda _: None)
    assert validate(spark, cfg, as_of=resolve(spark, cfg, "report-2025-03")).summary_rows == 9

    # Rolling the run back removes its change record and its tag, with its rows.
    protocol.rollback(spark, cfg, new_result("rollback", cfg, {}), second.run_id, False, lambda _: None)
    undone = read_changes(spark, cfg, second.run_id)
    assert undone.rows == [] and undone.note is not None and undone.note.startswith("rolled back")
    assert "report-2025-04" not in refs(spark, cfg.destination_table)
    assert_matches_oracle(spark, cfg, versions)
    third = run(spark, cfg, INCREMENTAL)  # the month published again is tagged again
    assert third.tags == ["report-2025-04"]
    assert_matches_oracle(spark, cfg, versions + batch)
