"""The run lock (SPEC 8): one run at a time writes a pipeline's tables.

The lock is a set of properties on the ledger table, taken and given back with the catalog's atomic
compare-and-swap (:func:`~summary_pipeline.store.snapshots.swap_properties`), so two runs that race for it cannot both
win on a catalog with atomic commits (the embedded Hadoop one is atomic within a process only; the lock is read
back after taking it to narrow that gap). While a run holds it, a thread renews a heartbeat. A holder is
*provably gone*, and its lock is taken over, when its heartbeat is older than ``lock_timeout``, or when it ran
on this machine (host name, boot id and pid namespace) and its processes
(the Python driver and its JVM) no longer exist. Taking over never undoes anything by itself: the runner then
finds the dead run in the ledger and undoes its writes before it starts its own.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import SparkSession

from summary_pipeline.errors import CommitFailed, LockedError, LockLostError, describe
from summary_pipeline.store.snapshots import swap_properties

__all__ = ["HOST_ENV", "Owner", "RunLock", "clear_lock", "gone", "host_name", "process_alive", "read_owner"]

log = logging.getLogger(__name__)

PREFIX = "summary-pipeline.lock."
_FIELDS = ("run-id", "mode", "host", "machine", "pid", "jvm-pid", "since", "heartbeat")

#: Run ids this process is running right now: a lock held by this process for any other run id is stale.
_ACTIVE: set[str] = set()


@dataclass(frozen=True)
class Owner:
    """Who holds (or wants) the lock."""

    run_id: str
    mode: str
    host: str
    #: Boot id and pid namespace: two containers can share a host name, never both of these.
    machine: str
    pid: int
    jvm_pid: int
    since: float
    heartbeat: float

    def properties(self) -> dict[str, str]:
        """The lock properties that say this owner holds the lock."""
        values = (self.run_id, self.mode, self.host, self.machine, str(self.pid), str(self.jvm_pid),
                  f"{self.since:.3f}", f"{self.heartbeat:.3f}")
        return {PREFIX + k: v for k, v in zip(_FIELDS, values, strict=True)}

    @classmethod
    def from_properties(cls, props: Mapping[str, str]) -> Owner | None:
        """The owner the properties name, or None when the lock is free."""
        if PREFIX + "run-id" not in props:
            return None
        get = {k: props.get(PREFIX + k, "") for k in _FIELDS}
        return cls(run_id=get["run-id"], mode=get["mode"], host=get["host"], machine=get["machine"],
                   pid=_int(get["pid"]),
                   jvm_pid=_int(get["jvm-pid"]), since=_float(get["since"]), heartbeat=_float(get["heartbeat"]))

    def describe(self, now: float | None = None) -> str:
        """``run 3f2a… (incremental), pid 123 on host h, started …, last heartbeat 4 s ago``."""
        now = time.time() if now is None else now
        started = dt.datetime.fromtimestamp(self.since, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        return (f"run {self.run_id} ({self.mode}), pid {self.pid} on host {self.host}, started {started}, "
                f"last heartbeat {max(0.0, now - self.heartbeat):.0f} s ago")


def _int(text: str) -> int:
    return int(text) if text.lstrip("-").isdigit() else -1


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0


def machine_id() -> str:
    """This process's machine as seen by its pids: the boot id and the pid namespace ('' where unknown)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}:{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return ""


#: Names this host in the lock and the ledger instead of its host name (containers that share one, tests).
HOST_ENV = "SUMMARY_PIPELINE_HOST"


def host_name() -> str:
    """The host name a run records: ``$SUMMARY_PIPELINE_HOST``, else the machine's."""
    return os.environ.get(HOST_ENV) or socket.gethostname()


def _same_machine(owner: Owner) -> bool:
    """True when the owner's pids can be checked from here: same host name, boot and pid namespace."""
    return owner.host == host_name() and bool(owner.machine) and owner.machine == machine_id()


