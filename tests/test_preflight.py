"""Config checks that need the source schema or Spark's parser: all listed, before any data is read."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from pyspark.sql import SparkSession

from factories import load_source, version
from summary_pipeline.config import PipelineConfig
from summary_pipeline.errors import ConfigError, SourceError
from summary_pipeline.result import RunOptions
from summary_pipeline.runner import run
from summary_pipeline.store.tables import table_exists

pytestmark = pytest.mark.spark


def test_missing_source_table_says_how_to_fix(spark: SparkSession, make_config: Callable[..., PipelineConfig]
                                              ) -> None:
    cfg = make_config()
    with pytest.raises(SourceError, match=r"source table t\d+_\d+\.accounts_all does not exist") as err:
        run(spark, cfg, RunOptions(mode="initial"), config_name="my_config.json")
    assert err.value.exit_code == 1
    warehouse = spark.conf.get(f"spark.sql.catalog.{cfg.catalog_name}.warehouse")
    # Where it looked (catalog, absolute warehouse, the config), and the command that prints the table's DDL.
    assert f"in catalog {cfg.catalog_name} (warehouse {os.path.abspath(warehouse)}), as named by my_config.json" \
        in str(err.value)
    assert "`summary-pipeline source-ddl --config my_config.json` prints its CREATE TABLE" in str(err.value)
    assert not any(table_exists(spark, t) for t in (cfg.destination_table, cfg.ledger_table))


def test_missing_columns_are_all_listed(spark: SparkSession, make_config: Callable[..., PipelineConfig]) -> None:
    cfg = make_config()
    load_source(spark, cfg, [version(1, "2026-01")])
    columns = {**cfg.columns, "no_such_col": "x_col", "other_missing": "y_col"}
    broken = cfg.model_copy(update={"columns": columns, "tie_breaker_columns": ("nope_ts",)})
    with pytest.raises(ConfigError) as err:
        run(spark, broken, RunOptions(mode="initial"), config_name="prod.json")
    assert err.value.problems == [
        f"columns: source column 'no_such_col' is not in {cfg.source_table}",
        f"columns: source column 'other_missing' is not in {cfg.source_table}",
        f"tie_breaker_columns: source column 'nope_ts' is not in {cfg.source_table}",
    ]
    assert str(err.value).startswith("prod.json: 3 problems:")


def test_bad_expressions_are_all_listed_before_any_read(spark: SparkSession,
                                                        make_config: Callable[..., PipelineConfig]) -> None:
    cfg = make_config()
    load_source(spark, cfg, [version(1, "2026-01")])
    steps = list(cfg.inferred_columns)
    steps[0] = steps[0].model_copy(update={"mapper_expr": "CASE WHEN THEN END"})
    steps[1] = steps[1].model_copy(update={"mapper_expr": "no_such_column + 1"})
    broken = cfg.model_copy(update={"inferred_columns": tuple(steps)})
    sc = spark.sparkContext
    sc.setJobGroup("preflight-test", "must stay empty")
    try:
        with pytest.raises(ConfigError) as err:
            run(spark, broken, RunOptions(mode="initial"))
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
    problems = err.value.problems
    assert len(problems) == 2
    assert problems[0].startswith("inferred_columns (orig_loan_am): expression does not parse:")
    assert problems[1].startswith("inferred_columns (payment_rating_cd): [UNRESOLVED_COLUMN")
    assert "no_such_column" in problems[1]
    assert sc.statusTracker().getJobIdsForGroup("preflight-test") == []
