"""Shared fixtures: one SparkSession for the whole test session, on a temporary Iceberg warehouse."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, settings
from pyspark.sql import SparkSession

from factories import new_config
from pgserver import PgServer, find_bin, jdbc_driver
from summary_pipeline.config import PipelineConfig
from summary_pipeline.spark import build_session, catalog_settings, iceberg_jar

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
    # The PostgreSQL driver on the classpath from the start lets the catalog tests add their JDBC catalog to
    # this session (a catalog can be added to a running session, a jar cannot).
    jars = ",".join(str(j) for j in (iceberg_jar(), jdbc_driver()) if j is not None)
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
            "spark.jars": jars,
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


#: The environment variables the catalog tests' configs name for the catalog's credentials.
PG_USER_ENV, PG_PASSWORD_ENV = "SP_TEST_CATALOG_USER", "SP_TEST_CATALOG_PASSWORD"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A real PostgreSQL server on 127.0.0.1 for the whole test run (scripts/test.sh installs it)."""
    bindir, driver = find_bin(), jdbc_driver()
    if bindir is None or driver is None:
        pytest.fail("the catalog tests need PostgreSQL and its JDBC driver: apt-get install postgresql "
                    "libpostgresql-jdbc-java (scripts/test.sh installs them)")
    server = PgServer.create(bindir)
    os.environ[PG_USER_ENV], os.environ[PG_PASSWORD_ENV] = server.user, server.password
    yield server
    server.remove()


def jdbc_catalog_block(server: PgServer, warehouse: str) -> dict[str, object]:
    """The config's ``catalog`` block for the test server: credentials from the environment only."""
    return {"type": "jdbc", "uri": server.uri, "warehouse": warehouse, "jars": [str(jdbc_driver())],
            "secrets_env": {"jdbc.user": PG_USER_ENV, "jdbc.password": PG_PASSWORD_ENV}}


@pytest.fixture(scope="session")
def pg_catalog(spark: SparkSession, pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory
               ) -> Callable[..., PipelineConfig]:
    """Factory: like ``make_config``, with the tables in an Iceberg JDBC catalog ``pg`` on the PostgreSQL
    server. The catalog is added to the shared session (not made its default: the tables' names carry it, as
    ``pg.<namespace>.summary``); a subprocess run builds its own session from the config's catalog block."""
    cfg = _pg_config(pg_server, str(tmp_path_factory.mktemp("pg-warehouse")))
    for key, value in catalog_settings(cfg).items():
        if key != "spark.sql.defaultCatalog":
            spark.conf.set(key, value)

    def make(**overrides: object) -> PipelineConfig:
        if not pg_server.running():  # a fault test stopped it
            pg_server.start()
        return _pg_config(pg_server, cfg.catalog.warehouse or "", **overrides)
    return make


def _pg_config(server: PgServer, warehouse: str, **overrides: object) -> PipelineConfig:
    return new_config(in_catalog="pg", catalog_name="pg", **{"catalog": jdbc_catalog_block(server, warehouse),
                                                          **overrides})


@pytest.fixture(params=["hadoop", "jdbc"])
def any_catalog(request: pytest.FixtureRequest) -> Callable[..., PipelineConfig]:
    """Factory of configs, once with the tables in the embedded Hadoop catalog, once in the JDBC catalog."""
    if request.param == "jdbc":
        factory: Callable[..., PipelineConfig] = request.getfixturevalue("pg_catalog")
        return factory
    return new_config
