"""The configuration: one frozen, validated model of the seed's JSON format.

The seed's ``summary_config.json`` loads unchanged. Problems that need no data (missing or unknown keys, bad
types, references to undefined rolling or grid columns, ``num_cols`` different from ``history_length``) are all
found here, before Spark starts, and reported together in one :class:`ConfigError` that names the file. Problems
that need the source schema or Spark's parser are checked by :mod:`summary_pipeline.preflight` once a session
exists.
"""

from __future__ import annotations

import difflib
import json
import re
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from summary_pipeline.config_checks import IDENTIFIER, reference_problems
from summary_pipeline.config_values import Expression, Identifier, TableName, seconds, spark_type
from summary_pipeline.errors import ConfigError

__all__ = [
    "IGNORED_SEED_KEYS",
    "Catalog",
    "ColumnExpr",
    "GridColumn",
    "Layout",
    "PipelineConfig",
    "RollingColumn",
    "SoftDelete",
    "SparkFlags",
    "load_config",
    "parse_config",
    "spark_type",
]

#: Seed keys that configure nothing in this product; accepted and reported once at start.
IGNORED_SEED_KEYS = (
    "coalesce_exclusion_cols",
    "primary_date_column",
    "mapper_column",
    "backfill_settings",
    "performance",
)



class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ColumnExpr(_Model):
    """A named Spark SQL expression (``column_transformations`` and ``inferred_columns``)."""

    name: Identifier
    mapper_expr: Expression


class RollingColumn(_Model):
    """A column whose last ``history_length`` monthly values are kept as ``<name>_history``."""

    name: Identifier
    mapper_expr: Expression
    type: str
    num_cols: int | None = None
    mapper_column: str | None = None  # seed key; configures nothing here

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        spark_type(value)
        return value

    @property
    def spark_type(self) -> str:
        """The Spark SQL type the mapped value is cast to."""
        return spark_type(self.type)

    @property
    def history_column(self) -> str:
        """Name of the history array column in the summary tables."""
        return f"{self.name}_history"


class GridColumn(_Model):
    """A string built from a rolling history array (e.g. the 36-character payment grid)."""

    name: Identifier
    mapper_rolling_column: str
    placeholder: str = "?"
    # The seed misspells the key ``seperator``; both spellings are accepted.
    separator: str = Field(default="", alias="seperator")


class SoftDelete(_Model):
    """Which destination column marks a version deleted, and with which codes."""

    column: str = "soft_del_cd"
    codes: tuple[str, ...] = ("1", "4")


class SparkFlags(_Model):
    """The seed's ``spark_config`` block: friendly switches mapped onto Spark settings."""

    adaptive_enabled: bool | None = None
    dynamic_partition_pruning: bool | None = None
    skew_join_enabled: bool | None = None
    broadcast_threshold_mb: int | None = None

    def settings(self) -> dict[str, str]:
        """The Spark settings these switches stand for (only the ones given)."""
        out: dict[str, str] = {}
        if self.adaptive_enabled is not None:
            out["spark.sql.adaptive.enabled"] = str(self.adaptive_enabled).lower()
        if self.dynamic_partition_pruning is not None:
            out["spark.sql.optimizer.dynamicPartitionPruning.enabled"] = str(
                self.dynamic_partition_pruning
            ).lower()
        if self.skew_join_enabled is not None:
            out["spark.sql.adaptive.skewJoin.enabled"] = str(self.skew_join_enabled).lower()
        if self.broadcast_threshold_mb is not None:
            out["spark.sql.autoBroadcastJoinThreshold"] = str(self.broadcast_threshold_mb * 1024 * 1024)
        return out


