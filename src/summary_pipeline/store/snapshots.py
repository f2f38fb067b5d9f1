"""Iceberg's commit primitives the crash-safety protocol stands on, reached through Iceberg's Java API.

* :func:`tagged` runs writes so that every snapshot they commit carries the run id in its summary (Iceberg's
  ``CommitMetadata``; the SQL ``MERGE`` has no write option for it).
* :func:`state` / :func:`restore` read a table's current snapshot and put it back to an earlier one, after
  checking that every snapshot in between was made by the runs being undone, so a restore never throws away
  somebody else's commit.
* :func:`swap_properties` is a compare-and-swap of table properties: the catalog's own atomic metadata swap,
  which fails when anyone committed in between. The run lock is built on it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, TypeVar

from pyspark.sql import SparkSession

from summary_pipeline.errors import CommitFailed, RestoreError, is_commit_conflict
from summary_pipeline.sql_text import sql_table
from summary_pipeline.store.tables import table_exists

__all__ = [
    "NO_SNAPSHOT",
    "RUN_ID_PROPERTY",
    "iceberg_table",
    "live_rows",
    "partition_fields",
    "restore",
    "set_properties",
    "snapshot_time",
    "state",
    "swap_properties",
    "table_properties",
    "tagged",
]

RUN_ID_PROPERTY = "summary-pipeline.run-id"

#: :func:`state` of a table that exists but has no snapshot yet (None means the table does not exist).
NO_SNAPSHOT = -1

T = TypeVar("T")


def iceberg_table(spark: SparkSession, name: str) -> Any:
    """The Iceberg Java table behind ``name``, refreshed from the catalog."""
    jvm = spark._jvm
    assert jvm is not None
    # Name resolution reads the thread's active session (the default catalog): a new thread, such as the lock's
    # heartbeat, has none until it is set.
    jvm.org.apache.spark.sql.SparkSession.setActiveSession(spark._jsparkSession)
    table = jvm.org.apache.iceberg.spark.Spark3Util.loadIcebergTable(spark._jsparkSession, name)
    table.refresh()
    return table


def tagged(spark: SparkSession, properties: Mapping[str, str], write: Callable[[], T]) -> T:
    """Run ``write`` so that each Iceberg commit it makes carries ``properties`` in its snapshot summary.

    Iceberg reads the properties from a JVM thread-local that ``CommitMetadata.withCommitProperties`` sets
    around a callable; PySpark pins each Python thread to one JVM thread, so the Spark calls ``write`` makes
    from the callback land on that thread. Exceptions cross back as they were raised.
    """
    from pyspark.java_gateway import ensure_callback_server_started

    gateway = spark.sparkContext._gateway
    ensure_callback_server_started(gateway)  # type: ignore[no-untyped-call]
    jvm = spark._jvm
    assert gateway is not None and jvm is not None

    class _Body:
        outcome: tuple[bool, Any] = (False, None)

        def call(self) -> None:
            try:
                self.outcome = (True, write())
            except BaseException as err:  # re-raised below, outside the JVM
                self.outcome = (False, err)

        class Java:
            implements: ClassVar[list[str]] = ["java.util.concurrent.Callable"]

    body = _Body()
    props = jvm.java.util.HashMap()
    for key, value in properties.items():
        props.put(key, value)
    runtime = jvm.java.lang.Class.forName("java.lang.RuntimeException")
    jvm.org.apache.iceberg.spark.CommitMetadata.withCommitProperties(props, body, runtime)
    done, value = body.outcome
    if not done:
        raise value
    result: T = value
    return result


def state(spark: SparkSession, name: str) -> int | None:
    """The table's current snapshot id; :data:`NO_SNAPSHOT` when it has none; None when it does not exist."""
    if not table_exists(spark, name):
        return None
    snapshot = iceberg_table(spark, name).currentSnapshot()
    return int(snapshot.snapshotId()) if snapshot is not None else NO_SNAPSHOT


