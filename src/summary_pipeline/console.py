"""Everything the CLI prints for a person (and the JSON it prints for machines). Nothing else prints.

The layout follows the seed's console output: a banner, the records to process, the case counts, one line per
phase, the total minutes.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any, TextIO

from summary_pipeline.result import RunResult

if TYPE_CHECKING:
    from summary_pipeline.ops.changes import ChangeRecord
    from summary_pipeline.ops.inspect_account import AccountView
    from summary_pipeline.ops.validate import Validation
    from summary_pipeline.progress import Ticker
    from summary_pipeline.tools.benchmark import Report

__all__ = ["Console"]

_progress = logging.getLogger("summary_pipeline.progress")

RULE = "=" * 80


def _when(moment: dt.datetime | None) -> str:
    """A ledger time as the tables show it, or blank."""
    return f"{moment:%Y-%m-%d %H:%M:%S}" if moment else ""


def _iso(value: object) -> str:
    """JSON for the ledger's times (``json.dumps`` default)."""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")

_TITLES = {
    "initial": "INITIAL MODE (FULL REBUILD)",
    "incremental": "INCREMENTAL MODE (PRODUCTION)",
    "forward": "FORWARD MODE",
    "backfill": "BACKFILL MODE",
    "rollback": "ROLLBACK",
    "maintain": "TABLE MAINTENANCE",
    "validate": "VALIDATE",
    "evolve": "EVOLVE (APPLY A CONFIG CHANGE)",
}


