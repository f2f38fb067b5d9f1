"""Progress while Spark works: which phase a command is in, for how long, and how far its Spark tasks are.

A run's phases (read, classify, rebuild, each write) can each take minutes on real data, with no line of
output in between. The code marks its phases with :func:`phase`; while the CLI's :class:`Ticker` runs, a thread
reads Spark's own progress (the status tracker: active stages, their tasks done and in all) and shows it on
stderr: on a terminal as one line rewritten in place every half second and cleared before the next line of
output; otherwise (a file, a pipe, ``--log-format json``) as a plain line or log record every
``SUMMARY_PIPELINE_PROGRESS_SECONDS`` (default 10) while Spark works, so logs stay short.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["Ticker", "phase", "plain_interval"]

log = logging.getLogger(__name__)

#: The phase under way: its name and when it began (None between phases). One per process, as the CLI is.
_current: tuple[str, float] | None = None


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Mark a phase of a command (what progress lines name); phases do not nest: the inner one shows."""
    global _current
    outer, _current = _current, (name, time.monotonic())
    try:
        yield
    finally:
        _current = outer


def plain_interval() -> float:
    """Seconds between plain progress lines (``SUMMARY_PIPELINE_PROGRESS_SECONDS``, default 10)."""
    try:
        return max(0.5, float(os.environ.get("SUMMARY_PIPELINE_PROGRESS_SECONDS", "10")))
    except ValueError:
        return 10.0


def describe(spark: SparkSession) -> str | None:
    """``[classify 12 s] Spark stage 41: 150/200 tasks`` (without the bracket outside a phase), or None when no
    phase is under way and no stage runs."""
    tracker: Any = spark.sparkContext.statusTracker()
    stages = [s for s in (tracker.getStageInfo(i) for i in tracker.getActiveStageIds()) if s is not None]
    current = _current
    if current is None and not stages:
        return None
    text = f"[{current[0]} {time.monotonic() - current[1]:.0f} s]" if current else ""
    if not stages:
        return text
    done = sum(s.numCompletedTasks for s in stages)
    total = sum(s.numTasks for s in stages)
    which = f"stage {stages[0].stageId}" if len(stages) == 1 else f"{len(stages)} stages"
    return f"{text} Spark {which}: {done:,}/{total:,} tasks".lstrip()


class Ticker:
    """Shows :func:`describe` on stderr while the ``with`` block runs (see the module docstring).

    ``terminal`` rewrites one line in place; otherwise ``emit`` gets a line every ``every`` seconds while a
    Spark stage runs. :meth:`clear` takes the in-place line away before other output is printed.
    """

    def __init__(self, spark: SparkSession, err: TextIO, terminal: bool, emit: Callable[[str], None],
                 every: float | None = None) -> None:
        self.spark, self.err, self.terminal, self.emit = spark, err, terminal, emit
        self.every = 0.5 if terminal else (every or plain_interval())
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._shown = False
        self._thread = threading.Thread(target=self._run, name="summary-pipeline-progress", daemon=True)

    def __enter__(self) -> Ticker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.clear()

    @contextmanager
    def printing(self) -> Iterator[None]:
        """Around a line of other output: the in-place line goes first and stays away meanwhile."""
        with self._lock:
            self._clear()
            yield

    def clear(self) -> None:
        """Take the in-place line off the terminal."""
        with self._lock:
            self._clear()

    def _clear(self) -> None:
        if self._shown:
            self.err.write("\r\033[K")
            self.err.flush()
            self._shown = False

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                text = describe(self.spark)
            except Exception:  # Spark stopping under us: the command's own error says why
                return
            if self.terminal:
                with self._lock:
                    self.err.write("\r\033[K" + (text or "")[:_width()])
                    self.err.flush()
                    self._shown = bool(text)
            elif text and "tasks" in text:  # plain lines only while Spark works: logs stay short
                self.emit(text)


def _width() -> int:
    return max(20, shutil.get_terminal_size().columns - 1)
