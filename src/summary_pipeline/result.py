"""What a run asked for and what it did: plain data shared by the runner, the console and the ledger."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MODES", "RunOptions", "RunResult"]

MODES = ("initial", "incremental", "forward", "backfill")


@dataclass(frozen=True)
class RunOptions:
    """The command line of one run, checked by the CLI."""

    mode: str = "incremental"
    start_month: str | None = None
    end_month: str | None = None
    backfill_filter: str | None = None
    dry_run: bool = False
    replace: bool = False


@dataclass
class RunResult:
    """The figures of one run: printed by the console, stored in the ledger (one row per run), returned to callers.

    Case counts follow SPEC 6: ``case_i`` a new account's earliest month, ``case_iv`` its later months,
    ``case_ii`` forward months, ``case_iii`` backfills/corrections; deletes and duplicates separately.
    """

    run_id: str
    mode: str
    status: str = "running"
    dry_run: bool = False
    source_rows: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    case_i: int = 0
    case_ii: int = 0
    case_iii: int = 0
    case_iv: int = 0
    soft_deletes_applied: int = 0
    soft_deletes_ignored: int = 0
    duplicates_dropped: int = 0
    accounts: int = 0
    first_month: str | None = None
    last_month: str | None = None
    summary_rows_written: int = 0
    latest_rows_written: int = 0
    #: Each table's snapshot id before and after the run (None: the table did not exist; -1: no snapshot).
    snapshots_before: dict[str, int | None] = field(default_factory=dict)
    snapshots_after: dict[str, int | None] = field(default_factory=dict)
    watermark_read: dt.datetime | None = None
    watermark_committed: dt.datetime | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    host: str | None = None
    pid: int | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    timings: dict[str, float] = field(default_factory=dict)
    #: Monitoring figures (docs/operations.md, "Metrics"): data quality of the batch and of the rows written,
    #: partitions written, and Spark's own byte counts for the run's jobs.
    metrics: dict[str, int] = field(default_factory=dict)
    ignored_config_keys: list[str] = field(default_factory=list)
    #: Summary months this run wrote (None: the whole table was replaced); maintenance compacts them.
    months_written: list[str] | None = field(default_factory=list)
    #: Warnings for the operator (a lock taken over, a dead run undone).
    warnings: list[str] = field(default_factory=list)
    message: str | None = None
    error: str | None = None

    @property
    def rejected_total(self) -> int:
        """All rejected source rows, whatever the reason."""
        return sum(self.rejected.values())

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for ``--output json`` and the ledger)."""
        data = dataclasses.asdict(self)
        data["rejected_total"] = self.rejected_total
        return data
