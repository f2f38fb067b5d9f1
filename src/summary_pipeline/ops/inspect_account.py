"""``inspect``: one account as the tables hold it, laid out to answer "why does this account look wrong".

Two views, both from the tables and nothing else:

* the account's summary rows, newest month first: flags (``latest`` for the month latest_summary holds,
  ``tombstone <code>`` for a deleted month), each rolling column's own value (history index 0, which is what
  every later row shows for this month), ``base_ts``, ``fact_base_ts`` and the grid strings;
* the latest_summary row's history arrays, one line per month back (index k = k months before its month), so a
  value missing or in the wrong place shows at a glance.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from summary_pipeline.config import PipelineConfig
from summary_pipeline.core.engine import month_name
from summary_pipeline.core.prepare import is_active
from summary_pipeline.errors import NotReadyError, UnknownAccountError
from summary_pipeline.store.as_of import NOW, AsOf
from summary_pipeline.store.tables import location, table_exists

__all__ = ["AccountView", "inspect_account"]


@dataclass
class AccountView:
    """What :func:`inspect_account` found: ready-to-print rows (month strings, values as they are)."""

    key: str
    summary_table: str
    latest_table: str
    rolling: list[str]
    months: list[dict[str, Any]] = field(default_factory=list)
    latest_month: str | None = None
    latest_base_ts: Any = None
    history: list[dict[str, Any]] = field(default_factory=list)
    #: The state shown, when not the tables' current one (``inspect --as-of``).
    as_of: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"account": self.key, "summary_table": self.summary_table, "latest_table": self.latest_table,
                "months": self.months, "latest_month": self.latest_month, "latest_base_ts": self.latest_base_ts,
                "latest_history": self.history, "as_of": self.as_of}


def _key_literal(spark: SparkSession, cfg: PipelineConfig, key: str) -> Any:
    """The account key cast to the key column's type; a key that does not fit is an error, not a silent miss.

    The key is data (a row of a one-row frame), never SQL text; only the type's name, from the table's schema,
    is written into the cast."""
    kind = spark.table(cfg.destination_table).schema[cfg.key].dataType.simpleString()
    if not re.fullmatch(r"[a-z][a-z0-9_]*(\(\d+(,\d+)?\))?", kind):
        raise UnknownAccountError(f"{cfg.key} has type {kind}, which inspect cannot look an account up by")
    value = spark.createDataFrame([(key,)], "k string").select(F.expr(f"try_cast(k AS {kind})")).first()
    if value is None or value[0] is None:
        raise UnknownAccountError(f"{key!r} is not a value of {cfg.key} ({kind})")
    return value[0]


def inspect_account(spark: SparkSession, cfg: PipelineConfig, key: str, config_name: str = "config",
                    as_of: AsOf = NOW) -> AccountView:
    """Read one account from summary and latest_summary (each read filtered by key; Iceberg skips files whose
    key range excludes it).

    Raises:
        NotReadyError: the tables do not exist yet.
        UnknownAccountError: the account has no row in either table.

    ``as_of`` reads the tables as a run, tag, branch or timestamp left them (:mod:`summary_pipeline.store.as_of`).
    """
    for table in (cfg.destination_table, cfg.latest_history_table):
        if not table_exists(spark, table):
            raise NotReadyError(f"{table} does not exist in {location(spark, config_name)}: run --mode initial "
                                "first", table=table)
    value = _key_literal(spark, cfg, key)
    rolling = [r.name for r in cfg.rolling_columns]
    h = cfg.history_length
    code = F.col(cfg.soft_delete.column)
    rows = (as_of.read(spark, cfg.destination_table).where(F.col(cfg.key) == F.lit(value))
            .select(F.col(cfg.month).alias("month"),
                    F.when(~is_active(cfg), F.concat(F.lit("tombstone "), code)).alias("_sp_tombstone"),
                    *(F.col(r.history_column)[0].alias(r.name) for r in cfg.rolling_columns),
                    F.col(cfg.ts).alias("base_ts"), F.col("fact_base_ts"),
                    *(F.col(g.name) for g in cfg.grid_columns))
            .orderBy(F.col(cfg.month).desc()).collect())
    latest = (as_of.read(spark, cfg.latest_history_table).where(F.col(cfg.key) == F.lit(value))
              .select(cfg.month, cfg.ts, *cfg.history_columns).collect())
    if not rows and not latest:
        raise UnknownAccountError(f"account {key} has no row in {cfg.destination_table} or "
                                  f"{cfg.latest_history_table}", account=key)
    view = AccountView(key, cfg.destination_table, cfg.latest_history_table, rolling,
                       as_of=as_of.label or None)
    if latest:
        view.latest_month, view.latest_base_ts = latest[0][cfg.month], latest[0][cfg.ts]
    for row in rows:
        data = row.asDict()
        flags = [f for f in ("latest" if data["month"] == view.latest_month else None, data.pop("_sp_tombstone"))
                 if f]
        view.months.append({"month": data.pop("month"), "flags": ", ".join(flags), **data})
    if latest:
        month = str(view.latest_month)
        start = int(month[:4]) * 12 + int(month[5:7]) - 1
        arrays = {r.name: latest[0][r.history_column] or [] for r in cfg.rolling_columns}
        for k in range(h):
            values = {name: (arr[k] if k < len(arr) else None) for name, arr in arrays.items()}
            if any(v is not None for v in values.values()):
                view.history.append({"index": k, "month": month_name(start - k), **values})
    return view
