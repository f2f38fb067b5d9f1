"""Iceberg branches and tags: where a run stages its writes before it publishes them, and the marks that keep a
published state readable ("what did we report then").

* A run writes each table's changes to its own branch, :func:`run_branch` (``sp_run_<run id>``), made from the
  table's main. Readers of main see nothing of it until :func:`fast_forward` moves main to the branch's head:
  one metadata commit per table, which fails (a conflict) when anyone committed to main meanwhile.
* Branches of runs that did not publish stay for inspection (``inspect --run-id``) until the next run removes
  them (:func:`drop_run_branches`).
* :func:`tag` names a published snapshot, with a retention; Iceberg's snapshot expiry never removes a
  snapshot a live tag or branch refers to.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import SparkSession

from summary_pipeline.errors import ConflictError, is_commit_conflict
from summary_pipeline.store.snapshots import RUN_ID_PROPERTY, iceberg_table
from summary_pipeline.store.tables import table_exists

__all__ = [
    "BRANCH_PREFIX",
    "at_ref",
    "drop_ref",
    "drop_run_branches",
    "drop_tags_of",
    "ensure_branch",
    "fast_forward",
    "refs",
    "run_branch",
    "tag",
]

#: Every run branch's name starts so; nothing else in the pipeline makes branches.
BRANCH_PREFIX = "sp_run_"


def run_branch(run_id: str) -> str:
    """The branch a run stages its writes on.

    >>> run_branch("042affb8ad3040b2")
    'sp_run_042affb8ad3040b2'
    """
    return f"{BRANCH_PREFIX}{run_id}"


def at_ref(table: str, ref: str) -> str:
    """The identifier that reads or writes ``table`` at branch ``ref`` (Iceberg's ``branch_`` suffix).

    >>> at_ref("default.summary", "sp_run_1")
    'default.summary.branch_sp_run_1'
    """
    return f"{table}.branch_{ref}"


def refs(spark: SparkSession, name: str) -> dict[str, tuple[str, int]]:
    """The table's refs: name -> (``BRANCH`` or ``TAG``, snapshot id); empty when the table is missing."""
    if not table_exists(spark, name):
        return {}
    found = iceberg_table(spark, name).refs()
    return {str(k): (str(v.type()), int(v.snapshotId())) for k, v in dict(found).items()}


def ensure_branch(spark: SparkSession, name: str, branch: str, run_id: str) -> None:
    """Make ``branch`` from the table's main, unless it exists. A table without a snapshot gets an empty one on
    the branch, carrying the run id (so undoing the run knows it as the run's own)."""
    table = iceberg_table(spark, name)
    if branch in dict(table.refs()):
        return
    current = table.currentSnapshot()
    if current is None:
        table.newFastAppend().toBranch(branch).set(RUN_ID_PROPERTY, run_id).commit()
    else:
        table.manageSnapshots().createBranch(branch, current.snapshotId()).commit()
    spark.catalog.refreshTable(name)


def fast_forward(spark: SparkSession, name: str, branch: str) -> int:
    """Move the table's main to the head of ``branch`` (publish it); returns the new main snapshot id.

    Raises ConflictError when main is not an ancestor of the branch's head: someone else committed to main.
    """
    table = iceberg_table(spark, name)
    try:
        table.manageSnapshots().fastForwardBranch("main", branch).commit()
    except Exception as err:
        if is_commit_conflict(err) or "not an ancestor" in str(err) or "Cannot fast-forward" in str(err):
            raise ConflictError(f"{name} was changed by another writer while this run staged its writes, so they "
                                "were not published. Run the same command again.", table=name) from err
        raise
    spark.catalog.refreshTable(name)
    return int(iceberg_table(spark, name).currentSnapshot().snapshotId())


def drop_ref(spark: SparkSession, name: str, ref: str) -> None:
    """Remove a branch or tag from the table (its snapshots stay until expiry)."""
    table = iceberg_table(spark, name)
    kind = dict(table.refs()).get(ref)
    if kind is None:
        return
    manage = table.manageSnapshots()
    (manage.removeTag(ref) if str(kind.type()) == "TAG" else manage.removeBranch(ref)).commit()
    spark.catalog.refreshTable(name)


def drop_run_branches(spark: SparkSession, tables: tuple[str, ...]) -> list[str]:
    """Remove every run branch from the tables; returns 'table: branch' per branch removed."""
    gone = []
    for name in tables:
        for ref, (kind, _) in refs(spark, name).items():
            if kind == "BRANCH" and ref.startswith(BRANCH_PREFIX):
                drop_ref(spark, name, ref)
                gone.append(f"{name}: {ref}")
    return gone


def drop_tags_of(spark: SparkSession, name: str, run_ids: list[str]) -> list[str]:
    """Remove the table's tags on snapshots that ``run_ids`` made; returns their names."""
    if not table_exists(spark, name):
        return []
    table = iceberg_table(spark, name)
    gone = []
    for ref, (kind, snapshot_id) in refs(spark, name).items():
        snapshot = table.snapshot(snapshot_id)
        if kind == "TAG" and snapshot is not None and snapshot.summary().get(RUN_ID_PROPERTY) in run_ids:
            drop_ref(spark, name, ref)
            gone.append(ref)
    return gone


def tag(spark: SparkSession, name: str, tag_name: str, snapshot_id: int, retain_days: int | None) -> bool:
    """Tag ``snapshot_id`` of the table as ``tag_name`` (kept ``retain_days`` days, or for ever with None),
    unless a tag of that name exists; returns whether it tagged."""
    table: Any = iceberg_table(spark, name)
    if tag_name in dict(table.refs()):
        return False
    manage = table.manageSnapshots().createTag(tag_name, snapshot_id)
    if retain_days is not None:
        manage = manage.setMaxRefAgeMs(tag_name, retain_days * 24 * 3600 * 1000)
    manage.commit()
    spark.catalog.refreshTable(name)
    return True
