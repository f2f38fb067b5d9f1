"""The tables' definition: the parts of the config that decide what the tables hold, and how two differ.

A run records the definition of the config it ran under in its ledger row, and after it succeeds each table it
writes carries the definition's fingerprint as a table property. A later run under a config whose definition
differs would mix two definitions in one table (new rows by the new rule beside old rows, old arrays shifted
into new ones), so it is refused with the changes listed key by key; ``summary-pipeline evolve`` applies them
(docs/operations.md, "Changing the config").

Settings that do not change what the tables hold (Spark, layout, thresholds, lock timeout, audit, tags, the
table names themselves) are not part of the definition: changing them needs nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from summary_pipeline.config import PipelineConfig, parse_config
from summary_pipeline.errors import DefinitionChangedError

__all__ = [
    "DEFINITION_PROPERTY",
    "FINGERPRINT_PROPERTY",
    "Change",
    "changes",
    "check_definition",
    "config_of",
    "definition",
    "fingerprint",
    "recorded_definition",
]

#: Table properties every table the pipeline writes carries once a run under this definition succeeded.
FINGERPRINT_PROPERTY = "summary-pipeline.definition-fingerprint"
DEFINITION_PROPERTY = "summary-pipeline.definition"

#: The entries of these lists are matched by name; a change to one of them can be applied column by column.
_COLUMN_LISTS = ("inferred_columns", "rolling_columns", "grid_columns")


def definition(cfg: PipelineConfig) -> dict[str, Any]:
    """The parts of ``cfg`` that decide the tables' contents, as plain JSON data (types normalised, so
    ``"Integer"`` and ``"int"`` are the same definition)."""
    return {
        "primary_column": cfg.primary_column,
        "partition_column": cfg.partition_column,
        "max_identifier_column": cfg.max_identifier_column,
        "columns": dict(cfg.columns),
        "date_col_list": list(cfg.date_col_list),
        "column_transformations": [{"name": c.name, "mapper_expr": c.mapper_expr}
                                   for c in cfg.column_transformations],
        "inferred_columns": [{"name": c.name, "mapper_expr": c.mapper_expr} for c in cfg.inferred_columns],
        "rolling_columns": [{"name": r.name, "mapper_expr": r.mapper_expr, "type": r.spark_type}
                            for r in cfg.rolling_columns],
        "grid_columns": [{"name": g.name, "mapper_rolling_column": g.mapper_rolling_column,
                          "placeholder": g.placeholder, "separator": g.separator} for g in cfg.grid_columns],
        "history_length": cfg.history_length,
        "soft_delete": {"column": cfg.soft_delete.column, "codes": list(cfg.soft_delete.codes)},
        "tie_breaker_columns": list(cfg.tie_breaker_columns),
        "latest_history_addon_cols": (None if cfg.latest_history_addon_cols is None
                                      else list(cfg.latest_history_addon_cols)),
    }


def fingerprint(defn: dict[str, Any]) -> str:
    """A short stable digest of a definition (canonical JSON, SHA-256).

    >>> fingerprint({"history_length": 36}) == fingerprint({"history_length": 36})
    True
    """
    text = json.dumps(defn, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Change:
    """One difference between two definitions: ``key`` (``history_length``, ``rolling_columns[x]``,
    ``rolling_columns[x].mapper_expr``), the old and the new value (None: absent).

    ``column`` says the change adds, drops or redefines one rolling, grid or inferred column, which ``evolve``
    can apply column by column; every other change needs a full rebuild."""

    key: str
    old: Any
    new: Any
    column: bool = False

    @property
    def list_name(self) -> str:
        """The config list a column change is in (``rolling_columns``), or the key."""
        return self.key.split("[", 1)[0]

    @property
    def name(self) -> str | None:
        """The column a column change is about, or None."""
        return self.key.split("[", 1)[1].split("]", 1)[0] if "[" in self.key else None

    def describe(self) -> str:
        """One line: ``key: old -> new``, or ``key: added (...)`` / ``key: removed``."""
        if self.old is None:
            return f"{self.key}: added ({_show(self.new)})"
        if self.new is None:
            return f"{self.key}: removed (was {_show(self.old)})"
        return f"{self.key}: {_show(self.old)} -> {_show(self.new)}"


def _show(value: Any) -> str:
    if isinstance(value, dict) and "name" in value:
        value = {k: v for k, v in value.items() if k != "name"}
    if isinstance(value, dict):
        return ", ".join(f"{k} {_show(v)}" for k, v in value.items())
    return json.dumps(value)


def _named(key: str, old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[Change]:
    """Changes between two lists of named entries: added, removed, changed field by field, and reordered."""
    column = key in _COLUMN_LISTS
    before, after = {e["name"]: e for e in old}, {e["name"]: e for e in new}
    found: list[Change] = []
    for name, entry in before.items():
        if name not in after:
            found.append(Change(f"{key}[{name}]", entry, None, column))
            continue
        for field, value in entry.items():
            if after[name].get(field) != value:
                found.append(Change(f"{key}[{name}].{field}", value, after[name].get(field), column))
    found += [Change(f"{key}[{name}]", None, entry, column) for name, entry in after.items() if name not in before]
    kept_old = [n for n in before if n in after]
    kept_new = [n for n in after if n in before]
    if kept_old != kept_new:
        found.append(Change(f"{key} order", kept_old, kept_new))
    return found


def changes(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """Every difference between the definition that built the tables (``old``) and a config's (``new``).

    >>> [c.describe() for c in changes({"history_length": 36}, {"history_length": 48})]
    ['history_length: 36 -> 48']
    """
    found: list[Change] = []
    for key in sorted(set(old) | set(new), key=lambda k: list(new).index(k) if k in new else len(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if isinstance(a, list) and isinstance(b, list) and all(isinstance(e, dict) and "name" in e for e in a + b):
            found += _named(key, a, b)
        elif isinstance(a, dict) and isinstance(b, dict):  # soft_delete.codes, columns.<source column>
            found += [Change(f"{key}.{c.key}", c.old, c.new) for c in changes(a, b)]
        else:
            found.append(Change(key, a, b))
    return found


def recorded_definition(rows: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The definition the tables hold and the ledger row that recorded it: the latest succeeded run that
    recorded one (a rolled-back run no longer counts: its tables were put back). None before any did
    (tables built by an earlier release, which the next run adopts)."""
    found = [r for r in rows if r["status"] == "succeeded" and r.get("definition")]
    if not found:
        return None
    never = dt.datetime.min
    latest = max(found, key=lambda r: (r["finished_at"] or r["started_at"] or never, r["started_at"] or never))
    return json.loads(latest["definition"]), latest


