"""Ctrl-C and SIGTERM: stop at the next safe point, undo, and say so in one line.

Left to Python, SIGINT raises KeyboardInterrupt wherever the main thread is, which is mostly inside a Py4J call
waiting for the JVM's answer. A call abandoned there leaves its connection out of step: every later call reads
an answer meant for another ("org.apache.spark does not exist in the JVM"), so the undo that should follow fails
too. Instead, while the CLI :func:`watching` a session, a signal only records itself and cancels the running
Spark jobs (from another thread, on its own connection); the main thread raises :class:`Interrupted` at its next
Py4J call boundary, right after the answer it was waiting for or before its next call, where the connection is
in step. The run's guard then undoes what the run wrote and reports it interrupted
(:class:`~summary_pipeline.store.protocol.RunGuard`).

From a run's commit point to the end of its guard (:func:`committed`), a signal does not stop it: its work
has taken effect, and what is left (giving the lock back) takes a moment. A second signal while the undo runs
ends the process at once; the next run then finishes the undo, as after a kill.

The JVM that an embedded session launches ignores SIGTERM as PySpark makes it ignore SIGINT
(:func:`jvm_ignores_sigterm`): a scheduler that signals the whole process group must not stop the JVM the undo
needs. It still exits with the Python process (PySpark's gateway quits when its stdin closes).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["Interrupted", "committed", "jvm_ignores_sigterm", "raise_on_sigterm", "received", "signal_name",
           "watching"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def signal_name(signum: int) -> str:
    """``SIGINT (Ctrl-C)`` or ``SIGTERM``: how messages name a signal."""
    return "SIGINT (Ctrl-C)" if signum == signal.SIGINT else signal.Signals(signum).name


class Interrupted(KeyboardInterrupt):
    """A signal stopped the command at a safe point. A KeyboardInterrupt, so that no ``except Exception``
    swallows it; the guard undoes a run for it as for any failure."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal_name(signum)}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as a shell reports a process the signal ended: 130 and 143."""
        return 128 + self.signum


class _Watch:
    """What the handler and the Py4J wrapper share (one per process: signals are process-wide)."""

    def __init__(self) -> None:
        self.reset(None)

    def reset(self, spark: SparkSession | None) -> None:
        self.spark = spark  # the session whose jobs a signal cancels; None: not watching
        self.signum: int | None = None  # the signal that interrupted the command
        self.pending = False  # the main thread has yet to raise Interrupted for it
        self.closed = False  # a run is past its commit point: a signal is let through


_watch = _Watch()


def received() -> int | None:
    """The signal that interrupted the command being watched, if one did."""
    return _watch.signum


@contextmanager
def committed() -> Iterator[None]:
    """The block finishes a run that has reached its commit point: a signal neither stops it nor counts."""
    _watch.closed, _watch.pending = True, False
    try:
        yield
    finally:
        _watch.closed, _watch.pending = False, False


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


def raise_on_sigterm() -> None:
    """Before a session is watched, SIGTERM stops the command as Ctrl-C does (no JVM call is in flight yet),
    so the CLI reports it in one line and exits 143 instead of vanishing."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise)


def _cancel_jobs(spark: SparkSession) -> None:
    """Cancel the running jobs, first silencing the JVM's log: each killed task logs a stack trace, noise once
    the user asked to stop (the run's own messages come from Python)."""
    with contextlib.suppress(Exception):  # Spark already stopped: there is nothing to cancel
        spark.sparkContext.setLogLevel("OFF")
        spark.sparkContext.cancelAllJobs()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _watch.closed:
        return
    if _watch.signum is not None:
        os.write(2, f"\nerror: {signal_name(signum)} again: stopped at once; the next run undoes what this run "
                    "wrote (run the same command again)\n".encode())
        os._exit(128 + signum)
    _watch.signum, _watch.pending = signum, True
    if _watch.spark is not None:
        threading.Thread(target=_cancel_jobs, args=(_watch.spark,), name="summary-pipeline-cancel",
                         daemon=True).start()


def _at_boundary(send: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap Py4J's ``send_command`` so that the main thread raises a recorded signal between calls only."""

    def raise_pending() -> None:
        if _watch.pending and not _watch.closed and threading.current_thread() is threading.main_thread():
            _watch.pending = False  # once: the undo that follows must reach the JVM
            raise Interrupted(_watch.signum or signal.SIGINT)

    def send_command(command: str, *args: Any, **kwargs: Any) -> Any:
        raise_pending()
        answer = send(command, *args, **kwargs)
        if not kwargs.get("binary"):  # a binary answer hands the caller a connection it must give back
            raise_pending()
        return answer

    return send_command


@contextmanager
def watching(spark: SparkSession) -> Iterator[None]:
    """Handle SIGINT and SIGTERM as described in the module docstring while the block runs (main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    client: Any = spark.sparkContext._gateway._gateway_client  # type: ignore[union-attr]
    previous = {s: signal.getsignal(s) for s in _SIGNALS}
    client.send_command = _at_boundary(client.send_command)
    _watch.reset(spark)
    for s in _SIGNALS:
        signal.signal(s, _on_signal)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        del client.send_command  # the class's own method again
        _watch.reset(None)


@contextmanager
def jvm_ignores_sigterm() -> Iterator[None]:
    """Launch the embedded JVM ignoring SIGTERM, as PySpark launches it ignoring SIGINT.

    A disposition set to ignore is inherited across exec, and HotSpot installs no shutdown handler for an
    ignored signal. PySpark starts the JVM with ``subprocess.Popen`` from its ``java_gateway`` module; the
    block adds the one line to the child's ``preexec_fn`` there.
    """
    from pyspark import java_gateway

    launch = getattr(java_gateway, "Popen", None)
    if launch is None or os.name != "posix":
        yield
        return

    def popen(*args: Any, **kwargs: Any) -> Any:
        before = kwargs.get("preexec_fn")

        def preexec() -> None:
            if before is not None:
                before()
            signal.signal(signal.SIGTERM, signal.SIG_IGN)

        return launch(*args, **{**kwargs, "preexec_fn": preexec})

    java_gateway.Popen = popen  # type: ignore[assignment,attr-defined]
    try:
        yield
    finally:
        java_gateway.Popen = launch  # type: ignore[attr-defined]
