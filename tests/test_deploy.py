"""Scheduling (issue 6): the Airflow DAGs and the sequenced shell script.

Airflow is not a dependency, so the DAG files are executed against small stand-ins of the few Airflow classes they
use, which record each task's arguments and the order between tasks: a broken import line, a task missing or out
of order, or pipeline arguments the CLI would refuse all fail here. A full Airflow import runs when Airflow is
installed. The shell script runs for real against the embedded Spark.
"""

from __future__ import annotations

import datetime as dt
import os
import runpy
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from factories import assert_matches_oracle, config_file, load_source, new_config, version
from summary_pipeline import cli
from summary_pipeline.result import RunOptions
from summary_pipeline.runner import run

ROOT = Path(__file__).resolve().parents[1]
DAGS = ROOT / "deploy" / "airflow"


class _Dag:
    current: _Dag | None = None

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.tasks: list[_Task] = []

    def __enter__(self) -> _Dag:
        _Dag.current = self
        return self

    def __exit__(self, *_exc: object) -> None:
        _Dag.current = None


class _Task:
    def __init__(self, **kwargs: Any) -> None:
        assert _Dag.current is not None, "a task outside its DAG"
        self.kwargs = kwargs
        self.task_id: str = kwargs["task_id"]
        self.downstream: list[_Task] = []
        _Dag.current.tasks.append(self)

    def __rshift__(self, other: _Task) -> _Task:
        self.downstream.append(other)
        return other


class _Stub(types.ModuleType):
    """A stand-in Airflow module."""


def _load_dag(path: Path, monkeypatch: pytest.MonkeyPatch) -> _Dag:
    """Execute a DAG file with stand-ins for Airflow and return its DAG."""
    modules: dict[str, dict[str, type]] = {
        "airflow": {"DAG": _Dag},
        "airflow.providers.amazon.aws.operators.emr": {"EmrAddStepsOperator": _Task},
        "airflow.sensors.external_task": {"ExternalTaskSensor": _Task},
        "airflow.providers.apache.spark.operators.spark_submit": {"SparkSubmitOperator": _Task},
    }
    for name, members in modules.items():
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if not isinstance(sys.modules.get(prefix), _Stub):
                monkeypatch.setitem(sys.modules, prefix, _Stub(prefix))
        for attr, value in members.items():
            setattr(sys.modules[name], attr, value)
    dag = runpy.run_path(str(path))["dag"]
    assert isinstance(dag, _Dag)
    return dag


def _chain(dag: _Dag) -> list[str]:
    """The task ids along the DAG's single chain, from the task nothing points to."""
    pointed = {t.task_id for task in dag.tasks for t in task.downstream}
    (task,) = [t for t in dag.tasks if t.task_id not in pointed]
    order = [task.task_id]
    while task.downstream:
        (task,) = task.downstream
        order.append(task.task_id)
    return order


def _parses(pipeline_args: list[str]) -> Any:
    """The pipeline arguments as the CLI would take them (argparse exits on anything it refuses)."""
    if pipeline_args[0] == "validate":
        return cli.command_parser("validate").parse_args(pipeline_args[1:])
    return cli.command_parser("run").parse_args(pipeline_args)


#: The JIT flag docs/operations.md (Tuning) says a cluster run needs on the driver and the executors.
JIT = "-XX:-DontCompileHugeMethods"


def _carries_the_jit_flag(conf: dict[str, str]) -> None:
    for side in ("driver", "executor"):
        assert JIT in conf.get(f"spark.{side}.extraJavaOptions", "").split(), side


def _nightly(dag: _Dag) -> None:
    assert dag.kwargs["max_active_runs"] == 1 and dag.kwargs["catchup"] is False
    assert dag.kwargs["default_args"]["retries"] >= 1
    assert dag.kwargs["schedule"] == "0 6 * * *"


def test_the_emr_dag_runs_incremental_then_validate_as_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    dag = _load_dag(DAGS / "summary_pipeline_emr.py", monkeypatch)
    _nightly(dag)
    assert _chain(dag) == ["wait_for_source_data", "run_summary_incremental", "validate_results"]
    tasks = {t.task_id: t for t in dag.tasks}
    modes = []
    for task_id in ("run_summary_incremental", "validate_results"):
        task = tasks[task_id]
        assert task.kwargs["wait_for_completion"] is True  # so an Airflow retry runs the step again
        (step,) = task.kwargs["steps"]
        args = step["HadoopJarStep"]["Args"]
        assert args[:3] == ["spark-submit", "--deploy-mode", "cluster"]
        conf = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "--conf")
        _carries_the_jit_flag(conf)
        assert args[args.index("--files") + 1].endswith("/config/summary_config.json")
        job = next(i for i, a in enumerate(args) if a.endswith("/jobs/summary_pipeline.py"))
        parsed = _parses(args[job + 1:])
        assert parsed.config == "summary_config.json"
        modes.append(getattr(parsed, "mode", "validate"))
    assert modes == ["incremental", "validate"]


def test_the_spark_submit_dag_runs_incremental_then_validate(monkeypatch: pytest.MonkeyPatch) -> None:
    dag = _load_dag(DAGS / "summary_pipeline_spark_submit.py", monkeypatch)
    _nightly(dag)
    assert _chain(dag) == ["run_summary_incremental", "validate_results"]
    run_task, validate_task = dag.tasks
    assert run_task.kwargs["application"] == validate_task.kwargs["application"]
    for task in (run_task, validate_task):
        _carries_the_jit_flag(task.kwargs["conf"])
    assert _parses(run_task.kwargs["application_args"]).mode == "incremental"
    assert _parses(validate_task.kwargs["application_args"]).sample == 0.01


@pytest.mark.slow
def test_the_dags_import_in_airflow() -> None:
    pytest.importorskip("airflow")
    from airflow.models import DagBag  # type: ignore[import-not-found]

    bag = DagBag(dag_folder=str(DAGS), include_examples=False)
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {"summary_pipeline_incremental", "summary_pipeline_incremental_spark_submit"}


@pytest.mark.spark
@pytest.mark.slow
def test_the_production_script_runs_backfill_forward_and_validate(spark: SparkSession, tmp_path: Path) -> None:
    cfg = new_config()
    old = dt.datetime(2025, 12, 20)
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    months = ("2025-10", "2025-11", "2025-12")
    state = [version(a, m, 100 * a + i, ts=old) for a in (1, 2) for i, m in enumerate(months)]
    load_source(spark, cfg, state)
    run(spark, cfg, RunOptions(mode="initial"))
    batch = [version(1, "2025-11", 999, ts=now), version(1, "2026-01", 4, ts=now), version(2, "2026-01", 5, ts=now)]
    load_source(spark, cfg, batch)

    config = config_file(cfg, tmp_path)
    warehouse = spark.conf.get(f"spark.sql.catalog.{cfg.catalog_name}.warehouse")
    env = {**os.environ, "PIPELINE": f"{sys.executable} -m summary_pipeline",
           "PIPELINE_ARGS": f"--warehouse {warehouse}", "LOG_DIR": str(tmp_path / "logs"), "SAMPLE": "1"}
    done = subprocess.run(["bash", str(ROOT / "deploy" / "run_production.sh"), str(config), "2026-01"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert out.index("BACKFILL MODE") < out.index("FORWARD MODE") < out.index("Validation passed")
    assert "Case III (Backfill): 1" in out and "Case II (Forward entries): 2" in out
    assert "Production run completed" in out
    assert sorted(p.name.split("_")[0] for p in (tmp_path / "logs").iterdir()) == ["backfill", "forward", "validate"]
    assert_matches_oracle(spark, cfg, state + batch)