class Layout(_Model):
    """How the pipeline lays out the tables it creates (docs/PERFORMANCE.md measures each choice).

    Applied when a table is created or replaced (``initial``, ``initial --replace``); an existing table keeps
    its layout until then.
    """

    #: summary is partitioned by month and, when > 0, also by ``bucket(summary_buckets, account)``.
    summary_buckets: int = Field(default=0, ge=0, le=65536)
    #: latest_summary is partitioned by ``bucket(latest_buckets, account)`` when > 0.
    latest_buckets: int = Field(default=0, ge=0, le=65536)
    #: How MERGE, UPDATE and DELETE change summary: rewrite the data files they touch (``copy-on-write``) or
    #: write the changed rows plus delete files that readers apply until compaction (``merge-on-read``). The
    #: default is merge-on-read: corrections reach most month partitions, and copy-on-write rewrites each of
    #: them whole, which made an incremental run cost as much as a full rebuild (docs/PERFORMANCE.md).
    write_mode: Literal["copy-on-write", "merge-on-read"] = "merge-on-read"
    #: The same for latest_summary. The default is copy-on-write: a nightly run changes nearly every
    #: latest_summary row, so delete files there save little writing and every later run reads them.
    latest_write_mode: Literal["copy-on-write", "merge-on-read"] = "copy-on-write"
    #: Iceberg's ``write.target-file-size-bytes``, in MiB (Iceberg's default, 512, when not given).
    target_file_size_mb: int | None = Field(default=None, ge=1)

    def properties(self, *, latest: bool = False) -> dict[str, str]:
        """Iceberg table properties for summary, or with ``latest`` for latest_summary."""
        mode = self.latest_write_mode if latest else self.write_mode
        out: dict[str, str] = {f"write.{op}.mode": mode for op in ("merge", "update", "delete")}
        if self.target_file_size_mb is not None:
            out["write.target-file-size-bytes"] = str(self.target_file_size_mb * 1024 * 1024)
        return out

    def settings(self) -> dict[str, str]:
        """Spark settings for bucketed tables: storage-partitioned joins. On Spark 3.5 a MERGE into a table
        bucketed by a transform still shuffles the table (one-side shuffle of transforms is Spark 4.0's), so
        buckets are not recommended there; see docs/config.md."""
        if not (self.summary_buckets or self.latest_buckets):
            return {}
        return {
            "spark.sql.sources.v2.bucketing.enabled": "true",
            "spark.sql.sources.v2.bucketing.shuffle.enabled": "true",
            "spark.sql.sources.v2.bucketing.pushPartValues.enabled": "true",
            "spark.sql.iceberg.planning.preserve-data-grouping": "true",
        }


