"""The embedded session's parts, checked before any JVM starts: the Iceberg runtime jar must be a working one."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

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
