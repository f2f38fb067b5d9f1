"""The commit protocol: how a run changes the tables so that a kill at any instant is repaired by a rerun.

Every run that writes goes through a :class:`RunGuard`:

1. take the lock (:mod:`summary_pipeline.store.lock`); if its holder is provably gone, take it over;
2. finish a rollback that died, then *settle*: put summary, latest_summary and the deletes table back to the
   latest succeeded run's ``snapshots_after``, undoing only commits of runs that did not succeed; mark runs
   still shown ``running`` (they died) ``failed``;
3. record this run as ``running`` with each table's snapshot id at step 2 (its *before*), at the latest just
   before its first write (a run that finds nothing to do writes its row once, at step 5);
4. commit each table once, on the run's own branch of the table (:mod:`summary_pipeline.store.refs`), each
   commit tagged with the run id and checked first against a lost lock and a concurrent writer; readers of
   main see none of it yet;
5. audit the staged state (:mod:`summary_pipeline.ops.audit`), then *publish*: fast-forward each table's main to
   its branch, one table after the other;
6. record the run ``succeeded`` (only if its row still says ``running``) with the snapshot ids after and the
   new watermark: the commit point;
7. remove the run's branches and give the lock back.

A failure at any point after 3 settles the tables before the error is reported (before 5's first fast-forward,
main is as it was; the run's branches stay for inspection until the next run removes them); so does Ctrl-C or
SIGTERM (the CLI raises it at a safe point, :mod:`summary_pipeline.interrupts`), and the run is then recorded
``interrupted``.
From step 6 on, a signal lets the run finish. A kill leaves the ``running`` row for step 2 of the next run.
Either way, the tables return to the last succeeded run's state, and the rerun then does the whole run again.
The watermark lives in the ledger, so it cannot move unless the run reached step 6. The quarantine is a
deduplicated log and is never undone: a rerun adds nothing it already has.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from functools import partial
from types import TracebackType
from typing import Any, TypeVar

from pyspark.sql import SparkSession

from summary_pipeline import interrupts
from summary_pipeline.config import PipelineConfig
from summary_pipeline.definition import DEFINITION_PROPERTY, FINGERPRINT_PROPERTY, fingerprint, recorded_definition
from summary_pipeline.errors import (
    ConflictError,
    LockLostError,
    RestoreError,
    RollbackRefusedError,
    RunInterruptedError,
    SummaryPipelineError,
    describe,
    is_commit_conflict,
)
from summary_pipeline.progress import phase
from summary_pipeline.result import RunResult
from summary_pipeline.store.ledger import committed_watermark, ensure_ledger, ledger_rows, mark, record
from summary_pipeline.store.lock import RunLock
from summary_pipeline.store.refs import (
    at_ref,
    drop_ref,
    drop_run_branches,
    drop_tags_of,
    ensure_branch,
    fast_forward,
    run_branch,
)
from summary_pipeline.store.snapshots import RUN_ID_PROPERTY, restore, set_properties, state, tagged

__all__ = ["STEPS", "RunGuard", "StepHook", "data_tables", "mark_definition", "rollback", "rollback_plan",
           "settle_plan"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The step boundaries of a run, in order (:meth:`RunGuard.step`). Tests inject faults at each.
STEPS = ("locked", "started", "quarantine", "summary", "latest_summary", "deletes", "changes", "audited",
         "published_summary", "published", "recorded", "released")

#: Called with each step name as a run passes it: None in production; tests raise from it to simulate kills.
StepHook = Callable[[str], None]


def data_tables(cfg: PipelineConfig) -> tuple[str, str, str, str]:
    """The tables a run's undo puts back: summary, latest_summary, the deletes table and the change record."""
    return cfg.destination_table, cfg.latest_history_table, cfg.deletes_table, cfg.changes_table


