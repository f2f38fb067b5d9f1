"""What a run asked for and what it did: plain data shared by the runner, the console and the ledger."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MODES", "MONTH", "RunOptions", "RunResult", "stored"]

MODES = ("initial", "incremental", "forward", "backfill")
#: A month as --start-month and --end-month take it: YYYY-MM.
MONTH = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")


@dataclass(frozen=True)
class RunOptions:
    """The command line of one run, checked by the CLI."""

    mode: str = "incremental"
    start_month: str | None = None
    end_month: str | None = None
    backfill_filter: str | None = None
    dry_run: bool = False
    replace: bool = False
    #: Audit the staged writes before publishing them; None: as the config says (``audit``).
    audit: bool | None = None


def stored(kind: str, column: str | None = None) -> dict[str, str]:
    """Field metadata: the ledger keeps this field, as a column of Spark type ``kind`` (named ``column``, else
    as the field). The ledger's schema and rows are derived from these marks (:mod:`summary_pipeline.store.ledger`)."""
    return {"ledger": kind, "column": column or ""}


@dataclass
class RunResult:
    """The figures of one run: printed by the console, stored in the ledger (one row per run), returned to callers.

    Case counts follow SPEC 6: ``case_i`` a new account's earliest month, ``case_iv`` its later months,
    ``case_ii`` forward months, ``case_iii`` backfills/corrections; deletes and duplicates separately.

    The fields marked :func:`stored` are the ledger's columns, in this order; the ledger adds one more,
    ``details``, the whole record as JSON.
    """

    run_id: str = field(metadata=stored("string"))
    mode: str = field(metadata=stored("string"))
    status: str = field(default="running", metadata=stored("string"))
    dry_run: bool = False
    source_rows: int = field(default=0, metadata=stored("bigint"))
    rejected: dict[str, int] = field(default_factory=dict, metadata=stored("bigint", "rejected_rows"))
    case_i: int = field(default=0, metadata=stored("bigint"))
    case_ii: int = field(default=0, metadata=stored("bigint"))
    case_iii: int = field(default=0, metadata=stored("bigint"))
    case_iv: int = field(default=0, metadata=stored("bigint"))
    soft_deletes_applied: int = field(default=0, metadata=stored("bigint"))
    soft_deletes_ignored: int = field(default=0, metadata=stored("bigint"))
    duplicates_dropped: int = field(default=0, metadata=stored("bigint"))
    accounts: int = 0
    first_month: str | None = None
    last_month: str | None = None
    summary_rows_written: int = field(default=0, metadata=stored("bigint"))
    latest_rows_written: int = field(default=0, metadata=stored("bigint"))
    #: Each table's snapshot id before and after the run (None: the table did not exist; -1: no snapshot).
    snapshots_before: dict[str, int | None] = field(default_factory=dict, metadata=stored("map<string,bigint>"))
    snapshots_after: dict[str, int | None] = field(default_factory=dict, metadata=stored("map<string,bigint>"))
    watermark_read: dt.datetime | None = field(default=None, metadata=stored("timestamp"))
    watermark_committed: dt.datetime | None = field(default=None, metadata=stored("timestamp"))
    #: The snapshot of the source table the run read, the same one from start to end (None: not an Iceberg table,
    #: a table without a snapshot, or a run that reads no source: rollback, maintain).
    source_snapshot: int | None = field(default=None, metadata=stored("bigint"))
    arguments: dict[str, Any] = field(default_factory=dict, metadata=stored("string"))
    host: str | None = field(default=None, metadata=stored("string"))
    pid: int | None = field(default=None, metadata=stored("bigint"))
    started_at: dt.datetime | None = field(default=None, metadata=stored("timestamp"))
    finished_at: dt.datetime | None = field(default=None, metadata=stored("timestamp"))
    timings: dict[str, float] = field(default_factory=dict, metadata=stored("map<string,double>"))
    #: Monitoring figures (docs/operations.md, "Monitoring"): data quality of the batch and of the rows written,
    #: partitions written, and Spark's own byte counts for the run's jobs.
    metrics: dict[str, int] = field(default_factory=dict, metadata=stored("map<string,bigint>"))
    ignored_config_keys: list[str] = field(default_factory=list)
    #: Summary months this run wrote (None: the whole table was replaced); maintenance compacts them.
    months_written: list[str] | None = field(default_factory=list)
    #: Tags this run put on the snapshots it published (the same name on each table).
    tags: list[str] = field(default_factory=list)
    #: Warnings for the operator (a lock taken over, a dead run undone).
    warnings: list[str] = field(default_factory=list)
    message: str | None = None
    error: str | None = field(default=None, metadata=stored("string"))
    #: The definition the run's config gives the tables (definition.py), as JSON; None for runs that change no
    #: row (rollback, maintain). The latest succeeded run's is the definition the tables hold.
    definition: str | None = field(default=None, metadata=stored("string"))

    @property
    def rejected_total(self) -> int:
        """All rejected source rows, whatever the reason."""
        return sum(self.rejected.values())

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for ``--output json`` and the ledger)."""
        data = dataclasses.asdict(self)
        data["rejected_total"] = self.rejected_total
        return data
