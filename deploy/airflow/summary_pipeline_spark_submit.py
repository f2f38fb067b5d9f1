"""Airflow DAG: the nightly summary-pipeline run with ``SparkSubmitOperator`` (any cluster Airflow can submit to:
YARN, Kubernetes, a standalone master).

The Spark connection (``spark_default`` unless you change ``CONN_ID``) says where to submit. Set the Airflow
Variables ``summary_pipeline_job`` (path of ``jobs/summary_pipeline.py``) and ``summary_pipeline_config`` (path of
the config JSON where the driver runs: the Airflow worker in client mode). The package must be pip-installed there
(docs/operations.md, "Running on a cluster"). The submit passes ``-XX:-DontCompileHugeMethods`` to the driver and
the executors (docs/operations.md, "Tuning"). Retries are safe: a run that stopped half-way is repaired by running
it again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow import DAG
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

CONN_ID = "spark_default"
JOB = "{{ var.value.summary_pipeline_job }}"
CONFIG = "{{ var.value.summary_pipeline_config }}"

#: Lets the JIT compile the large methods Spark generates for the rank and history expressions; without it they
#: stay interpreted and slow (docs/operations.md, "Tuning"). A ``conf`` entry replaces what spark-defaults
#: sets for the same key: if your cluster sets these two there, append the flag to its value instead.
JIT = "-XX:-DontCompileHugeMethods"

SPARK_CONF = {
    "spark.sql.shuffle.partitions": "2000",
    "spark.driver.extraJavaOptions": JIT,
    "spark.executor.extraJavaOptions": JIT,
}

default_args = {
    "owner": "data-team",
    "depends_on_past": False,
    "email_on_failure": True,
    "retries": 2,
    "retry_delay": timedelta(minutes=5),
}

with DAG(
    dag_id="summary_pipeline_incremental_spark_submit",
    description="Summary pipeline: incremental run, then validate (spark-submit)",
    default_args=default_args,
    start_date=datetime(2026, 1, 1),
    schedule="0 6 * * *",
    catchup=False,
    max_active_runs=1,
) as dag:

    def submit(task_id: str, name: str, *pipeline_args: str) -> SparkSubmitOperator:
        """A task that submits the pipeline's job file with ``pipeline_args`` and waits for it."""
        return SparkSubmitOperator(task_id=task_id, conn_id=CONN_ID, application=JOB, conf=SPARK_CONF, name=name,
                                   application_args=list(pipeline_args))

    run_incremental = submit("run_summary_incremental", "summary-pipeline-incremental",
                             "--config", CONFIG, "--mode", "incremental")
    validate = submit("validate_results", "summary-pipeline-validate",
                      "validate", "--config", CONFIG, "--sample", "0.01")

    run_incremental >> validate