def mark_definition(spark: SparkSession, cfg: PipelineConfig, defn: dict[str, Any] | None) -> list[str]:
    """Give each data table the fingerprint (and the JSON) of ``defn``, the definition the ledger now says
    the tables hold. Called after a commit point: the ledger row is the record, the properties a copy for
    other readers, so a failure only warns and the next writing run sets them. Returns the tables changed."""
    if defn is None:
        return []
    wanted = {FINGERPRINT_PROPERTY: fingerprint(defn), DEFINITION_PROPERTY: json.dumps(defn, sort_keys=True)}
    try:
        return [t for t in data_tables(cfg) if state(spark, t) is not None and set_properties(spark, t, wanted)]
    except Exception as err:
        log.warning("could not record the definition on the tables: %s", describe(err))
        return []


class RunGuard:
    """Lock, recovery, ledger rows and undo around one run (see the module docstring).

    Use as a context manager; inside, call :meth:`start` once the run is sure to go ahead, :meth:`commit` for
    each table write and :meth:`succeed` at the end. A simulated kill (any BaseException that is not an
    Exception or KeyboardInterrupt) skips all cleanup, as a real kill would.
    """

    def __init__(self, spark: SparkSession, cfg: PipelineConfig, result: RunResult,
                 say: Callable[[str], None], on_step: StepHook | None = None) -> None:
        self.spark, self.cfg, self.result, self.say = spark, cfg, result, say
        self.on_step = on_step
        self.lock = RunLock(spark, cfg.ledger_table, result.run_id, result.mode, cfg.lock_timeout)
        self.expected: dict[str, int | None] = {}
        #: The run went ahead (:meth:`start`); it has recorded itself running (and may have written).
        self.going = self.started = False
        #: The ledger as recovery left it (read once per run; the runner takes the watermark from it).
        self.ledger: list[dict[str, Any]] = []
        #: What undoing this run after a failure put back (one line per table).
        self.undone: list[str] = []
        #: Held from the commit point to the end: a signal then lets the run finish.
        self._finishing = ExitStack()
        #: The branch the run stages its writes on, and the tables that have it (:meth:`target`).
        self.branch = run_branch(result.run_id)
        self.staged: list[str] = []

    def step(self, name: str) -> None:
        """Mark a step boundary of the run (one of :data:`STEPS`): a no-op unless a test injected a hook."""
        if self.on_step is not None:
            self.on_step(name)

    # ----- entering: lock and recovery ----------------------------------------------------------------------

    def __enter__(self) -> RunGuard:
        with phase("lock and recovery"):
            return self._enter()

    def _enter(self) -> RunGuard:
        began = time.monotonic()
        ensure_ledger(self.spark, self.cfg.ledger_table)
        taken = self.lock.acquire()
        self.result.started_at = dt.datetime.now()  # runs are ordered by when they took the lock
        try:
            if taken is not None:
                holder, why = taken
                self._warn(f"took over the lock from {holder.describe()}: {why}")
            for table in (*data_tables(self.cfg), self.cfg.quarantine):
                if state(self.spark, table) is not None:  # drop any cached metadata: read what others committed
                    self.spark.catalog.refreshTable(table)
            self.ledger = self._recover(ledger_rows(self.spark, self.cfg.ledger_table))
            gone = drop_run_branches(self.spark, data_tables(self.cfg))
            if gone:
                log.info("removed the branches of runs that did not publish: %s", "; ".join(gone))
            self.expected = {t: state(self.spark, t) for t in data_tables(self.cfg)}
            self.result.snapshots_before = dict(self.expected)
            self.result.timings["lock_and_recovery"] = round(time.monotonic() - began, 3)
            self.step("locked")
        except (Exception, KeyboardInterrupt):
            self.lock.release()
            raise
        except BaseException:
            self.lock.stop()
            raise
        return self

    def _warn(self, text: str) -> None:
        self.result.warnings.append(text)
        log.warning(text)
        self.say(f"Warning: {text}")

    def _recover(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Finish any rollback that died, then settle the tables, then mark the runs that died failed.

        ``rows`` is the ledger as read after taking the lock; returns it as recovery leaves it (succeeded runs
        and their watermarks are exact; the dead runs marked failed here may still say running).
        """
        dead = [r for r in rows if r["status"] == "running" and r["run_id"] != self.result.run_id]
        for row in [r for r in dead if r["mode"] == "rollback"]:
            target = str(json.loads(row["arguments"] or "{}").get("run_id"))
            done = self.tagged(partial(_apply_rollback, self.spark, self.cfg, target, row["run_id"]))
            after = {t: state(self.spark, t) for t in data_tables(self.cfg)}  # the state the next settle keeps
            self._mark(row["run_id"], "succeeded", f"interrupted; finished by run {self.result.run_id}", after)
            self._warn(f"run {row['run_id']} (rollback of {target}) had stopped half-way; finished it: "
                       f"{'; '.join(done) or 'nothing left to do'}")
        if any(r["mode"] == "rollback" for r in dead):
            rows = ledger_rows(self.spark, self.cfg.ledger_table)  # the finished rollbacks now count
        done = self._settle(rows)
        for row in [r for r in dead if r["mode"] != "rollback"]:
            self._mark(row["run_id"], "failed", f"interrupted; its writes were undone by run {self.result.run_id}")
            started = row["started_at"].strftime("%Y-%m-%d %H:%M:%S") if row["started_at"] else "?"
            self._warn(f"run {row['run_id']} ({row['mode']}, started {started}) had stopped half-way")
        if done:
            self._warn(f"undid commits of runs that did not succeed: {'; '.join(done)}")
        return rows

    def _settle(self, rows: list[dict[str, Any]] | None = None) -> list[str]:
        """Put the data tables back to the latest succeeded run's snapshots, undoing only commits of runs that
        did not succeed (this one, dead ones, and one that kept writing after it lost its lock).

        ``rows`` is the current ledger, read afresh when not given."""
        target, strip = settle_plan(rows if rows is not None else ledger_rows(self.spark, self.cfg.ledger_table))
        if target is None:
            return []
        return self.tagged(partial(restore, self.spark, target, strip))

    def _mark(self, run_id: str, status: str, error: str, after: dict[str, int | None] | None = None) -> None:
        self.tagged(partial(mark, self.spark, self.cfg.ledger_table, [run_id], status, error, after))

    # ----- inside: the run's commits ------------------------------------------------------------------------

    def tagged(self, write: Callable[[], T]) -> T:
        """Run ``write`` with this run's id in the snapshot summary of every commit it makes."""
        return tagged(self.spark, {RUN_ID_PROPERTY: self.result.run_id}, write)

    def start(self, *, when_writing: bool = False) -> None:
        """The run goes ahead: record it running (with its before snapshots); from then on, a failure undoes it.

        ``when_writing`` defers that record to the run's first write (:meth:`commit`, :meth:`write`), which is
        all it protects. A run that finds nothing to do then writes its ledger row once, at the end, instead of
        a running row, a MERGE that updates it and a read that checks the MERGE."""
        self.going = True
        if not when_writing:
            self._record_running()

    def _record_running(self) -> None:
        if self.started:
            return
        self.result.status = "running"
        self.tagged(lambda: record(self.spark, self.cfg.ledger_table, self.result, new=True))
        self.started = True
        self.step("started")

    def write(self, write: Callable[[], T]) -> T:
        """A write the run makes outside the data tables (the quarantine), tagged with the run id."""
        self._record_running()
        return self.tagged(write)

    def commit(self, table: str, write: Callable[[], None]) -> None:
        """Make one of the run's commits on ``table``, after checking that no one else committed to it."""
        self.lock.check()
        self._record_running()
        if table in self.expected:
            now = state(self.spark, table)
            if now != self.expected[table]:
                raise ConflictError(
                    f"{table} was changed by another writer during this run (its snapshot is now {now}, this run "
                    f"expected {self.expected[table]}). Make sure nothing else writes to the pipeline's tables "
                    "while it runs, then run the same command again.", table=table)
        try:
            self.tagged(write)
        except Exception as err:
            if is_commit_conflict(err):
                raise ConflictError(f"the commit to {table} conflicted with another writer "
                                    f"({describe(err)}). Run the same command again.", table=table) from err
            raise
        if table in self.expected:
            self.expected[table] = state(self.spark, table)

    def target(self, table: str) -> str:
        """Where the run writes ``table``: its branch of it, made from main on first use (the table must exist)."""
        self._record_running()
        if table not in self.staged:
            self.tagged(partial(ensure_branch, self.spark, table, self.branch, self.result.run_id))
            self.staged.append(table)
        return at_ref(table, self.branch)

    def staged_at(self, table: str) -> str:
        """Where ``table``'s state after this run's writes is read: its branch, or main for a table the run did
        not stage (unwritten, or replaced on main)."""
        return at_ref(table, self.branch) if table in self.staged else table

    def publish(self) -> None:
        """Fast-forward each staged table's main to the run's branch, in :func:`data_tables` order."""
        with phase("publish"):
            for table in [t for t in data_tables(self.cfg) if t in self.staged]:
                self.lock.check()
                self.expected[table] = self.tagged(partial(fast_forward, self.spark, table, self.branch))
                if table == self.cfg.destination_table:
                    self.step("published_summary")  # main of summary moved, latest_summary's not yet
            self.step("published")

    def succeed(self, finished: dt.datetime) -> None:
        """The commit point: record the run succeeded, with the snapshots after it."""
        with phase("record"):
            self._succeed(finished)

    def _succeed(self, finished: dt.datetime) -> None:
        self.lock.check()
        self._finishing.enter_context(interrupts.committed())
        self.result.status = "succeeded"
        self.result.finished_at = finished
        if not self.started:
            # It wrote nothing: the tables are as the lock found them, and no other run can have marked a row it
            # never wrote. A run that took the lock after the check above finishes after ``finished``, so its
            # row, not this one, is the latest succeeded.
            self.result.snapshots_after = dict(self.expected)
            self.tagged(lambda: record(self.spark, self.cfg.ledger_table, self.result, new=True))
            self.step("recorded")
            return
        self.result.snapshots_after = {t: state(self.spark, t) for t in data_tables(self.cfg)}
        self.tagged(lambda: record(self.spark, self.cfg.ledger_table, self.result, only_if_running=True))
        mine = [r for r in ledger_rows(self.spark, self.cfg.ledger_table) if r["run_id"] == self.result.run_id]
        if not mine or mine[0]["status"] != "succeeded":
            self.lock.lost = self.lock.lost or self.lock.owner
            raise LockLostError(f"run {self.result.run_id} was judged gone and undone by another run before it "
                                "could record its success; the tables are as that run left them. Run the same "
                                "command again.")
        self.step("recorded")

    # ----- leaving: release, or undo and release, or (a kill) nothing ---------------------------------------

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None,
                 tb: TracebackType | None) -> None:
        if err is None:
            with self._finishing:  # past the commit point: a signal lets the run finish
                self._drop_branches()
                self.lock.release()
                self.step("released")
            return
        self._finishing.close()
        if not isinstance(err, Exception | KeyboardInterrupt) or isinstance(err, LockLostError):
            self.lock.stop()  # a kill: nothing else runs; a lost lock: its new holder undoes this run
            return
        signum = err.signum if isinstance(err, interrupts.Interrupted) else interrupts.received()
        try:
            if self.going:
                with phase("undo"):
                    self._fail(err, signum)
        finally:
            self._release_after(err)
        if signum is not None:
            raise RunInterruptedError(self._interrupted(signum), signum, run_id=self.result.run_id,
                                      status=self.result.status, undone=self.undone) from err

    def _drop_branches(self) -> None:
        """Remove the published run's branches (a leftover is removed by the next run, so a failure only warns)."""
        for table in self.staged:
            try:
                drop_ref(self.spark, table, self.branch)
            except Exception as err:
                log.warning("could not remove branch %s of %s: %s", self.branch, table, describe(err))

    def _interrupted(self, signum: int) -> str:
        """The one line a signal's stop is reported with: what was undone, and that a rerun completes it."""
        result = self.result
        what = f"run {result.run_id} ({result.mode}) was stopped by {interrupts.signal_name(signum)}"
        if not self.started:
            return f"{what} before it wrote anything. Run the same command again to do its work."
        if result.status == "running":  # the undo (or a rollback) is left to the next command that locks
            return (f"{what}; the next run finishes putting the tables back "
                    "(run the same command again to complete the work).")
        undone = "; ".join(self.undone) or "nothing had been published yet"
        return f"{what} and undone ({undone}). Run the same command again to complete the work."

    def _release_after(self, err: BaseException) -> None:
        """Give the lock back after a failure without hiding it: when Spark itself has stopped (an
        out-of-memory, say), releasing fails too, and the user must see the first error, not that one. The
        lock then stays with this run, whose process is gone once it exits: the next run takes it over."""
        try:
            self.lock.release()
        except Exception as release_err:
            log.error("could not release the lock after %s: %s", describe(err), describe(release_err))

    def _fail(self, err: BaseException, signum: int | None) -> None:
        """Undo this run's commits and record it failed, or ``interrupted`` when a signal (``signum``) stopped
        it (or leave it running for the next run to finish)."""
        result = self.result
        result.error = f"interrupted by {interrupts.signal_name(signum)}" if signum is not None else describe(err)
        result.finished_at = dt.datetime.now()
        result.status = "failed" if signum is None else "interrupted"
        try:
            if not self.started:
                pass  # it wrote nothing: nothing to undo
            elif result.mode == "rollback":
                if not isinstance(err, RestoreError):  # a rollback that may have started is finished later
                    result.status = "running"
            else:
                self.undone = self._settle()
                if self.undone and signum is None:  # an interrupt's one line says it
                    self.say(f"Undid this run's writes: {'; '.join(self.undone)}")
        except Exception as undo:
            result.status = "running"
            result.error += f"; undoing its writes failed too ({describe(undo)}): the next run undoes them"
            log.error("could not undo run %s: %s", result.run_id, describe(undo))
        try:
            result.snapshots_after = {t: state(self.spark, t) for t in data_tables(self.cfg)}
            # Only over a row that still says running: a commit point whose answer was lost (the row says
            # succeeded) or a run that took this one over (it says failed) keeps what the ledger holds.
            self.tagged(lambda: record(self.spark, self.cfg.ledger_table, result, new=not self.started,
                                       only_if_running=True))
        except Exception as ledger_err:
            log.error("could not record run %s as %s: %s", result.run_id, result.status, describe(ledger_err))