def _since(table: Any, before: int | None) -> list[tuple[int, str | None]]:
    """(snapshot id, run id) of the current snapshot and its ancestors down to, not including, ``before``.

    Compactions (Iceberg's ``replace`` operation: the same rows in other files) are left out: undoing one loses
    nothing, so they never stand in the way of a restore.
    """
    found = []
    snapshot = table.currentSnapshot()
    while snapshot is not None and int(snapshot.snapshotId()) != before:
        if str(snapshot.operation()) != "replace":
            found.append((int(snapshot.snapshotId()), snapshot.summary().get(RUN_ID_PROPERTY)))
        parent = snapshot.parentId()
        snapshot = table.snapshot(parent) if parent is not None else None
    return found


def live_rows(spark: SparkSession, name: str, ref: int | str | None) -> int | None:
    """Rows a reader of the table sees at snapshot id or branch ``ref``, from its snapshot summary (its data
    files' records less its position deletes: no file is read); 0 for no snapshot; None when the summary does
    not say (equality deletes, or a summary without totals)."""
    if ref is None or ref == NO_SNAPSHOT:
        return 0
    snapshot = iceberg_table(spark, name).snapshot(ref)
    if snapshot is None:
        return None
    summary = dict(snapshot.summary())
    if "total-records" not in summary or int(summary.get("total-equality-deletes", "0")) != 0:
        return None
    return int(summary["total-records"]) - int(summary.get("total-position-deletes", "0"))


def snapshot_time(spark: SparkSession, name: str, snapshot_id: int) -> dt.datetime | None:
    """When a snapshot was committed (naive UTC), or None when the table or the snapshot is gone."""
    if not table_exists(spark, name):
        return None
    snapshot = iceberg_table(spark, name).snapshot(snapshot_id)
    if snapshot is None:
        return None
    return dt.datetime.fromtimestamp(int(snapshot.timestampMillis()) / 1000, dt.timezone.utc).replace(tzinfo=None)


def restore(spark: SparkSession, before: Mapping[str, int | None], runs: Iterable[str]) -> list[str]:
    """Put each table back to its snapshot in ``before``, undoing only commits made by ``runs``.

    ``before`` maps a table to its :func:`state` when the first of ``runs`` started. A table that did not exist
    then is dropped; one without a snapshot is emptied; one with no commit by ``runs`` since is left alone.
    Every table is checked before any is changed: nothing changes (RestoreError) when a table has commits by
    ``runs`` mixed with someone else's, or lost the snapshot to expiry. Returns what was done, per table.
    """
    allowed = set(runs)
    plan: list[tuple[str, int | None, Any]] = []
    for name in before:  # names the ledger holds, written into DROP and DELETE below: all checked before any change
        sql_table(name)
    for name, snapshot_id in before.items():
        if not table_exists(spark, name):
            continue
        table = iceberg_table(spark, name)
        current = table.currentSnapshot()
        if current is not None and int(current.snapshotId()) == snapshot_id:
            continue
        writers = {run for _, run in _since(table, snapshot_id)}
        if not writers & allowed:
            continue  # nothing of these runs to undo here (a failed commit, or only others' commits)
        foreign = writers - allowed
        if foreign:
            who = ", ".join(sorted(str(r) if r else "a writer outside this pipeline" for r in foreign))
            raise RestoreError(
                f"cannot put {name} back to snapshot {snapshot_id} (the last good state): {who} committed to it "
                "on top of commits of a run that did not succeed, so neither can be undone alone. Inspect "
                f"{name}.snapshots, decide what to keep, and set it by hand (e.g. CALL <catalog>.system."
                f"set_current_snapshot('{name}', {snapshot_id})); then run the same command again.")
        if snapshot_id not in (None, NO_SNAPSHOT) and table.snapshot(snapshot_id) is None:
            raise RestoreError(f"cannot put {name} back: snapshot {snapshot_id} was expired. Rebuild with "
                               "--mode initial --replace.")
        plan.append((name, snapshot_id, table))
    done = []
    for name, snapshot_id, table in plan:
        if snapshot_id is None:
            spark.sql(f"DROP TABLE IF EXISTS {name}")
            done.append(f"{name}: dropped (it did not exist before)")
            continue
        if snapshot_id == NO_SNAPSHOT:
            spark.sql(f"DELETE FROM {name}")
            done.append(f"{name}: emptied (it had no snapshot before)")
        else:
            _set_current(spark, table, snapshot_id)
            done.append(f"{name}: back to snapshot {snapshot_id}")
        spark.catalog.refreshTable(name)
    return done


