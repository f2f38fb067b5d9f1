"""Spark's own figures for one run: the bytes its jobs read, wrote, shuffled and spilled.

A run tags its Spark jobs with a job group (its run id; the Spark UI shows it too), and at the end sums the
stages of those jobs from Spark's status store, the same numbers the UI shows. The store keeps the last
``spark.ui.retainedJobs`` / ``spark.ui.retainedStages`` (1,000 each by default; a run uses a few hundred), and
it exists with the UI turned off. Monitoring must never fail a run: if the store cannot be read, the figures
are left out and the reason is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pyspark.sql import SparkSession

__all__ = ["SPARK_FIGURES", "job_group", "spark_figures"]

log = logging.getLogger(__name__)

#: Figure name -> the StageData field it sums.
SPARK_FIGURES = {
    "input_bytes": "inputBytes",
    "output_bytes": "outputBytes",
    "shuffle_read_bytes": "shuffleReadBytes",
    "shuffle_write_bytes": "shuffleWriteBytes",
    "spill_memory_bytes": "memoryBytesSpilled",
    "spill_disk_bytes": "diskBytesSpilled",
}


def group_id(run_id: str) -> str:
    """The Spark job group of a run."""
    return f"summary-pipeline-{run_id}"


@contextmanager
def job_group(spark: SparkSession, run_id: str, what: str) -> Iterator[None]:
    """Tag every Spark job this thread starts inside the block with the run's job group."""
    sc = spark.sparkContext
    sc.setJobGroup(group_id(run_id), f"summary-pipeline {what} {run_id}")
    try:
        yield
    finally:
        for key in ("spark.jobGroup.id", "spark.job.description", "spark.job.interruptOnCancel"):
            sc.setLocalProperty(key, None)  # type: ignore[arg-type]  # None removes the property


def spark_figures(spark: SparkSession, run_id: str) -> dict[str, int]:
    """The run's jobs, stages and summed stage figures (see :data:`SPARK_FIGURES`); empty if unreadable."""
    try:
        sc = spark.sparkContext
        jobs = list(sc.statusTracker().getJobIdsForGroup(group_id(run_id)))
        store: Any = sc._jsc.sc().statusStore()
        stages: set[int] = set()
        for job in jobs:
            ids = store.job(job).stageIds()
            stages.update(int(ids.apply(i)) for i in range(ids.size()))
        figures = dict.fromkeys(SPARK_FIGURES, 0)
        ran = 0
        for stage in stages:
            try:
                data = store.lastStageAttempt(stage)
            except Exception:  # a stage skipped (its shuffle reused) has no attempt
                continue
            ran += 1
            for name, getter in SPARK_FIGURES.items():
                figures[name] += int(getattr(data, getter)())
        return {"spark_jobs": len(jobs), "spark_stages": ran, **figures}
    except Exception as err:
        log.warning("could not read Spark's figures for run %s: %s", run_id, str(err).splitlines()[0][:200])
        return {}