def process_alive(pid: int) -> bool:
    """True when process ``pid`` exists on this host and is not a zombie."""
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            if stat.read().rsplit(")", 1)[-1].split()[0] in ("Z", "X"):
                return False
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def gone(owner: Owner, timeout: float, now: float | None = None) -> str | None:
    """Why ``owner`` is provably gone, or None when it may be alive."""
    now = time.time() if now is None else now
    if owner.run_id in _ACTIVE:
        return None
    if now - owner.heartbeat > timeout:
        return f"its last heartbeat is {now - owner.heartbeat:.0f} s old (lock_timeout is {timeout:.0f} s)"
    if not _same_machine(owner):
        return None
    if owner.pid == os.getpid():
        return "it stopped inside this process"
    if not process_alive(owner.pid) and not process_alive(owner.jvm_pid):
        return f"its processes ({owner.pid}, {owner.jvm_pid}) no longer exist on this host"
    return None


def _dying(owner: Owner) -> bool:
    """Its Python driver is gone on this host but its JVM has not exited yet (it will, within seconds)."""
    return _same_machine(owner) and not process_alive(owner.pid) and process_alive(owner.jvm_pid)


def read_owner(spark: SparkSession, table: str) -> Owner | None:
    """The current holder of the lock on ``table``'s pipeline, or None."""
    from summary_pipeline.store.snapshots import table_properties

    return Owner.from_properties(table_properties(spark, table))


def _locked_message(owner: Owner, table: str) -> str:
    return (f"another run holds the lock on this pipeline's tables: {owner.describe()}. Wait for it to finish. "
            f"If it is gone (its lock is kept in the properties of {table}), the next run takes over once its "
            "heartbeat is older than lock_timeout, or clear it now with `summary-pipeline unlock --config ...`.")


