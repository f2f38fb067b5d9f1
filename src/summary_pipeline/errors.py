"""The one error hierarchy of the product.

Every failure a user can cause or meet ends as one of these, with a message that says what is wrong and how to
fix it. The CLI turns them into one line (or a short list) and an exit code; nothing else should reach the user
as a Py4J stack trace. Errors from the JVM are read here too, and only here: what a Java error chain means
(a commit conflict, an out-of-memory, a stopped Spark) and the one line a user is shown for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = [
    "CATALOG_HINT",
    "MEMORY_HINT",
    "AuditError",
    "BadFilterError",
    "CommitFailed",
    "ConfigError",
    "ConflictError",
    "DefinitionChangedError",
    "LockLostError",
    "LockedError",
    "NotReadyError",
    "RejectThresholdError",
    "RestoreError",
    "RollbackRefusedError",
    "RunInterruptedError",
    "SourceError",
    "SummaryPipelineError",
    "TablesNotEmptyError",
    "UnknownAccountError",
    "catalog_unreachable",
    "describe",
    "is_commit_conflict",
    "jvm_stopped",
    "out_of_memory",
    "spark_error_message",
]


class SummaryPipelineError(Exception):
    """Base of every error the product raises on purpose.

    ``exit_code`` is what the CLI exits with; 1 unless a subclass says otherwise. ``facts`` holds what the
    error is about as data (the table, the lock's holder, the counts), for callers and for ``--output json``;
    the message says the same in words.
    """

    exit_code = 1

    def __init__(self, message: str, **facts: Any) -> None:
        super().__init__(message)
        self.facts: dict[str, Any] = facts


class ConfigError(SummaryPipelineError):
    """The configuration is wrong: a file, a key, a type, a reference, an expression."""

    def __init__(self, problems: list[str], source: str = "config") -> None:
        self.problems = list(problems)
        self.source = source
        lines = "\n".join(f"  - {p}" for p in self.problems)
        noun = "problem" if len(self.problems) == 1 else "problems"
        super().__init__(f"{source}: {len(self.problems)} {noun}:\n{lines}", problems=self.problems, source=source)


class SourceError(SummaryPipelineError):
    """The source table is missing or does not fit the config."""


class NotReadyError(SummaryPipelineError):
    """The tables are not in a state the requested mode can start from (e.g. incremental before initial)."""


class TablesNotEmptyError(SummaryPipelineError):
    """``initial`` refuses to replace tables that already hold data unless asked to."""

    exit_code = 2


class RejectThresholdError(SummaryPipelineError):
    """More source rows were rejected than the config allows; summary and latest_summary were not written."""


class BadFilterError(SummaryPipelineError):
    """The ``--backfill-filter`` is not one boolean expression over source columns."""


class UnknownAccountError(SummaryPipelineError):
    """``inspect``: the account has no row in either table (or the key does not fit the key column)."""


class LockedError(SummaryPipelineError):
    """Another run holds the lock and may still be alive."""

    exit_code = 2


class LockLostError(SummaryPipelineError):
    """Another run took this run's lock (it judged this run dead); this run stops before its next commit."""


class RunInterruptedError(SummaryPipelineError):
    """Ctrl-C or SIGTERM stopped a run at a safe point; what it wrote was undone (or is, by the next run).

    Exits 128 + the signal's number (130, 143), as a shell reports a process the signal ended."""

    status = "interrupted"

    def __init__(self, message: str, signum: int, **facts: Any) -> None:
        super().__init__(message, signal=signum, **facts)
        self.exit_code = 128 + signum


class ConflictError(SummaryPipelineError):
    """Another writer committed to a table during this run; this run's writes were undone."""


class DefinitionChangedError(SummaryPipelineError):
    """The config's definition differs from the one that built the tables: a run would mix the two."""

    exit_code = 2


class AuditError(SummaryPipelineError):
    """The run's staged writes failed the audit: nothing was published (the branches stay for inspection)."""


class RollbackRefusedError(SummaryPipelineError):
    """A rollback would lose later runs and was not told to."""

    exit_code = 2


class RestoreError(SummaryPipelineError):
    """A table cannot be put back: somebody else committed on top, or the snapshot was expired."""


class CommitFailed(SummaryPipelineError):
    """The catalog refused a compare-and-swap because the table changed since it was read.

    Internal: the lock catches it and decides again; it reaches a user only as a :class:`LockedError`.
    """


def describe(err: BaseException) -> str:
    """One readable line for any error: a Java error as its class and message (and its root cause), never
    Py4J's "An error occurred while calling o123.sql"."""
    if getattr(err, "java_exception", None) is None:
        text = str(err).strip()
        return text.splitlines()[0] if text else type(err).__name__
    causes: list[str] = []
    for java in _java_causes(err):
        message = str(java.getMessage() or "").strip()
        line = message.splitlines()[0] if message else ""
        causes.append(f"{java.getClass().getSimpleName()}: {line}"[:300] if line else str(java.getClass().getName()))
    return causes[0] if len(causes) == 1 or causes[0] == causes[-1] else f"{causes[0]} (caused by {causes[-1]})"


#: What a Java error chain says when a JVM (the driver or an executor) ran out of heap or of execution memory.
_MEMORY_MARKS = ("OutOfMemoryError", "UNABLE_TO_ACQUIRE_MEMORY", "Java heap space", "GC overhead limit exceeded",
                 "Not enough memory to build and broadcast")
#: What it says when Spark itself has stopped under the run (after a fatal error such as an out-of-memory).
_STOPPED_MARKS = ("SparkContext was shut down", "stopped SparkContext", "SparkContext has been shutdown",
                  "Answer from Java side is empty", "Error while sending or receiving", "Connection refused")


def _java_causes(err: BaseException) -> Iterator[Any]:
    """The Java exception behind a Py4J error and its causes, outermost first (at most 20)."""
    java = getattr(err, "java_exception", None)
    for _ in range(20):
        if java is None:
            return
        yield java
        java = java.getCause()


def _chain(err: BaseException) -> str:
    """Every class name and message in an error and its causes, Python's and Java's, as one text to search."""
    parts: list[str] = []
    seen: BaseException | None = err
    for _ in range(20):
        if seen is None:
            break
        parts += [type(seen).__name__, str(seen)]
        for java in _java_causes(seen):
            parts += [str(java.getClass().getName()), str(java.getMessage() or "")]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts)