class Catalog(_Model):
    """Where the tables live (docs/config.md, "The catalog").

    ``hadoop`` is the embedded catalog in a local warehouse directory: no server, atomic commits within one
    process only. The others are catalogs whose commits are an atomic compare-and-swap across processes and
    hosts, which the lock and the commit protocol rest on in production. Secrets never appear in the config:
    ``secrets_env`` names the environment variable that holds each one, read when the session starts.
    """

    type: Literal["hadoop", "jdbc", "hive", "glue", "rest"] = "hadoop"
    #: jdbc: the JDBC URL (``jdbc:postgresql://host:5432/db``); hive: ``thrift://host:9083``; rest: the URL.
    uri: str | None = None
    #: Where new tables' files go (a directory or s3://...); for hadoop, the warehouse directory.
    warehouse: str | None = None
    #: More Iceberg catalog properties, as Iceberg names them (``jdbc.schema-version``, ``client.region``).
    properties: dict[str, str] = {}
    #: Catalog property -> the environment variable holding its value (``{"jdbc.password": "PGPASSWORD"}``).
    secrets_env: dict[str, str] = {}
    #: Jars the embedded session adds for this catalog (a JDBC driver); under spark-submit pass --jars instead.
    jars: tuple[str, ...] = ()

    @field_validator("uri")
    @classmethod
    def _no_secret_in_uri(cls, value: str | None) -> str | None:
        if value is not None and re.search(r"(?i)(password|secret|token)=|//[^/@]*:[^/@]*@", value):
            raise ValueError("the uri holds a secret; give it through secrets_env "
                             "(e.g. {\"jdbc.password\": \"SP_CATALOG_PASSWORD\"}) and remove it from the uri")
        return value

    @field_validator("properties")
    @classmethod
    def _no_secret_property(cls, value: dict[str, str]) -> dict[str, str]:
        secret = sorted(k for k in value if SECRET_KEY.search(k))
        if secret:
            raise ValueError(f"{', '.join(secret)} look like secrets: name the environment variable that holds "
                             "each in secrets_env instead, never the value in the config file")
        return value

    @field_validator("secrets_env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted(k for k, v in value.items() if not IDENTIFIER.match(v))
        if bad:  # the value may be the secret itself: it is not repeated
            raise ValueError(f"{', '.join(bad)}: give the name of an environment variable, not its value")
        return value

    def problems(self) -> list[str]:
        """What this catalog block lacks for its type."""
        out = []
        if self.type in ("jdbc", "hive", "rest") and not self.uri:
            out.append(f"catalog.uri is required for a {self.type} catalog")
        if self.type == "jdbc" and self.uri and not self.uri.startswith("jdbc:"):
            out.append("catalog.uri of a jdbc catalog starts with jdbc: (jdbc:postgresql://host:5432/db)")
        if self.type in ("jdbc", "glue") and not self.warehouse:
            out.append(f"catalog.warehouse is required for a {self.type} catalog: where new tables' files go")
        return out


#: Property names that hold secrets: they may come only from the environment (``Catalog.secrets_env``).
SECRET_KEY = re.compile(r"(?i)password|secret|token|credential|access-key|key-id|session-key")


class Tags(_Model):
    """Tags a successful run puts on the snapshots it published, so that a reported state stays readable
    (``inspect --as-of``, ``VERSION AS OF``) and ``maintain`` never expires it (docs/operations.md)."""

    #: Tag after each successful incremental, forward or initial run.
    enabled: bool = True
    #: The tag's name: ``{month}`` is the newest month the run wrote (YYYY-MM), ``{run_id}`` the run. A name
    #: that exists already is left where it is: the first publication of a month is the one reported.
    name: str = "report-{month}"
    #: Iceberg removes the tag this many days after it was made (at ``maintain``); None keeps it.
    retain_days: int | None = Field(default=None, ge=1)

    @field_validator("name")
    @classmethod
    def _template(cls, value: str) -> str:
        fields = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
        if not fields <= {"month", "run_id"} or not fields:
            raise ValueError("use {month} and/or {run_id} and nothing else in braces, e.g. 'report-{month}'")
        if not re.fullmatch(r"[A-Za-z0-9_.{}-]+", value):
            raise ValueError("letters, digits, '_', '-' and '.' only")
        return value


class PipelineConfig(_Model):
    """Everything a run needs to know, validated once; see docs/config.md for each key."""

    source_table: TableName
    destination_table: TableName
    latest_history_table: TableName
    partition_column: Identifier
    primary_column: Identifier
    max_identifier_column: Identifier
    columns: dict[str, str]
    rolling_columns: tuple[RollingColumn, ...]
    history_length: int = Field(default=36, ge=1, le=600)
    tie_breaker_columns: tuple[Identifier, ...] = ()
    column_transformations: tuple[ColumnExpr, ...] = ()
    inferred_columns: tuple[ColumnExpr, ...] = ()
    date_col_list: tuple[str, ...] = ()
    latest_history_addon_cols: tuple[str, ...] | None = None
    grid_columns: tuple[GridColumn, ...] = ()
    soft_delete: SoftDelete = SoftDelete()
    spark_config: SparkFlags = SparkFlags()
    spark: dict[str, str | int | float | bool] = {}
    warehouse: str | None = None
    catalog_name: Identifier = "local"
    catalog: Catalog = Catalog()
    watermark_lookback: int = 0
    run_ledger_table: TableName | None = None
    quarantine_table: TableName | None = None
    deletes_table_name: TableName | None = Field(default=None, alias="deletes_table")
    max_rejected_rows: int | None = Field(default=None, ge=0)
    max_rejected_fraction: float | None = Field(default=None, ge=0, le=1)
    lock_timeout: int = Field(default=600, ge=10)
    layout: Layout = Layout()
    #: Check a run's staged writes before publishing them (``--no-audit`` turns it off for one run).
    audit: bool = True
    tags: Tags = Tags()
    changes_table_name: TableName | None = Field(default=None, alias="changes_table")
    # Seed keys that configure nothing here (see IGNORED_SEED_KEYS).
    primary_date_column: str | None = None
    coalesce_exclusion_cols: Any = None
    backfill_settings: Any = None
    performance: Any = None

    @field_validator("watermark_lookback", "lock_timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError("write seconds (3600) or '<n> <unit>' like '6 hours'")
        return seconds(value)

    # ----- derived names -------------------------------------------------------------------------------

    @property
    def key(self) -> str:
        """The account column."""
        return self.primary_column

    @property
    def month(self) -> str:
        """The reporting-month column ('YYYY-MM')."""
        return self.partition_column

    @property
    def ts(self) -> str:
        """The version timestamp column (``base_ts`` in the seed)."""
        return self.max_identifier_column

    @property
    def ledger_table(self) -> str:
        """The run ledger table; defaults to ``<destination>_runs``."""
        return self.run_ledger_table or f"{self.destination_table}_runs"

    @property
    def quarantine(self) -> str:
        """The quarantine table; defaults to ``<destination>_quarantine``."""
        return self.quarantine_table or f"{self.destination_table}_quarantine"

    @property
    def deletes_table(self) -> str:
        """Winning deletes kept in full so later runs can rank against them; ``<destination>_deletes``."""
        return self.deletes_table_name or f"{self.destination_table}_deletes"

    @property
    def changes_table(self) -> str:
        """Which keys each run changed, for downstream readers; ``<destination>_changes``."""
        return self.changes_table_name or f"{self.destination_table}_changes"

    @property
    def value_columns(self) -> tuple[str, ...]:
        """Destination columns in summary order: ``columns`` then inferred (key, month, ts included)."""
        names = list(self.columns.values())
        for fixed in (self.key, self.month, self.ts, self.soft_delete.column):
            if fixed not in names:
                names.append(fixed)
        names += [c.name for c in self.inferred_columns if c.name not in names]
        return tuple(names)

    @property
    def history_columns(self) -> tuple[str, ...]:
        """The ``<rolling>_history`` array columns, in config order."""
        return tuple(r.history_column for r in self.rolling_columns)

    @property
    def summary_columns(self) -> tuple[str, ...]:
        """Every user-facing summary column, in table order."""
        return (*self.value_columns, *self.history_columns, *(g.name for g in self.grid_columns),
                "fact_base_ts")

    @property
    def latest_columns(self) -> tuple[str, ...]:
        """latest_summary columns: key, month, timestamps, the add-on columns (or all), every history array."""
        fixed = [self.key, self.month, self.ts, "fact_base_ts"]
        extra = (list(self.latest_history_addon_cols) if self.latest_history_addon_cols is not None
                 else list(self.summary_columns))
        names = fixed + [c for c in extra if c not in fixed]
        names += [h for h in self.history_columns if h not in names]
        return tuple(names)

    def ignored_keys(self) -> list[str]:
        """Seed keys present in this config that configure nothing in this product."""
        found = [k for k in IGNORED_SEED_KEYS if getattr(self, k, None) is not None]
        if any(r.mapper_column is not None for r in self.rolling_columns):
            found.append("rolling_columns[].mapper_column")
        return found

    def spark_settings(self) -> dict[str, str]:
        """Spark settings from the layout and the ``spark_config`` switches, overridden by the explicit
        ``spark`` block."""
        out = {**self.layout.settings(), **self.spark_config.settings()}
        out.update({k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in self.spark.items()})
        return out


def _format_location(loc: tuple[int | str, ...], raw: Mapping[str, Any]) -> str:
    """Render a pydantic error location like ``rolling_columns[2].type``, naming the entry where it can."""
    out = ""
    node: Any = raw
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, Mapping) and isinstance(node.get("name"), str):
                out += f" ({node['name']})"
        else:
            out += f".{part}" if out else str(part)
            node = node.get(part) if isinstance(node, Mapping) else None
    return out


def _model_fields(loc: tuple[int | str, ...]) -> list[str]:
    """The known keys at the level of an unknown key, for a "did you mean"."""
    model: type[BaseModel] = PipelineConfig
    nested: dict[str, type[BaseModel]] = {
        "rolling_columns": RollingColumn,
        "grid_columns": GridColumn,
        "column_transformations": ColumnExpr,
        "inferred_columns": ColumnExpr,
        "soft_delete": SoftDelete,
        "spark_config": SparkFlags,
        "layout": Layout,
    }
    for part in loc[:-1]:
        if isinstance(part, str) and part in nested:
            model = nested[part]
    names = list(model.model_fields)
    if model is GridColumn:
        names.append("separator")
    return names


def _pydantic_problems(err: ValidationError, raw: Mapping[str, Any]) -> list[str]:
    problems = []
    for e in err.errors():
        loc = tuple(e["loc"])
        where = _format_location(loc, raw)
        if e["type"] == "extra_forbidden":
            guess = difflib.get_close_matches(str(loc[-1]), _model_fields(loc), n=1)
            hint = f"; did you mean {guess[0]!r}?" if guess else ""
            problems.append(f"{where}: unknown key{hint}")
        elif e["type"] == "missing":
            problems.append(f"{where}: required key is missing")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {msg}")
    return problems


def parse_config(raw: Any, source: str = "config") -> PipelineConfig:
    """Validate a config dict (the parsed JSON) and return the frozen model.

    Raises:
        ConfigError: listing every problem found, naming ``source``.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(["the top level must be a JSON object"], source)
    problems: list[str] = []
    model: PipelineConfig | None = None
    try:
        model = PipelineConfig.model_validate(raw)
    except ValidationError as err:
        problems += _pydantic_problems(err, raw)
    problems += reference_problems(raw)
    if model is not None:
        problems += model.catalog.problems()
    if problems or model is None:
        raise ConfigError(problems, source)
    return model


def load_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> PipelineConfig:
    """Read and validate a config file (the seed's JSON format), applying top-level ``overrides``.

    Raises:
        ConfigError: the file is missing, is not JSON, or has problems (all listed, naming the file).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError([f"cannot read the config file: {err.strerror or err}"], str(p)) from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError([f"not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}"],
                          str(p)) from None
    if isinstance(raw, dict) and overrides:
        raw.update({k: v for k, v in overrides.items() if v is not None})
    return parse_config(raw, str(p))