def _order(row: dict[str, Any]) -> tuple[dt.datetime, dt.datetime]:
    never = dt.datetime.min
    return (row["finished_at"] or row["started_at"] or never, row["started_at"] or never)


def settle_plan(rows: list[dict[str, Any]]) -> tuple[dict[str, int | None] | None, list[str]]:
    """Where the data tables must be, and whose commits may be undone to get there.

    The target is the latest succeeded run's ``snapshots_after`` (before any run succeeded: the first run's
    ``snapshots_before``); every run that did not succeed may have its commits undone.

    >>> rows = [{"run_id": "a", "status": "succeeded", "started_at": 1, "finished_at": 2,
    ...          "snapshots_before": {"s": None}, "snapshots_after": {"s": 10}},
    ...         {"run_id": "b", "status": "failed", "started_at": 3, "finished_at": 4,
    ...          "snapshots_before": {"s": 10}, "snapshots_after": {"s": 11}}]
    >>> settle_plan(rows)
    ({'s': 10}, ['b'])
    """
    if not rows:
        return None, []
    strip = [r["run_id"] for r in rows if r["status"] != "succeeded"]
    succeeded = [r for r in rows if r["status"] == "succeeded"]
    if succeeded:
        return dict(max(succeeded, key=_order)["snapshots_after"] or {}), strip
    return dict(min(rows, key=_order)["snapshots_before"] or {}), strip