def out_of_memory(err: BaseException) -> bool:
    """True when ``err`` (or a cause) says a JVM ran out of memory."""
    text = _chain(err)
    return any(mark in text for mark in _MEMORY_MARKS)


def jvm_stopped(err: BaseException) -> bool:
    """True when ``err`` says Spark stopped (or its JVM died) under the run, which is how an out-of-memory in
    the driver usually shows: the job that ran out fails first, every later call then meets a dead context."""
    if isinstance(err, ConnectionError) or type(err).__name__ == "Py4JNetworkError":
        return True
    text = _chain(err)
    return any(mark in text for mark in _STOPPED_MARKS)


#: Iceberg's errors for a commit that lost to another writer (or whose outcome the catalog cannot tell).
_CONFLICTS = ("org.apache.iceberg.exceptions.CommitFailedException",
              "org.apache.iceberg.exceptions.ValidationException",
              "org.apache.iceberg.exceptions.CommitStateUnknownException")


def is_commit_conflict(err: BaseException) -> bool:
    """True when ``err`` (or its cause chain on the JVM side) is an Iceberg commit conflict."""
    return any(str(java.getClass().getName()) in _CONFLICTS for java in _java_causes(err))


#: What to do when Spark runs out of memory: the settings to raise, embedded and on a cluster.
MEMORY_HINT = ("Give Spark more memory in the config's \"spark\" block: \"spark.driver.memory\" when it runs "
               "embedded (default: half this machine's memory), \"spark.executor.memory\" and "
               "\"spark.executor.memoryOverhead\" on a cluster. Then run the same command again: it undoes "
               "what this run wrote and records it failed.")


#: What a Java error chain says when the catalog's server (a database, a metastore, a REST service) could not
#: be reached or dropped the connection: JDBC drivers, Hive's Thrift client, Iceberg's REST and AWS clients.
_UNREACHABLE_MARKS = ("org.postgresql.util.PSQLException", "java.sql.SQLTransientConnectionException",
                      "java.sql.SQLNonTransientConnectionException", "org.apache.iceberg.jdbc.UncheckedSQLException",
                      "org.apache.thrift.transport.TTransportException",
                      "org.apache.iceberg.exceptions.ServiceUnavailableException",
                      "org.apache.iceberg.exceptions.ServiceFailureException", "Unable to execute HTTP request",
                      "java.net.ConnectException", "java.net.SocketTimeoutException", "java.net.UnknownHostException")


def catalog_unreachable(err: BaseException) -> bool:
    """True when ``err`` says the catalog's server could not be reached, or went away during the call."""
    if getattr(err, "java_exception", None) is None:
        return False
    text = _chain(err)
    return any(mark in text for mark in _UNREACHABLE_MARKS)


#: The one message for an unreachable catalog: nothing of the run is visible, and the same command repairs it.
CATALOG_HINT = ("Check that the catalog's server is up and reachable from here (catalog.uri in the config), then "
                "run the same command again: a run's writes are published only at its end, and the next run "
                "undoes whatever this one staged.")


def spark_error_message(err: BaseException) -> str | None:
    """One meaningful line for a Spark/Py4J error, or None when ``err`` is not one."""
    module = type(err).__module__
    spark_error = module.startswith("pyspark") or module.startswith("py4j") or isinstance(err, ConnectionError)
    if not spark_error:
        return None
    if out_of_memory(err):
        return f"Spark ran out of memory ({describe(err)}). {MEMORY_HINT}"
    if catalog_unreachable(err):
        return f"the catalog cannot be reached ({describe(err)}). {CATALOG_HINT}"
    if jvm_stopped(err):
        return (f"Spark stopped during the run ({describe(err)}); most often its JVM ran out of memory, which "
                f"the log above shows as OutOfMemoryError. {MEMORY_HINT}")
    return f"Spark failed: {describe(err)}"
