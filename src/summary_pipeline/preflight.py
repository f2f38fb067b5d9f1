"""Config checks that need a session (SPEC 4, second phase): the source schema and Spark's parser.

They run right after the session starts and before any data is read: resolving names against the source
table's schema and analysing expressions on an empty frame launch no Spark job. Every problem is collected
and reported at once.
"""

from __future__ import annotations

from pyspark.errors import AnalysisException, IllegalArgumentException, ParseException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from summary_pipeline.config import PipelineConfig
from summary_pipeline.errors import ConfigError, SourceError
from summary_pipeline.sql_text import one_expression_problem
from summary_pipeline.store.snapshots import NO_SNAPSHOT, state
from summary_pipeline.store.tables import location

__all__ = ["check_against_source", "pin_source", "read_source"]


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return text


def read_source(spark: SparkSession, cfg: PipelineConfig, config_name: str = "config") -> DataFrame:
    """The source table as a DataFrame (lazy), or a clear error when it does not exist: where it was looked
    for, and how to create it."""
    try:
        return spark.table(cfg.source_table)
    except AnalysisException:
        raise SourceError(
            f"source table {cfg.source_table} does not exist in {location(spark, config_name)}. Create it "
            f"(`summary-pipeline source-ddl --config {config_name}` prints its CREATE TABLE) and load your data, "
            f"or fix source_table in {config_name}; `summary-pipeline generate --config {config_name}` makes a "
            "table of synthetic data", table=cfg.source_table) from None


def pin_source(spark: SparkSession, cfg: PipelineConfig, config_name: str = "config"
               ) -> tuple[DataFrame, int | None]:
    """The source table as of its current snapshot, and that snapshot's id.

    A run reads the source more than once (its batch, a backfill's keys, a rebuild's every version) while the
    table's owner may compact it or append to it. Reading one snapshot throughout gives the run one state of the
    source from start to end, and the ledger records which (rows appended since are the next run's). A source
    that is not an Iceberg table, or has no snapshot yet, is read as it is, with None for the id.
    """
    source = read_source(spark, cfg, config_name)
    try:
        snapshot = state(spark, cfg.source_table)
    except (AnalysisException, IllegalArgumentException):  # a view, or a table of another format
        return source, None
    if snapshot is None or snapshot == NO_SNAPSHOT:
        return source, None
    return spark.read.option("snapshot-id", str(snapshot)).table(cfg.source_table), snapshot


def check_against_source(source: DataFrame, cfg: PipelineConfig, config_name: str = "config") -> None:
    """Check every name and expression of ``cfg`` against the source schema, listing all problems.

    Raises:
        ConfigError: naming each missing source column and each expression that does not parse or resolve.
    """
    have = {f.name.lower() for f in source.schema.fields}
    problems: list[str] = []
    needed = [("columns", c) for c in cfg.columns]
    needed += [(k, c) for k, c in (("primary_column", cfg.key), ("partition_column", cfg.month),
                                   ("max_identifier_column", cfg.ts)) if c not in cfg.columns]
    needed += [("tie_breaker_columns", c) for c in cfg.tie_breaker_columns]
    for where, name in needed:
        if name.lower() not in have:
            problems.append(f"{where}: source column {name!r} is not in {cfg.source_table}")
    if problems:
        raise ConfigError(problems, config_name)
    df = source.limit(0).select(*(F.col(f"`{s}`").alias(d) for s, d in cfg.columns.items()))
    steps = [("column_transformations", s.name, s.mapper_expr) for s in cfg.column_transformations]
    steps += [("inferred_columns", s.name, s.mapper_expr) for s in cfg.inferred_columns]
    steps += [("rolling_columns", r.name, r.mapper_expr) for r in cfg.rolling_columns]
    for where, name, text in steps:
        target = name if where != "rolling_columns" else f"_sp_{name}"
        try:  # one expression (no statement, subquery, ...: sql_text), then one that resolves
            problem = one_expression_problem(source.sparkSession, text)
            if problem is None:
                df = df.withColumn(target, F.expr(text))
                continue
            problems.append(f"{where} ({name}): must be one Spark SQL expression over the row's columns; {problem}")
        except ParseException as err:
            problems.append(f"{where} ({name}): expression does not parse: {_first_line(err)}")
        except AnalysisException as err:
            problems.append(f"{where} ({name}): {_first_line(err)}")
        # A stand-in keeps later expressions that use this column from failing a second time.
        df = df.withColumn(target, F.lit(None))
    if problems:
        raise ConfigError(problems, config_name)
