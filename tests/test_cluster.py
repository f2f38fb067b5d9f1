"""A real cluster (issue 6): a Spark standalone master and two workers on 127.0.0.1, started from pip's pyspark
(``bin/spark-class``; pip's pyspark has no start scripts), and the pipeline submitted to it with ``spark-submit``
exactly as a user would: initial, then incremental, each checked against the oracle.

The test process writes the source versions and reads the result through a second Iceberg catalog on the same
warehouse directory, which the workers' executors write to (one machine, one file system).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyspark
import pytest
from pyspark.sql import SparkSession

from factories import assert_matches_oracle, load_source, reference_raw, version
from summary_pipeline.config import PipelineConfig, parse_config
from summary_pipeline.spark import iceberg_jar

pytestmark = [pytest.mark.spark, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
SPARK_HOME = Path(pyspark.__file__).parent
NS = "clusterdb"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _daemon(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOCAL_IP": "127.0.0.1",
           "SPARK_LOG_DIR": str(log.parent)}
    with log.open("wb") as out:
        return subprocess.Popen([str(SPARK_HOME / "bin" / "spark-class"), *args], stdout=out,
                                stderr=subprocess.STDOUT, env=env)


@pytest.fixture(scope="module")
def master(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """spark://127.0.0.1:<port> with two live workers of one core each."""
    logs = tmp_path_factory.mktemp("cluster-logs")
    port, ui = _free_port(), _free_port()
    url = f"spark://127.0.0.1:{port}"
    daemons = [_daemon(["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
                        "--webui-port", str(ui)], logs / "master.log")]
    try:
        for i in range(2):
            daemons.append(_daemon(["org.apache.spark.deploy.worker.Worker", url, "--host", "127.0.0.1",
                                    "--cores", "1", "--memory", "1g", "--webui-port", str(_free_port()),
                                    "--work-dir", str(logs / f"work{i}")], logs / f"worker{i}.log"))
        deadline = time.monotonic() + 120
        alive = 0
        while alive < 2:
            assert time.monotonic() < deadline, (logs / "master.log").read_text()[-3000:]
            time.sleep(1)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/", timeout=5) as page:
                    alive = int(json.load(page).get("aliveworkers", 0))
            except OSError:
                continue
        yield url
    finally:
        for daemon in reversed(daemons):
            daemon.terminate()
        for daemon in daemons:
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()


def _submit(master_url: str, config: Path, warehouse: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``spark-submit`` the job file to the cluster, with Iceberg from the same jar the product ships."""
    python = sys.executable
    env = {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOCAL_IP": "127.0.0.1",
           "PYSPARK_PYTHON": python, "PYSPARK_DRIVER_PYTHON": python}
    command = [str(SPARK_HOME / "bin" / "spark-submit"), "--master", master_url,
               "--jars", str(iceberg_jar()),
               "--conf", "spark.sql.extensions=org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
               "--conf", "spark.executor.memory=768m", "--conf", "spark.sql.shuffle.partitions=4",
               "--conf", "spark.executor.extraJavaOptions=-XX:-DontCompileHugeMethods -Duser.timezone=UTC",
               "--conf", "spark.sql.session.timeZone=UTC",
               str(ROOT / "jobs" / "summary_pipeline.py"), "--config", str(config), "--warehouse", str(warehouse),
               *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)


@pytest.fixture
def tables(spark: SparkSession, tmp_path: Path) -> tuple[PipelineConfig, PipelineConfig, Path, Path]:
    """The pipeline's config (its embedded catalog on ``warehouse``) and the same tables as the test reads them,
    through a catalog ``cluster`` on that warehouse."""
    warehouse = tmp_path / "warehouse"
    prefix = "spark.sql.catalog.cluster"
    spark.conf.set(prefix, "org.apache.iceberg.spark.SparkCatalog")
    spark.conf.set(f"{prefix}.type", "hadoop")
    spark.conf.set(f"{prefix}.warehouse", str(warehouse))
    spark.conf.set(f"{prefix}.cache-enabled", "false")
    names: dict[str, Any] = {"source_table": f"{NS}.accounts_all", "destination_table": f"{NS}.summary",
                             "latest_history_table": f"{NS}.latest_summary"}
    raw = {**reference_raw(), **names}
    config = tmp_path / "config.json"
    config.write_text(json.dumps(raw))
    seen = parse_config({**raw, **{k: f"cluster.{v}" for k, v in names.items()}}, "test")
    return parse_config(raw, "test"), seen, config, warehouse


def test_initial_and_incremental_on_a_standalone_cluster(spark: SparkSession, master: str, tables: Any) -> None:
    _, seen, config, warehouse = tables
    old, new = dt.datetime(2025, 12, 20), dt.datetime(2026, 1, 20)
    state = [version(a, f"2025-{m:02d}", 100 * a + m, ts=old) for a in range(1, 9) for m in range(7, 13)]
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS cluster.{NS}")
    load_source(spark, seen, state)
    built = _submit(master, config, warehouse, "--mode", "initial")
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert "Case I (New accounts): 8" in built.stdout
    assert_matches_oracle(spark, seen, state)

    batch = [version(a, "2026-01", a, ts=new) for a in range(1, 9)]
    batch += [version(3, "2025-09", -3, ts=new), version(42, "2025-11", 42, ts=new),
              version(5, "2025-12", 0, ts=new, soft_del_cd="1")]
    load_source(spark, seen, batch)
    more = _submit(master, config, warehouse)  # incremental is the default
    assert more.returncode == 0, more.stdout[-3000:] + more.stderr[-3000:]
    assert "INCREMENTAL MODE (PRODUCTION)" in more.stdout and "Case III (Backfill): 1" in more.stdout
    assert_matches_oracle(spark, seen, state + batch)
