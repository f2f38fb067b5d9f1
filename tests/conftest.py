"""Shared fixtures: one SparkSession for the whole test session, on a temporary Iceberg warehouse."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, settings
from pyspark.sql import SparkSession

from factories import new_config
from summary_pipeline.config import PipelineConfig
from summary_pipeline.spark import build_session

# PySpark turns timestamps into naive datetimes in the process's local zone; the product runs Spark in UTC.
os.environ["TZ"] = "UTC"
time.tzset()

settings.register_profile("ci", max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("long", max_examples=300, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    """The one SparkSession of the test run (local[2], two shuffle partitions, no UI); no test stops it.

    On tiny data most of a test's time is Spark compiling code for plans that run once, so this session runs
    whole-stage plans interpreted and caches compiled classes across tests (15% less time on a sample of the
    test files). Results do not depend on it. The tests that start the product as a user does (test_cli,
    test_kill, test_deploy, test_cluster) keep whole-stage code generation, and test_cli fails on any Spark
    ERROR line in the log, such as code that failed to compile.
    """
    warehouse = tmp_path_factory.mktemp("warehouse")
    session = build_session(
        master="local[2]",
        warehouse=str(warehouse),
        extra={
            "spark.ui.enabled": "false",
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.sql.adaptive.coalescePartitions.enabled": "false",
            "spark.sql.codegen.wholeStage": "false",
            "spark.sql.codegen.cache.maxEntries": "5000",
        },
    )
    yield session


@pytest.fixture
def cli_in_process(spark: SparkSession, monkeypatch: pytest.MonkeyPatch) -> Callable[..., int]:
    """``summary_pipeline.cli.main`` run in this process on the shared session (which it must not stop)."""
    from summary_pipeline import cli

    monkeypatch.setattr(cli, "_session", lambda *_args, **_kw: spark)
    monkeypatch.setattr(spark, "stop", lambda: None)
    return cli.main


@pytest.fixture
def make_config() -> Callable[..., PipelineConfig]:
    """Factory: the reference config with unique table names (one namespace per call) and overrides."""
    return new_config
