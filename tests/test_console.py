"""The console's human output, checked against golden files in tests/golden/ (no JVM needed).

A change to what a user reads shows up as a diff here. After a deliberate change, write the files again with
``UPDATE_GOLDEN=1 python -m pytest tests/test_console.py`` and review the diff.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from summary_pipeline.console import Console
from summary_pipeline.errors import LockedError
from summary_pipeline.ops.inspect_account import AccountView
from summary_pipeline.ops.validate import CheckResult, Validation
from summary_pipeline.result import RunResult
from summary_pipeline.tools.benchmark import Phase, Report

GOLDEN = Path(__file__).parent / "golden"
T = dt.datetime(2026, 1, 10, 8, 30)


def _run(console: Console) -> None:
    result = RunResult(run_id="0123456789abcdef", mode="incremental", summary_rows_written=12_345,
                       latest_rows_written=1_234, accounts=1_500, first_month="2025-11", last_month="2026-01",
                       timings={"total": 93.0})
    console.banner("incremental")
    console.ignored_keys(["performance", "backfill_settings"])
    for line in ("Processing new data since: 2026-01-09 08:30:00", "New records to process: 2,633", "",
                 "Classifying records...", "Case I (New accounts): 100", "Case II (Forward entries): 2,400"):
        console.progress(line)
    console.finished(result)


def _dry_run(console: Console) -> None:
    console.banner("incremental", dry_run=True)
    console.finished(RunResult(run_id="0123456789abcdef", mode="incremental", dry_run=True,
                               summary_rows_written=2, latest_rows_written=1, timings={"total": 12.0}))


def _runs(console: Console) -> None:
    console.runs("default.summary_runs", [
        {"run_id": "b", "mode": "incremental", "status": "failed", "started_at": T, "timings": {"total": 40.2},
         "watermark_committed": T, "summary_rows_written": 3_000, "latest_rows_written": 20,
         "error": "undone by run c: the run stopped before its commit point"},
        {"run_id": "a", "mode": "initial", "status": "succeeded", "started_at": T - dt.timedelta(days=1),
         "timings": {"total": 120.0}, "watermark_committed": T - dt.timedelta(days=1),
         "summary_rows_written": 1_000, "latest_rows_written": 10, "error": None},
    ], T - dt.timedelta(days=1))


def _validation(console: Console) -> None:
    console.validation(Validation(
        summary_table="default.summary", latest_table="default.latest_summary", sample=None, summary_rows=1_000,
        latest_rows=10, latest_month="2026-01", latest_base_ts=T, checks=[
            CheckResult("unique keys", "one summary row per account and month", 0),
            CheckResult("history arrays", "every history array has H elements", 2,
                        [{"cons_acct_key": 7, "rpt_as_of_mo": "2025-12"}, {"cons_acct_key": 9,
                                                                           "rpt_as_of_mo": "2026-01"}]),
        ]))


def _account(console: Console) -> None:
    console.account(AccountView(
        key="7", summary_table="default.summary", latest_table="default.latest_summary", rolling=["balance_am"],
        months=[{"month": "2026-01", "balance_am": 120, "soft_del_cd": None},
                {"month": "2025-12", "balance_am": None, "soft_del_cd": "1"}],
        latest_month="2026-01", latest_base_ts=T,
        history=[{"k": 0, "month": "2026-01", "balance_am": 120}, {"k": 2, "month": "2025-11", "balance_am": 90}]))


def _benchmark(console: Console) -> None:
    report = Report(profile="small", accounts=2_000, months=120, short_months=30, history_length=36,
                    started_at="2026-12-03T10:00:00+00:00", phases=[
                        Phase("incremental 120 months", 20.5, 2_633, "batch records", 900.0, spark_jobs=80),
                        Phase("I/O floor 120 months", 8.2, 2_633, "batch records", 700.0)],
                    ratios={"incremental_over_floor": 2.5}, checks={"incremental_equals_full_rebuild": True})
    console.benchmark(report, "benchmark-small.json")


def _error(console: Console) -> None:
    console.error(LockedError("the lock is held by run x (incremental, host h, pid 1)"), hint="Wait for it.")


CASES: dict[str, Callable[[Console], None]] = {
    "run": _run, "dry_run": _dry_run, "runs": _runs, "validation": _validation, "account": _account,
    "benchmark": _benchmark, "error": _error,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_human_output_matches_its_golden_file(name: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    CASES[name](Console(out=out, err=err))
    text = out.getvalue() + ("--- stderr ---\n" + err.getvalue() if err.getvalue() else "")
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{path} differs; if the change is meant, run with UPDATE_GOLDEN=1"


def test_an_error_in_json_carries_its_facts() -> None:
    out, err = io.StringIO(), io.StringIO()
    Console(json_output=True, out=out, err=err).error(
        LockedError("the lock is held by run x", table="default.summary_runs", holder="run x", holder_run_id="x"))
    assert json.loads(out.getvalue()) == {
        "status": "failed", "error": "the lock is held by run x", "type": "LockedError",
        "facts": {"table": "default.summary_runs", "holder": "run x", "holder_run_id": "x"}}


def test_runs_in_json_are_numbers_times_and_nulls() -> None:
    out = io.StringIO()
    _runs(Console(json_output=True, out=out))
    report = json.loads(out.getvalue())
    assert report["watermark"] == (T - dt.timedelta(days=1)).isoformat()
    failed, first = report["runs"]
    assert failed == {"run_id": "b", "mode": "incremental", "status": "failed", "started": T.isoformat(),
                      "seconds": 40.2, "watermark": None, "summary_rows": 3000, "latest_rows": 20, "undone": True,
                      "error": "undone by run c: the run stopped before its commit point"}
    assert first["undone"] is False and first["summary_rows"] == 1000 and first["error"] is None