def config_of(cfg: PipelineConfig, defn: dict[str, Any]) -> PipelineConfig:
    """``cfg`` with its definition replaced by ``defn``: the config that built the tables, for comparing
    column lists and expressions."""
    raw = cfg.model_dump(by_alias=True, exclude_none=True)
    raw.update(defn)
    if defn.get("latest_history_addon_cols") is None:
        raw.pop("latest_history_addon_cols", None)
    return parse_config(raw, "the recorded definition")


def check_definition(cfg: PipelineConfig, ledger: list[dict[str, Any]], config_name: str,
                     instead: str = "run with the config that built them") -> None:
    """Refuse a config whose definition differs from the one the ledger (its rows) records for the tables.

    Raises:
        DefinitionChangedError: every change, key by key, and the command that applies them.
    """
    found = recorded_definition(ledger)
    if found is None:
        return
    diff = changes(found[0], definition(cfg))
    if not diff:
        return
    row = found[1]
    when = row["finished_at"] or row["started_at"]
    listed = "\n".join(f"  {c.describe()}" for c in diff)
    raise DefinitionChangedError(
        f"the config defines {cfg.destination_table} and {cfg.latest_history_table} differently from the "
        f"definition that built them (recorded by run {row['run_id']}, {row['mode']}"
        f"{f', {when:%Y-%m-%d %H:%M}' if when else ''}):\n{listed}\n"
        "Running under it would mix two definitions in the tables; nothing was read or written. Apply the change "
        f"with `summary-pipeline evolve --config {config_name}` (--dry-run shows its plan first), or {instead}.",
        changes=[c.describe() for c in diff])