class Console:
    """Human output on stdout (or one JSON report with ``json_output``); errors on stderr.

    With ``json_logs`` the human lines become log records of the ``summary_pipeline.progress`` logger (which the
    CLI formats as JSON objects on stderr), so a log collector gets every line machine-readable.
    """

    def __init__(self, json_output: bool = False, out: TextIO | None = None, err: TextIO | None = None,
                 json_logs: bool = False) -> None:
        self.json_output = json_output
        self.json_logs = json_logs
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        #: Spark's progress on stderr while a command runs (the CLI sets it): output lines clear it first.
        self.ticker: Ticker | None = None

    def _print(self, text: str = "") -> None:
        with self.ticker.printing() if self.ticker else nullcontext():
            if self.json_logs:
                if text.strip() and set(text.strip()) != {"="}:
                    _progress.info(text.strip())
            elif not self.json_output:
                print(text, file=self.out, flush=True)

    def tick(self, line: str) -> None:
        """A plain progress line while Spark works (:class:`~summary_pipeline.progress.Ticker`), on stderr."""
        self.note(line if self.json_logs else f"  {line}")

    def progress(self, line: str) -> None:
        """One progress line of a run (the runner's :data:`~summary_pipeline.runner.Progress`)."""
        self._print(line)

    def note(self, line: str) -> None:
        """A line about the tool rather than the command's work, on stderr (so stdout stays the same from one
        run of a command to the next)."""
        with self.ticker.printing() if self.ticker else nullcontext():
            if self.json_logs:
                _progress.info(line)
            else:
                print(line, file=self.err, flush=True)

    def banner(self, mode: str, dry_run: bool = False) -> None:
        """The seed's banner for a run."""
        title = _TITLES.get(mode, mode.upper())
        self._print(RULE)
        self._print(f"SUMMARY PIPELINE - {title}{' - DRY RUN' if dry_run else ''}")
        self._print(RULE)

    def ignored_keys(self, keys: list[str]) -> None:
        """Report, once, seed keys that configure nothing here."""
        if keys:
            self._print(f"Note: config keys that configure nothing in this product are ignored: {', '.join(keys)}")

    def finished(self, result: RunResult) -> None:
        """The closing lines: what was written (or planned) and the total time."""
        if self.json_output:
            print(json.dumps(result.as_dict(), default=str, sort_keys=True), file=self.out, flush=True)
            return
        self._print("")
        if result.dry_run:
            self._print("Dry run: nothing was written. The run would write:")
        self._print(f"  summary rows: {result.summary_rows_written:,}")
        self._print(f"  latest_summary rows: {result.latest_rows_written:,}")
        if result.first_month:
            self._print(f"  accounts: {result.accounts:,}, months {result.first_month} to {result.last_month}")
        minutes = result.timings.get("total", 0.0) / 60
        verb = "planned" if result.dry_run else "completed"
        self._print(f"{result.mode.capitalize()} processing {verb} in {minutes:.2f} minutes")
        self._print(RULE)

    def table(self, title: str, rows: list[dict[str, Any]]) -> None:
        """A small aligned table (used by the demo to show a few rows)."""
        if self.json_output:
            print(json.dumps({"title": title, "rows": rows}, default=str), file=self.out, flush=True)
            return
        self._print(title)
        if not rows:
            self._print("  (no rows)")
            return
        cols = list(rows[0])
        cells = [[str(r.get(c)) for c in cols] for r in rows]
        widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
        for row in [cols, *cells]:  # no trailing blanks: they show in diffs and copied text
            self._print(("  " + "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True))).rstrip())

    def runs(self, ledger: str, rows: list[dict[str, Any]], watermark: dt.datetime | None) -> None:
        """The ledger's runs, newest first, and the watermark the next incremental run reads from.

        Only a succeeded run's watermark and row counts took effect: a failed or rolled-back run's writes were
        undone, so its watermark is not shown and its counts are marked ``undone``. In JSON, numbers are
        numbers, times ISO 8601 and missing values null.
        """
        runs = [{
            "run_id": r["run_id"], "mode": r["mode"], "status": r["status"],
            "started": r["started_at"], "seconds": (r.get("timings") or {}).get("total"),
            "watermark": r["watermark_committed"] if r["status"] == "succeeded" else None,
            "summary_rows": r["summary_rows_written"], "latest_rows": r["latest_rows_written"],
            "undone": r["status"] in ("failed", "interrupted", "rolled_back"), "error": r["error"],
        } for r in rows]
        if self.json_output:
            print(json.dumps({"ledger": ledger, "watermark": watermark, "runs": runs}, default=_iso),
                  file=self.out, flush=True)
            return
        self._print(f"Next incremental run reads versions after: {_when(watermark) or '(none: run initial)'}")
        self.table(f"Runs in {ledger} (newest first)", [{
            **{k: r[k] for k in ("run_id", "mode", "status")},
            "started": _when(r["started"]), "seconds": "" if r["seconds"] is None else f"{r['seconds']:.0f}",
            "watermark": _when(r["watermark"]),
            **{k: "" if r[k] is None else f"{r[k]:,}" + (" undone" if r["undone"] and r[k] else "")
               for k in ("summary_rows", "latest_rows")},
            "error": (r["error"] or "")[:60],
        } for r in runs])

    def benchmark(self, report: Report, path: str) -> None:
        """The benchmark's one table: each phase, then each ratio against its target."""
        from summary_pipeline.tools.benchmark import TARGETS, meets

        if self.json_output:
            print(json.dumps(report.as_dict(), sort_keys=True), file=self.out, flush=True)
            return
        self._print("")
        kept = " (again, on the tables an earlier call kept)" if report.reused else ""
        self.table(f"Benchmark {report.profile}: {report.accounts:,} accounts, {report.months} and "
                   f"{report.short_months} months of history, H={report.history_length}{kept}", [
            {"phase": p.name, "seconds": f"{p.seconds:.1f}", "rows": f"{p.rows:,} {p.unit}",
             "rows/s": f"{p.per_second:,.0f}", "peak heap MiB": p.peak_heap_mib,
             "Spark jobs": "" if p.spark_jobs is None else p.spark_jobs} for p in report.phases])
        self._print("")
        self.table("Targets", [
            {"ratio": name, "value": f"{value:,.2f}", "target": f"{TARGETS[name][0]} {TARGETS[name][1]:,}",
             "met": "yes" if meets(name, value) else "NO"} for name, value in report.ratios.items()])
        for name, ok in report.checks.items():
            self._print(f"{name}: {'yes' if ok else 'NO'}")
        self._print(f"Figures written to {path}")

    def validation(self, report: Validation) -> None:
        """The checklist's figures, then each check: OK, or FAIL with its count and a few offending keys."""
        if self.json_output:
            print(json.dumps(report.as_dict(), sort_keys=True), file=self.out, flush=True)
            return
        scope = f"a {report.sample:.1%} sample of accounts" if report.sample else "every account"
        if report.as_of:
            self._print(f"Checking the tables {report.as_of}")
        self._print(f"{report.summary_table}: {report.summary_rows:,} rows ({scope}), latest month "
                    f"{report.latest_month}, latest base_ts {report.latest_base_ts}")
        self._print(f"{report.latest_table}: {report.latest_rows:,} rows")
        self._print("")
        for check in report.checks:
            status = "OK  " if check.ok else "FAIL"
            count = "" if check.ok else f": {check.violations:,} violation(s)"
            self._print(f"{status} {check.name} ({check.description}){count}")
            for example in check.examples:
                self._print("       " + ", ".join(f"{k}={v}" for k, v in example.items()))
        self._print("")
        failed = [c.name for c in report.checks if not c.ok]
        self._print(f"Validation failed: {', '.join(failed)}" if failed else "Validation passed: every check holds")
        self._print(RULE)

    def changes(self, record: ChangeRecord) -> None:
        """A run's change record: JSON lines, one per row; or its counts, then its first rows."""
        if self.json_output:
            for row in record.rows:
                print(json.dumps(row, default=str, sort_keys=True), file=self.out, flush=True)
            return
        self._print(f"Run {record.run_id} ({record.mode}, {record.status}): {record.total:,} row(s) changed, "
                    f"recorded in {record.table}" + (f"; {record.note}" if record.note else ""))
        for name, count in sorted(record.counts.items()):
            self._print(f"  {name}: {count:,}")
        if record.rows:
            self._print("")
            shown = f"the first {len(record.rows):,}" if len(record.rows) < record.total else "every row"
            self.table(f"Changed keys ({shown}; --output json prints them all)",
                       [{k: v for k, v in row.items() if k != "run_id"} for row in record.rows])

    def account(self, view: AccountView) -> None:
        """One account: its summary months (newest first), then its latest row's history, month by month."""
        if self.json_output:
            print(json.dumps(view.as_dict(), default=str, sort_keys=True), file=self.out, flush=True)
            return
        span = f"{view.months[-1]['month']} to {view.months[0]['month']}" if view.months else "none"
        if view.as_of:
            self._print(f"Reading the tables {view.as_of}")
        self._print(f"Account {view.key}: {len(view.months)} month(s) in {view.summary_table} ({span}); "
                    f"{view.latest_table}: {view.latest_month or 'no row'}"
                    + (f", base_ts {view.latest_base_ts}" if view.latest_month else ""))
        self._print("")
        self.table(f"{view.summary_table} rows, newest first (rolling columns show the month's own value)",
                   [{k: "" if v is None else v for k, v in row.items()} for row in view.months])
        if view.latest_month:
            self._print("")
            self.table(f"History arrays of the {view.latest_table} row ({view.latest_month}): index k is k "
                       "months earlier; months with no value in any array are left out",
                       [{k: "" if v is None else v for k, v in row.items()} for row in view.history])

    def error(self, err: BaseException, hint: str | None = None) -> None:
        """One clear error message (JSON on stdout too when asked), never a bare stack trace. A command a
        signal stopped says ``interrupted:`` instead of ``error:``."""
        text = str(err)
        status = getattr(err, "status", None) or ("interrupted" if isinstance(err, KeyboardInterrupt) else "failed")
        if self.json_output:
            facts = getattr(err, "facts", {})
            print(json.dumps({"status": status, "error": text, "type": type(err).__name__,
                              **({"facts": facts} if facts else {})}, default=str), file=self.out, flush=True)
        if self.json_logs:
            _progress.error(text + (f" ({hint})" if hint else ""))
            return
        print(f"{'interrupted' if status == 'interrupted' else 'error'}: {text}", file=self.err, flush=True)
        if hint:
            print(hint, file=self.err, flush=True)
