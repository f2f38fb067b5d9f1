"""Commit latency: the embedded Hadoop catalog against Iceberg's JDBC catalog on a PostgreSQL server on
127.0.0.1, for the operations the lock and the commit protocol repeat: a compare-and-swap of the ledger's
properties (taking the lock, each heartbeat, giving it back), loading a table's metadata (the check before each
commit), and a one-row data commit. Prints the median and 95th percentile of each, and the ratio JDBC / Hadoop.

    python tests/bench_catalog.py [--times 40]

Needs PostgreSQL and its JDBC driver (as the tests do); starts and removes its own server.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from pyspark.sql import SparkSession

from factories import new_config
from pgserver import PgServer, find_bin, jdbc_driver
from summary_pipeline.config import PipelineConfig
from summary_pipeline.spark import build_session, catalog_settings, iceberg_jar
from summary_pipeline.store.ledger import ensure_ledger
from summary_pipeline.store.snapshots import iceberg_table, swap_properties


def _measure(action: Callable[[], object], times: int) -> tuple[float, float]:
    for _ in range(5):  # warm up: the first calls load classes and compile
        action()
    took = []
    for _ in range(times):
        start = time.perf_counter()
        action()
        took.append(time.perf_counter() - start)
    took.sort()
    return statistics.median(took) * 1000, took[int(0.95 * (len(took) - 1))] * 1000


def _figures(spark: SparkSession, cfg: PipelineConfig, times: int) -> dict[str, tuple[float, float]]:
    ledger, data = cfg.ledger_table, cfg.destination_table
    ensure_ledger(spark, ledger)
    spark.sql(f"CREATE TABLE {data} (k bigint) USING iceberg")
    counter = iter(range(10**9))
    return {
        "properties CAS (lock)": _measure(
            lambda: swap_properties(spark, ledger, lambda _: {"bench": str(next(counter))}), times),
        "load metadata": _measure(lambda: iceberg_table(spark, ledger).operations().refresh(), times),
        "one-row INSERT commit": _measure(lambda: spark.sql(f"INSERT INTO {data} VALUES (1)").collect(), times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--times", type=int, default=40, help="repetitions of each operation (default 40)")
    args = parser.parse_args()
    bindir, driver = find_bin(), jdbc_driver()
    if bindir is None or driver is None:
        sys.exit("needs PostgreSQL and libpostgresql-jdbc-java")
    server = PgServer.create(bindir)
    os.environ["SP_BENCH_USER"], os.environ["SP_BENCH_PASSWORD"] = server.user, server.password
    try:
        warehouse = tempfile.mkdtemp(prefix="sp-bench-")
        spark = build_session(master="local[2]", warehouse=f"{warehouse}/hadoop",
                              extra={"spark.ui.enabled": "false", "spark.jars": f"{iceberg_jar()},{driver}"})
        pg = new_config(in_catalog="pg", catalog_name="pg", catalog={
            "type": "jdbc", "uri": server.uri, "warehouse": f"{warehouse}/jdbc", "jars": [str(driver)],
            "secrets_env": {"jdbc.user": "SP_BENCH_USER", "jdbc.password": "SP_BENCH_PASSWORD"}})
        for key, value in catalog_settings(pg).items():
            if key != "spark.sql.defaultCatalog":
                spark.conf.set(key, value)
        rows: dict[str, dict[str, tuple[float, float]]] = {}
        for name, cfg in (("hadoop", new_config()), ("jdbc", pg)):
            rows[name] = _figures(spark, cfg, args.times)
        print(f"{'operation':<24} {'hadoop median/p95 ms':>22} {'jdbc median/p95 ms':>20} {'ratio':>6}")
        for op in rows["hadoop"]:
            (hm, hp), (jm, jp) = rows["hadoop"][op], rows["jdbc"][op]
            print(f"{op:<24} {hm:>12.1f} / {hp:<7.1f} {jm:>10.1f} / {jp:<7.1f} {jm / hm:>6.2f}")
        spark.stop()
    finally:
        server.remove()


if __name__ == "__main__":
    main()
