"""Airflow DAG: the nightly summary-pipeline run as EMR steps (incremental, then validate).

Copy this file into your DAGs folder and set the Airflow Variables it reads (or edit ``SETTINGS``):

* ``summary_pipeline_emr_cluster``: the EMR cluster id (``j-...``) the steps run on;
* ``summary_pipeline_s3``: the S3 prefix holding ``jobs/summary_pipeline.py`` and ``config/summary_config.json``.

The cluster must be an EMR release whose Spark and Python match the package (emr-7.1.0 or later, PySpark on
Python 3.11), with the package pip-installed by a bootstrap action and Iceberg and a Glue catalog configured: see
docs/operations.md, "Running on a cluster" (its EMR steps). Each step passes ``-XX:-DontCompileHugeMethods`` to
the driver and the executors (docs/operations.md, "Tuning"). Each task adds its step and waits for it, so an Airflow
retry runs the step again; that is safe, because a run that stopped half-way is repaired by running it again.
``max_active_runs=1`` keeps two nights from overlapping (the pipeline's run lock would refuse the second anyway).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow import DAG
from airflow.providers.amazon.aws.operators.emr import EmrAddStepsOperator
from airflow.sensors.external_task import ExternalTaskSensor

CLUSTER = "{{ var.value.summary_pipeline_emr_cluster }}"
S3 = "{{ var.value.summary_pipeline_s3 }}"

#: Lets the JIT compile the large methods Spark generates for the rank and history expressions; without it they
#: stay interpreted and slow (docs/operations.md, "Tuning"). A ``--conf`` replaces what spark-defaults sets
#: for the same key: if your cluster sets these two there, append the flag to its value instead.
JIT = "-XX:-DontCompileHugeMethods"

#: spark-submit settings for a cluster of the seed's size; see docs/PERFORMANCE.md for sizing.
SPARK_CONF = {
    "spark.sql.shuffle.partitions": "2000",
    "spark.executor.memory": "100g",
    "spark.executor.instances": "50",
    "spark.driver.extraJavaOptions": JIT,
    "spark.executor.extraJavaOptions": JIT,
}


def spark_step(name: str, *pipeline_args: str) -> dict[str, object]:
    """One EMR step running the pipeline's job file with ``pipeline_args`` (the config shipped with --files)."""
    conf = [part for key, value in SPARK_CONF.items() for part in ("--conf", f"{key}={value}")]
    return {
        "Name": name,
        "ActionOnFailure": "CONTINUE",
        "HadoopJarStep": {
            "Jar": "command-runner.jar",
            "Args": ["spark-submit", "--deploy-mode", "cluster", *conf,
                     "--files", f"{S3}/config/summary_config.json",
                     f"{S3}/jobs/summary_pipeline.py", *pipeline_args],
        },
    }


default_args = {
    "owner": "data-team",
    "depends_on_past": False,
    "email_on_failure": True,
    "email_on_retry": False,
    "retries": 2,
    "retry_delay": timedelta(minutes=5),
}

with DAG(
    dag_id="summary_pipeline_incremental",
    description="Summary pipeline: incremental run, then validate",
    default_args=default_args,
    start_date=datetime(2026, 1, 1),
    schedule="0 6 * * *",  # daily at 06:00
    catchup=False,
    max_active_runs=1,
) as dag:
    wait_for_source = ExternalTaskSensor(
        task_id="wait_for_source_data",
        external_dag_id="accounts_all_ingestion",
        external_task_id="load_complete",
        timeout=3600,
        mode="reschedule",
    )
    run_incremental = EmrAddStepsOperator(
        task_id="run_summary_incremental",
        job_flow_id=CLUSTER,
        steps=[spark_step("Summary pipeline incremental",
                          "--config", "summary_config.json", "--mode", "incremental")],
        wait_for_completion=True,
        waiter_delay=60,
        waiter_max_attempts=12 * 60,  # 12 hours
    )
    validate = EmrAddStepsOperator(
        task_id="validate_results",
        job_flow_id=CLUSTER,
        steps=[spark_step("Summary pipeline validate",
                          "validate", "--config", "summary_config.json", "--sample", "0.01")],
        wait_for_completion=True,
        waiter_delay=60,
        waiter_max_attempts=6 * 60,
    )

    wait_for_source >> run_incremental >> validate
