"""The embedded JVM's class archive: a CLI run starts Spark from an archive of the classes it loaded before.

A run on a quiet day does little work; most of its cost is the JVM loading and verifying Spark's and Iceberg's
classes, anew in every process. The JDK can map classes from an archive instead (application class-data
sharing, ``-XX:SharedArchiveFile``). The first CLI run without an archive writes one as its JVM exits
(``-XX:ArchiveClassesAtExit``); later runs use it (docs/PERFORMANCE.md, "The fixed cost of a run").

The archive is written to a temporary name and moved into place only after its JVM exited cleanly, because the
JDK cannot be trusted with a truncated archive (it crashes mapping one). Its name carries a key of what it was
made from (the Java runtime, PySpark, the Iceberg jar, the driver's memory): a change of any makes a new one.
A JVM that finds the archive does not match its class path ignores it. The directory is
``$SUMMARY_PIPELINE_CACHE`` (``off`` turns the archive off), else ``$XDG_CACHE_HOME/summary-pipeline`` or
``~/.cache/summary-pipeline``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from summary_pipeline.store.lock import process_alive

__all__ = ["Archive", "cache_dir", "finish", "java_options"]

#: JDK log selectors that would print class-sharing notes (such as signed jars it skips) on stdout.
_QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"

#: The archive the running process's JVM writes at exit, and the name it takes once complete.
_pending: tuple[Path, Path] | None = None


def cache_dir() -> Path | None:
    """Where archives live, or None when ``SUMMARY_PIPELINE_CACHE=off``."""
    configured = os.environ.get("SUMMARY_PIPELINE_CACHE")
    if configured == "off":
        return None
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "summary-pipeline"


def _key(java: Path, parts: list[str]) -> str:
    real = java.resolve()
    return hashlib.sha256("\n".join([str(real), str(real.stat().st_mtime_ns), *parts]).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Archive:
    """JVM options for the archive, and the archive they make the JVM read (None: it reads none)."""

    options: str = ""
    used: Path | None = None


def java_options(java: Path, parts: list[str], *, write: bool) -> Archive:
    """The JVM options that use the archive ``java`` made with ``parts`` (what else the JVM's classes depend
    on), or, when there is none and ``write``, that write it at exit (the caller then calls :func:`finish`)."""
    global _pending
    where = cache_dir()
    if where is None:
        return Archive()
    archive = where / f"classes-{_key(java, parts)}.jsa"
    if archive.is_file():
        return Archive(f"-XX:SharedArchiveFile={archive} {_QUIET}", archive)
    if not write:
        return Archive()
    try:
        where.mkdir(parents=True, exist_ok=True)
    except OSError:
        return Archive()  # a read-only home: run without the archive
    for stale in where.glob(f"{archive.stem}.*.tmp"):  # left by a run killed before its JVM finished it
        if not process_alive(int(stale.suffixes[-2][1:])):
            stale.unlink(missing_ok=True)
    _pending = (where / f"{archive.stem}.{os.getpid()}.tmp", archive)
    return Archive(f"-XX:ArchiveClassesAtExit={_pending[0]} {_QUIET}")


def finish(process: subprocess.Popen[bytes] | None, say: Callable[[str], None], *, keep: bool = True) -> None:
    """After the session stopped: if this process's JVM is writing the archive, let it exit (its stdin
    closing ends PySpark's gateway), wait, and move the archive into place when the JVM exited cleanly.

    Without ``keep`` (a command a signal stopped) the JVM is ended at once instead: writing the archive would
    hold the exit up (Python waits for its JVM), and the next command writes it."""
    global _pending
    if _pending is None or process is None:
        return
    written, archive = _pending
    _pending = None
    if keep:
        say(f"Saving the JVM's class archive, once, so that later commands start faster: {archive}")
    try:
        if not keep:
            process.kill()
        elif process.stdin is not None:
            process.stdin.close()
        code = process.wait(timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        code = -1
    if keep and code == 0 and written.is_file() and written.stat().st_size > 0:
        os.replace(written, archive)
    else:
        written.unlink(missing_ok=True)