def _set_current(spark: SparkSession, table: Any, snapshot_id: int) -> None:
    """Make ``snapshot_id`` main's snapshot and its schema the table's, in one metadata commit.

    Iceberg's own rollback moves only the snapshot: after a run that changed the columns (``evolve``, a
    rebuild under a new config), the old rows would be read through the new schema, its added columns NULL
    and its dropped ones missing. Putting the snapshot's schema back with it restores the table as it was.
    """
    jvm = spark._jvm
    assert jvm is not None
    ops = table.operations()
    base = ops.refresh()
    builder = jvm.org.apache.iceberg.TableMetadata.buildFrom(base)
    schema_id = base.snapshot(snapshot_id).schemaId()
    if schema_id is not None and int(schema_id) != int(base.currentSchemaId()):
        builder.setCurrentSchema(int(schema_id))
    builder.setBranchSnapshot(snapshot_id, "main")
    ops.commit(base, builder.build())


def partition_fields(spark: SparkSession, name: str) -> list[tuple[str, str]]:
    """The table's partition spec as (source column, transform) pairs, e.g. ``[("month", "identity")]``."""
    table = iceberg_table(spark, name)
    schema = table.schema()
    return [(str(schema.findColumnName(f.sourceId())), str(f.transform())) for f in table.spec().fields()]


def table_properties(spark: SparkSession, name: str) -> dict[str, str]:
    """The table's properties as the catalog holds them now."""
    return {str(k): str(v) for k, v in dict(iceberg_table(spark, name).properties()).items()}


def set_properties(spark: SparkSession, name: str, properties: Mapping[str, str]) -> bool:
    """Set table properties where they differ (a metadata commit, no snapshot); True when it changed any."""
    table = iceberg_table(spark, name)
    current = dict(table.properties())
    changed = {k: v for k, v in properties.items() if current.get(k) != v}
    if not changed:
        return False
    update = table.updateProperties()
    for key, value in changed.items():
        update = update.set(key, value)
    update.commit()
    return True


def swap_properties(spark: SparkSession, name: str, decide: Callable[[dict[str, str]], Mapping[str, str | None]]
                    ) -> dict[str, str]:
    """Compare-and-swap the table's properties.

    ``decide`` gets the current properties and returns the changes (None removes a key); it may raise to
    refuse. The change is committed only if the table's metadata is still the one ``decide`` saw; otherwise
    :class:`CommitFailed` is raised and the caller decides again. Returns the properties ``decide`` saw.
    """
    jvm = spark._jvm
    assert jvm is not None
    ops = iceberg_table(spark, name).operations()
    base = ops.refresh()
    seen = {str(k): str(v) for k, v in dict(base.properties()).items()}
    changes = decide(seen)
    builder = jvm.org.apache.iceberg.TableMetadata.buildFrom(base)
    updates = jvm.java.util.HashMap()
    removals = jvm.java.util.HashSet()
    for key, value in changes.items():
        if value is None:
            removals.add(key)
        else:
            updates.put(key, value)
    builder.setProperties(updates)
    builder.removeProperties(removals)
    try:
        ops.commit(base, builder.build())
    except Exception as err:
        if is_commit_conflict(err):
            raise CommitFailed(str(name)) from err
        raise
    return seen
