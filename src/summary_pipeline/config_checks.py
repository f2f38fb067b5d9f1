"""Cross-reference checks of a raw config dict (first phase, before Spark starts).

They work on the parsed JSON rather than the model, so they can be reported in the same message as the type
errors the model finds: one message lists every problem.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["IDENTIFIER", "reference_problems"]

#: What a column name must look like (the config model checks its own fields with it too).
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def reference_problems(cfg: Mapping[str, Any]) -> list[str]:
    """Cross-reference checks on the raw dict, so they can be reported beside type errors."""
    problems: list[str] = []

    def names(key: str) -> list[str]:
        items = cfg.get(key) or []
        return [i["name"] for i in items if isinstance(i, Mapping) and isinstance(i.get("name"), str)]

    columns = cfg.get("columns") if isinstance(cfg.get("columns"), Mapping) else {}
    assert isinstance(columns, Mapping)
    destinations = [v for v in columns.values() if isinstance(v, str)]
    dest_set = set(destinations)
    for name in sorted({d for d in destinations if destinations.count(d) > 1}):
        problems.append(f"columns: destination name {name!r} is used more than once")
    for source, dest in columns.items():
        if isinstance(dest, str) and not IDENTIFIER.match(dest):
            problems.append(f"columns.{source}: {dest!r} is not a column identifier")
    for key in ("primary_column", "partition_column", "max_identifier_column"):
        fixed = cfg.get(key)
        if not isinstance(fixed, str):
            continue
        name = fixed
        if name in columns and columns[name] != name:
            problems.append(f"columns.{name}: the {key} must keep its name (maps to {columns[name]!r})")
        if name not in columns and name in dest_set:
            problems.append(f"{key}: {name!r} must be a source column that keeps its name")
    soft = cfg.get("soft_delete") if isinstance(cfg.get("soft_delete"), Mapping) else {}
    assert isinstance(soft, Mapping)
    soft_col = soft.get("column", "soft_del_cd")
    inferred = names("inferred_columns")
    if isinstance(soft_col, str) and soft_col not in dest_set:
        problems.append(f"soft_delete.column: {soft_col!r} is not a destination name in columns")
    for i, name in enumerate(names("column_transformations")):
        if name not in dest_set:
            problems.append(f"column_transformations[{i}] ({name}): not a destination column; "
                            "add it to columns, or use inferred_columns for a derived column")
    for name in inferred:
        if name in dest_set:
            problems.append(f"inferred_columns ({name}): already a column; use column_transformations "
                            "to change it")
    for name in sorted({n for n in inferred if inferred.count(n) > 1}):
        problems.append(f"inferred_columns: {name!r} is defined more than once")
    for i, name in enumerate(cfg.get("date_col_list") or []):
        if isinstance(name, str) and name not in dest_set:
            problems.append(f"date_col_list[{i}]: {name!r} is not a destination name in columns")
    rolling = names("rolling_columns")
    for name in sorted({n for n in rolling if rolling.count(n) > 1}):
        problems.append(f"rolling_columns: {name!r} is defined more than once")
    length = cfg.get("history_length", 36)
    for i, item in enumerate(cfg.get("rolling_columns") or []):
        if not isinstance(item, Mapping):
            continue
        num = item.get("num_cols")
        if isinstance(num, int) and isinstance(length, int) and num != length:
            problems.append(f"rolling_columns[{i}] ({item.get('name')}).num_cols: {num} differs from "
                            f"history_length {length}; they must be equal")
        hist = f"{item.get('name')}_history"
        if hist in dest_set or hist in inferred:
            problems.append(f"rolling_columns[{i}]: {hist!r} would clash with a column of that name")
    grids = names("grid_columns")
    for i, item in enumerate(cfg.get("grid_columns") or []):
        if isinstance(item, Mapping) and item.get("mapper_rolling_column") not in rolling:
            ref = item.get("mapper_rolling_column")
            guess = difflib.get_close_matches(str(ref), rolling, n=1)
            hint = f"; did you mean {guess[0]!r}?" if guess else f"; rolling columns are {rolling}"
            problems.append(f"grid_columns[{i}] ({item.get('name')}).mapper_rolling_column: {ref!r} is not a "
                            f"rolling column{hint}")
        if isinstance(item, Mapping) and "separator" in item and "seperator" in item:
            problems.append(f"grid_columns[{i}]: give 'separator' or the seed's 'seperator', not both")
        if isinstance(item, Mapping) and (item.get("name") in dest_set or item.get("name") in inferred):
            problems.append(f"grid_columns[{i}]: {item.get('name')!r} clashes with a column of that name")
    addon = cfg.get("latest_history_addon_cols")
    if isinstance(addon, list):
        known = dest_set | set(inferred) | set(grids) | {f"{r}_history" for r in rolling} | {"fact_base_ts"}
        known |= {str(cfg[k]) for k in ("primary_column", "partition_column", "max_identifier_column")
                  if isinstance(cfg.get(k), str)}
        for i, name in enumerate(addon):
            if name not in known:
                guess = difflib.get_close_matches(str(name), sorted(known), n=1)
                hint = f"; did you mean {guess[0]!r}?" if guess else ""
                problems.append(f"latest_history_addon_cols[{i}]: {name!r} is not a summary column{hint}")
    return problems