class RunLock:
    """The lock of one run: :meth:`acquire`, :meth:`check` before each commit, :meth:`release`, :meth:`stop`."""

    def __init__(self, spark: SparkSession, table: str, run_id: str, mode: str, timeout: float) -> None:
        jvm = spark._jvm
        assert jvm is not None
        self.spark, self.table, self.timeout = spark, table, timeout
        now = time.time()
        self.owner = Owner(run_id=run_id, mode=mode, host=host_name(), machine=machine_id(), pid=os.getpid(),
                           jvm_pid=int(jvm.java.lang.ProcessHandle.current().pid()), since=now, heartbeat=now)
        self.taken_from: tuple[Owner, str] | None = None
        self.lost: Owner | None = None
        self.renewed = now  # when this run last knew it held the lock (acquire or a heartbeat)
        self._beat_at = now
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ----- taking -----------------------------------------------------------------------------------------

    def _claim(self, props: Mapping[str, str]) -> dict[str, str | None]:
        self.taken_from = None
        holder = Owner.from_properties(props)
        if holder is not None and holder.run_id != self.owner.run_id:
            why = gone(holder, self.timeout)
            if why is None:
                raise LockedError(_locked_message(holder, self.table), table=self.table, holder=holder.describe(),
                                  holder_run_id=holder.run_id)
            self.taken_from = (holder, why)
        return {**self.owner.properties(), PREFIX + "heartbeat": f"{time.time():.3f}"}

    def acquire(self, patience: float = 30.0) -> tuple[Owner, str] | None:
        """Take the lock; returns the provably gone holder it took over (and why), or None.

        Raises LockedError when a live run holds it. A holder whose JVM is still exiting is waited for, up to
        ``patience`` seconds; a lost race for the swap is simply tried again.
        """
        # Alive from the first attempt on: a racing run in this process must not judge it gone meanwhile.
        _ACTIVE.add(self.owner.run_id)
        try:
            self._take(patience)
        except BaseException:
            _ACTIVE.discard(self.owner.run_id)
            raise
        self.renewed = time.time()
        self._thread = threading.Thread(target=self._beat, name="summary-pipeline-heartbeat", daemon=True)
        self._thread.start()
        return self.taken_from

    def _take(self, patience: float) -> None:
        """Swap the lock to this run, retrying lost races; raises LockedError while a live run holds it."""
        deadline = time.monotonic() + patience
        for _ in range(200):
            try:
                swap_properties(self.spark, self.table, self._claim)
                # A catalog whose swap is not atomic across processes (the embedded Hadoop one: check, then
                # rename) can let two runs both "win": read the lock back once the dust settled.
                time.sleep(0.2)
                holder = read_owner(self.spark, self.table)
                if holder is not None and holder.run_id == self.owner.run_id:
                    break
            except CommitFailed:
                time.sleep(random.uniform(0.05, 0.3))
            except LockedError:
                holder = read_owner(self.spark, self.table)
                if holder is not None and (not _dying(holder) or time.monotonic() > deadline):
                    raise
                time.sleep(0.5)
        else:
            raise LockedError(f"could not take the lock on {self.table}: other runs keep changing it; try again")

    # ----- holding ----------------------------------------------------------------------------------------

    def _renew(self, props: Mapping[str, str]) -> dict[str, str | None]:
        holder = Owner.from_properties(props)
        if holder is None or holder.run_id != self.owner.run_id:
            self.lost = holder or self.owner
            return {}
        self._beat_at = time.time()
        return {PREFIX + "heartbeat": f"{self._beat_at:.3f}"}

    def _beat(self) -> None:
        interval = max(0.5, min(60.0, self.timeout / 4))
        while not self._stop.wait(interval) and self.lost is None:
            try:
                swap_properties(self.spark, self.table, self._renew)
                self.renewed = self._beat_at
            except CommitFailed:
                continue
            except Exception as err:  # a missed beat is not fatal; the timeout allows for several
                log.warning("lock heartbeat failed: %s", describe(err))

    def check(self) -> None:
        """Raise LockLostError unless this run still holds the lock, read from the catalog, and renewed it
        recently: a run that could not renew for half of ``lock_timeout`` stops before committing anything,
        so it never clashes with a run that takes its lock over when the timeout passes."""
        if self.lost is None:
            holder = read_owner(self.spark, self.table)
            if holder is None or holder.run_id != self.owner.run_id:
                self.lost = holder or self.owner
        if self.lost is not None:
            by = ("cleared by hand (summary-pipeline unlock)" if self.lost is self.owner
                  else f"taken over by {self.lost.describe()}")
            raise LockLostError(f"this run's lock on {self.table} was {by}. This run stopped before its next commit; "
                                "the run that holds the lock next undoes what it wrote.")
        stale = time.time() - self.renewed
        if stale > self.timeout / 2:
            raise LockLostError(f"this run could not renew its lock for {stale:.0f} s (half of lock_timeout): it "
                                "stops before committing, since another run may take the lock over soon. Check the "
                                "catalog's health, then run the same command again.")

    # ----- giving back ------------------------------------------------------------------------------------

    def _free(self, props: Mapping[str, str]) -> dict[str, str | None]:
        holder = Owner.from_properties(props)
        if holder is None or holder.run_id != self.owner.run_id:
            return {}
        return dict.fromkeys(self.owner.properties())

    def release(self) -> None:
        """Give the lock back (if this run still holds it)."""
        self.stop()
        for _ in range(20):
            try:
                swap_properties(self.spark, self.table, self._free)
                return
            except CommitFailed:
                time.sleep(random.uniform(0.05, 0.3))
        log.warning("could not release the lock on %s; the next run will take it over", self.table)

    def stop(self) -> None:
        """Stop the heartbeat and forget the run in this process (what a crash does; the lock stays held)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        _ACTIVE.discard(self.owner.run_id)


def clear_lock(spark: SparkSession, table: str, timeout: float, force: bool = False) -> Owner | None:
    """Clear the lock by hand; refuses (unless ``force``) while the holder may be alive. Returns the holder."""
    cleared: list[Owner | None] = [None]

    def _clear(props: Mapping[str, str]) -> dict[str, str | None]:
        holder = Owner.from_properties(props)
        cleared[0] = holder
        if holder is None:
            return {}
        if not force and gone(holder, timeout) is None:
            raise LockedError(f"the lock is held by {holder.describe()}, which may still be running. Stop it "
                              "first, or pass --force if you are sure it is gone.")
        return dict.fromkeys(PREFIX + k for k in _FIELDS)

    for _ in range(20):
        try:
            swap_properties(spark, table, _clear)
            return cleared[0]
        except CommitFailed:
            time.sleep(random.uniform(0.05, 0.3))
    raise LockedError(f"could not clear the lock on {table}: other runs keep changing it; try again")
