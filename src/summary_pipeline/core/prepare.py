"""Preparing source versions (SPEC 4) and telling bad rows apart (SPEC 9). Pure Column/DataFrame code.

A prepared frame carries the destination columns, plus internal columns that start with ``_sp_``: the month
index, the rank fields, the cast rolling values, whether the version is active, and why it is rejected
(NULL when it is valid).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from summary_pipeline.config import PipelineConfig

__all__ = [
    "ACTIVE",
    "INVALID_DATES",
    "MONTH_INDEX",
    "RAW",
    "REJECT",
    "count_of",
    "is_active",
    "month_index",
    "prepare",
    "rank_fields",
    "reject_reason",
    "renamed",
    "rolling_field",
]

#: Internal column names (never written to the tables).
MONTH_INDEX = "_sp_m"
ACTIVE = "_sp_active"
REJECT = "_sp_reject"
#: How many of a row's ``date_col_list`` dates were before year 1000 (and became NULL): a monitoring figure.
INVALID_DATES = "_sp_invalid_dates"
#: The raw source row of a rejected version (NULL for valid ones), for the quarantine table.
RAW = "_sp_raw"

_MONTH_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"


def rolling_field(i: int) -> str:
    """Internal name of the i-th rolling value.

    >>> rolling_field(2)
    '_sp_r2'
    """
    return f"_sp_r{i}"


def _tie_field(i: int) -> str:
    return f"_sp_tb{i}"


def count_of(flags: list[Column]) -> Column:
    """How many of the 0/1 integer ``flags`` are 1, as one expression (0 for none)."""
    return sum(flags[1:], flags[0]) if flags else F.lit(0)


def month_index(month: Column) -> Column:
    """'YYYY-MM' -> months since year 0 (``year * 12 + month - 1``), so month arithmetic is integer arithmetic."""
    return (F.substring(month, 1, 4).cast("int") * 12 + F.substring(month, 6, 2).cast("int") - 1).cast("int")


def is_active(cfg: PipelineConfig, soft_delete: Column | None = None) -> Column:
    """A version is active unless its soft-delete column holds one of the delete codes (NULL is active)."""
    col = soft_delete if soft_delete is not None else F.col(cfg.soft_delete.column)
    return F.coalesce(~col.isin(*cfg.soft_delete.codes), F.lit(True))


def reject_reason(cfg: PipelineConfig) -> Column:
    """Why a raw source row cannot be used (SPEC 9), or NULL. Reads source column names."""
    month = F.col(cfg.month)
    return (
        F.when(F.col(cfg.key).isNull(), F.lit(f"NULL {cfg.key}"))
        .when(month.isNull(), F.lit(f"NULL {cfg.month}"))
        .when(~month.rlike(_MONTH_PATTERN), F.concat(F.lit(f"malformed {cfg.month} '"), month, F.lit("'")))
        .when(F.col(cfg.ts).isNull(), F.lit(f"NULL {cfg.ts}"))
    )


def rank_fields(cfg: PipelineConfig) -> list[str]:
    """The internal columns a version is ranked by, in order, before the prepared values."""
    return ["_sp_ts", *(_tie_field(i) for i in range(len(cfg.tie_breaker_columns)))]


def renamed(cfg: PipelineConfig) -> list[Column]:
    """The source columns a version is made of, under their destination names (SPEC 4, step 1): ``columns``
    renamed, then the key, month, timestamp and soft-delete columns that ``columns`` does not map."""
    carried = [F.col(c) for c in (cfg.key, cfg.month, cfg.ts, cfg.soft_delete.column) if c not in cfg.columns.values()]
    return [*(F.col(f"`{src}`").alias(dst) for src, dst in cfg.columns.items()), *carried]


def prepare(source: DataFrame, cfg: PipelineConfig) -> DataFrame:
    """Turn raw source versions into prepared versions (SPEC 4), flagging each with a reject reason or NULL.

    The steps run in the SPEC's order: rename, dates before year 1000 to NULL, column transformations,
    inferred columns, rolling values cast to their types. A rolling value that is not NULL before the cast but
    NULL after it cannot take its configured type, and rejects the row.
    """
    df = source.select(
        *renamed(cfg),
        F.col(cfg.ts).alias("_sp_ts"),
        *(F.col(c).alias(_tie_field(i)) for i, c in enumerate(cfg.tie_breaker_columns)),
        reject_reason(cfg).alias(REJECT),
        F.struct(*(F.col(f"`{c}`") for c in source.columns)).alias(RAW),
    )
    invalid = [F.coalesce((F.year(name) < 1000).cast("int"), F.lit(0)) for name in cfg.date_col_list]
    df = df.withColumn(INVALID_DATES, count_of(invalid))
    for name in cfg.date_col_list:
        df = df.withColumn(name, F.when(F.year(name) >= 1000, F.col(name)))
    for step in (*cfg.column_transformations, *cfg.inferred_columns):
        df = df.withColumn(step.name, F.expr(step.mapper_expr))
    raw_values = [F.expr(r.mapper_expr) for r in cfg.rolling_columns]
    cast_values = [v.cast(r.spark_type) for v, r in zip(raw_values, cfg.rolling_columns, strict=True)]
    bad_cast = F.lit(None).cast("string")
    for r, raw, cast in reversed(list(zip(cfg.rolling_columns, raw_values, cast_values, strict=True))):
        bad_cast = F.when(raw.isNotNull() & cast.isNull(),
                          F.lit(f"value does not fit rolling column {r.name} ({r.type})")).otherwise(bad_cast)
    df = df.select(
        "*",
        *(c.alias(rolling_field(i)) for i, c in enumerate(cast_values)),
        F.coalesce(F.col(REJECT), bad_cast).alias("_sp_reject_all"),
    ).drop(REJECT).withColumnRenamed("_sp_reject_all", REJECT)
    value_cols = set(cfg.value_columns)
    for i, r in enumerate(cfg.rolling_columns):
        if r.name in value_cols:
            df = df.withColumn(r.name, F.col(rolling_field(i)))
    return df.select(
        *cfg.value_columns,
        *rank_fields(cfg),
        *(rolling_field(i) for i in range(len(cfg.rolling_columns))),
        month_index(F.col(cfg.month)).alias(MONTH_INDEX),
        is_active(cfg).alias(ACTIVE),
        REJECT,
        F.when(F.col(REJECT).isNotNull(), F.col(RAW)).alias(RAW),
        INVALID_DATES,
    )