#: Runs that change no row: a rollback never undoes them and never counts them as work it would lose.
_NO_DATA = ("rollback", "maintain")


def rollback_plan(rows: list[dict[str, Any]], run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The ledger row of ``run_id`` and the succeeded runs after it that a rollback would undo too.

    Raises SummaryPipelineError when the run is unknown or has nothing to roll back.
    """
    target = next((r for r in rows if r["run_id"] == run_id), None)
    if target is None:
        raise SummaryPipelineError(f"no run {run_id} in the ledger; list the runs with "
                                   "`SELECT run_id, mode, status, started_at FROM <ledger table>`")
    if target["mode"] in _NO_DATA or target["status"] != "succeeded":
        raise SummaryPipelineError(f"run {run_id} is {target['status']} ({target['mode']}): there is nothing of it "
                                   "to roll back (failed and interrupted runs are undone automatically)")
    later = [r for r in rows if r["status"] == "succeeded" and r["mode"] not in _NO_DATA
             and (r["started_at"], r["run_id"]) > (target["started_at"], target["run_id"])]
    return target, later


def _apply_rollback(spark: SparkSession, cfg: PipelineConfig, run_id: str, by: str,
                    step: StepHook | None = None) -> list[str]:
    """Put the tables back to before ``run_id`` and mark it and every later run rolled back (idempotent).

    ``step`` is called with ``published`` once the tables are back, before the tags go and the ledger says so."""
    rows = ledger_rows(spark, cfg.ledger_table)
    target = next(r for r in rows if r["run_id"] == run_id)
    after = [r for r in rows if (r["started_at"], r["run_id"]) > (target["started_at"], target["run_id"])
             and r["mode"] != "rollback" and r["run_id"] != by]
    undone: Iterable[str] = [run_id, *(r["run_id"] for r in after)]
    done = restore(spark, target["snapshots_before"] or {}, undone)
    if step is not None:
        step("published")
    rolled = [run_id, *(r["run_id"] for r in after if r["status"] == "succeeded" and r["mode"] not in _NO_DATA)]
    # Their tags go too, so the run that publishes the month again tags it (a tag's name is made once).
    for table in data_tables(cfg):
        done += [f"{table}: tag {name} removed" for name in drop_tags_of(spark, table, rolled)]
    mark(spark, cfg.ledger_table, rolled, "rolled_back", f"rolled back by run {by}")
    return done


def rollback(spark: SparkSession, cfg: PipelineConfig, result: RunResult, run_id: str, force: bool,
             say: Callable[[str], None], on_step: StepHook | None = None) -> RunResult:
    """Put summary, latest_summary and the deletes table back to before ``run_id``, and the watermark to the
    one it started from; refuses when later succeeded runs would be lost, unless ``force``.

    A run already rolled back is left as it is, and the command succeeds: it is how the same command run again
    after a kill ends (the next command that locks finishes a rollback that died), and rolling the run back a
    second time would undo whatever ran since. ``on_step`` sees the steps a run passes (:data:`STEPS`), with
    ``published`` once the tables are back to before ``run_id``."""
    with RunGuard(spark, cfg, result, say, on_step) as guard:
        rows = ledger_rows(spark, cfg.ledger_table)
        result.watermark_read = result.watermark_committed = committed_watermark(rows)
        done_before = next((r for r in rows if r["run_id"] == run_id and r["status"] == "rolled_back"), None)
        if done_before is not None:
            result.message = f"run {run_id} was already rolled back"
            say(f"  run {run_id} is already rolled back ({done_before['error']}): nothing to do")
        else:
            target, later = rollback_plan(rows, run_id)
            if later and not force:
                names = ", ".join(f"{r['run_id']} ({r['mode']}, {r['started_at']:%Y-%m-%d %H:%M})" for r in later)
                raise RollbackRefusedError(f"rolling back {run_id} also undoes {len(later)} later run(s): {names}. "
                                           "Roll back the latest first, or pass --force to undo them all.")
            result.watermark_committed = target["watermark_read"]
            guard.start()
            done = guard.tagged(lambda: _apply_rollback(spark, cfg, run_id, result.run_id, guard.step))
            for line in done or ["the tables were already as before that run"]:
                say(f"  {line}")
        guard.succeed(dt.datetime.now())
        found = recorded_definition(ledger_rows(spark, cfg.ledger_table))  # the definition before that run
        mark_definition(spark, cfg, found[0] if found else None)
    return result
