"""The embedded session's parts: the Iceberg runtime jar must be a working one (checked before any JVM starts),
and the driver's JVM view resolves each class once."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import pytest
from pyspark import SparkContext
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from summary_pipeline.errors import SummaryPipelineError
from summary_pipeline.spark import _check_shaded, iceberg_jar


def test_the_installed_jar_carries_its_shaded_jackson() -> None:
    assert iceberg_jar().name.startswith("iceberg-spark-runtime-3.5_")


def test_a_jar_without_shaded_jackson_is_refused_with_the_fix(tmp_path: Path) -> None:
    broken = tmp_path / "iceberg-spark-runtime-3.5_2.12-9.9.9.jar"  # what 1.0.3 of the wheel ships
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("org/apache/iceberg/Table.class", b"")
    fix = r"lacks its shaded Jackson .*'snowpark-connect-deps-iceberg==1\.0\.1'"
    with pytest.raises(SummaryPipelineError, match=fix):
        _check_shaded(broken)


@pytest.mark.spark
def test_the_session_resolves_each_jvm_class_once_and_columns_still_work(spark: SparkSession) -> None:
    view: Any = SparkContext._jvm
    assert view.functions is view.functions  # resolved once, then an attribute
    assert view.functions.col is view.functions.col  # a static method, likewise
    assert view.org.apache.spark.sql.functions is not None  # package paths still resolve
    assert spark._jvm is view  # the session's own view too
    row = spark.range(3).select(F.sum(F.col("id") + F.lit(1)).alias("n")).first()
    assert row is not None and row["n"] == 6
