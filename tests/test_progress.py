"""Progress lines come from Spark's own status: a phase's name and time, and its stage's tasks done and in all."""

from __future__ import annotations

import io
import re

import pytest
from pyspark.sql import SparkSession

from summary_pipeline.progress import Ticker, describe, phase

pytestmark = pytest.mark.spark


def _slow_job(spark: SparkSession, seconds: float) -> None:
    """Four tasks that each sleep in the JVM (no Python UDF): a stage that stays active a while."""
    millis = int(seconds * 1000 / 2)
    spark.range(0, 4, 1, 4).selectExpr(f"reflect('java.lang.Thread', 'sleep', cast({millis} as bigint))").collect()


def test_idle_there_is_nothing_to_say_and_a_phase_names_itself(spark: SparkSession) -> None:
    assert describe(spark) is None
    with phase("classify"):
        assert describe(spark) == "[classify 0 s]"
    assert describe(spark) is None


def test_plain_lines_name_the_phase_and_count_the_stage_tasks(spark: SparkSession) -> None:
    lines: list[str] = []
    with phase("rebuild"), Ticker(spark, io.StringIO(), terminal=False, emit=lines.append, every=0.5):
        _slow_job(spark, 3)
    assert lines, "no progress line during a 3 s stage"
    assert all(re.fullmatch(r"\[rebuild \d+ s\] Spark stage \d+: \d/4 tasks", line) for line in lines), lines


def test_on_a_terminal_one_line_is_rewritten_and_cleared_before_other_output(spark: SparkSession) -> None:
    err = io.StringIO()
    with phase("write summary"), Ticker(spark, err, terminal=True, emit=lambda line: None) as ticker:
        _slow_job(spark, 2)
        with ticker.printing():
            shown = err.getvalue()
            err.write("<a line of output>\n")
    assert "\r\033[K[write summary " in shown and "tasks" in shown and "\n" not in shown
    assert shown.endswith("\r\033[K")  # the in-place line went before the output
