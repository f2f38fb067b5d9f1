"""Property tests: random source versions through the engine equal the oracle.

Each example puts 20 to 30 independent random accounts in one table and one run, so a CI run covers a few
hundred account histories while paying Spark's fixed costs only once per example. ``HYPOTHESIS_PROFILE=long``
runs many more examples.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyspark.sql import SparkSession

from factories import assert_matches_oracle, load_source, new_config
from strategies import source_versions
from summary_pipeline.result import RunOptions
from summary_pipeline.runner import run

pytestmark = [pytest.mark.spark, pytest.mark.slow]

SPARK_EXAMPLES = 60 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else 6


@settings(max_examples=SPARK_EXAMPLES)
@given(versions=source_versions(), history_length=st.sampled_from([3, 6, 36]))
def test_initial_equals_oracle(spark: SparkSession, versions: list[dict[str, Any]], history_length: int) -> None:
    cfg = new_config(history_length=history_length)
    load_source(spark, cfg, versions)
    run(spark, cfg, RunOptions(mode="initial"))
    assert_matches_oracle(spark, cfg, versions)
