"""Reading the tables as they were: "what did we report then".

A reference names one consistent state of summary, latest_summary and the change record together:

* a **run id**: the state that run published (its ledger row's ``snapshots_after``), or, for a run whose staged
  writes were never published (a failed audit), its branches while they exist;
* a **tag** (``report-2026-01``, made after a successful run; docs/operations.md) or a **branch** of the tables;
* a **timestamp** (``2026-01-31`` or ``2026-01-31 18:00:00``): the state the last run finished by then left,
  from the ledger, so both tables come from the same run (Iceberg's own ``TIMESTAMP AS OF`` reads each table
  at its own commit time, and one run commits the tables a few milliseconds apart).

Each table is then read with Iceberg's read options (``snapshot-id``, ``branch``, ``tag``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from summary_pipeline.config import PipelineConfig
from summary_pipeline.errors import SummaryPipelineError
from summary_pipeline.store.ledger import ledger_rows
from summary_pipeline.store.refs import refs, run_branch

__all__ = ["NOW", "AsOf", "resolve"]

_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d")


@dataclass(frozen=True)
class AsOf:
    """A resolved reference: how to read each table (Iceberg read options), and what it is, in words."""

    label: str
    options: dict[str, dict[str, str]] = field(default_factory=dict)

    def read(self, spark: SparkSession, table: str) -> DataFrame:
        """The table as of this reference (a table the reference does not cover is read as it is now)."""
        reader = spark.read
        for key, value in self.options.get(table, {}).items():
            reader = reader.option(key, value)
        return reader.table(table)


#: The tables as they are now (no label: nothing to say about which state is read).
NOW = AsOf("")


def _timestamp(text: str) -> dt.datetime | None:
    for fmt in _FORMATS:
        try:
            return dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def _at_snapshots(label: str, snapshots: dict[str, Any]) -> AsOf:
    return AsOf(label, {t: {"snapshot-id": str(s)} for t, s in snapshots.items() if s is not None and s >= 0})


def resolve(spark: SparkSession, cfg: PipelineConfig, reference: str) -> AsOf:
    """The state ``reference`` names (see the module docstring); raises SummaryPipelineError when it names
    none, listing what does exist."""
    tables = (cfg.destination_table, cfg.latest_history_table, cfg.changes_table)
    rows = ledger_rows(spark, cfg.ledger_table)
    run = next((r for r in rows if r["run_id"] == reference), None)
    found = refs(spark, cfg.destination_table)
    if run is not None:
        branch = run_branch(reference)
        if branch in found:
            return AsOf(f"run {reference}'s staged writes (branch {branch}, not published)",
                        {t: {"branch": branch} for t in tables if branch in refs(spark, t)})
        if run["status"] not in ("succeeded", "rolled_back") or run["mode"] in ("maintain", "rollback"):
            raise SummaryPipelineError(
                f"run {reference} is {run['status']} ({run['mode']}): it published no state of its own, and no "
                "staged writes of it remain (the next run removes them)")
        return _at_snapshots(f"as published by run {reference} ({run['mode']}, finished "
                             f"{run['finished_at']:%Y-%m-%d %H:%M:%S})", dict(run["snapshots_after"] or {}))
    if reference in found:
        kind = found[reference][0].lower()
        return AsOf(f"{kind} {reference}", {t: {kind: reference} for t in tables if reference in refs(spark, t)})
    when = _timestamp(reference)
    if when is not None:
        done = [r for r in rows if r["status"] in ("succeeded", "rolled_back") and r["finished_at"] is not None
                and r["finished_at"] <= when]
        if not done:
            raise SummaryPipelineError(f"no run had finished by {reference}: the tables held nothing the pipeline "
                                       "wrote then")
        last = max(done, key=lambda r: r["finished_at"])
        return _at_snapshots(f"as of {reference}: as run {last['run_id']} ({last['mode']}) left them at "
                             f"{last['finished_at']:%Y-%m-%d %H:%M:%S}", dict(last["snapshots_after"] or {}))
    tags = sorted(name for name, (kind, _) in found.items() if kind == "TAG")
    listed = ", ".join(tags[-5:]) or "none"
    raise SummaryPipelineError(f"{reference!r} is neither a run id in {cfg.ledger_table}, a tag or branch of "
                               f"{cfg.destination_table} (tags: {listed}), nor a timestamp (YYYY-MM-DD[ HH:MM:SS])")
