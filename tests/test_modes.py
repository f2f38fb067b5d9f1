"""Batch selection arguments: a bad backfill filter or a missing month is one clear message, before any read."""

from __future__ import annotations

import re

import pytest
from pyspark.sql import SparkSession

from factories import load_source, new_config, version
from summary_pipeline.errors import BadFilterError, ConfigError
from summary_pipeline.result import RunOptions
from summary_pipeline.runner import run
from summary_pipeline.store.tables import table_exists

pytestmark = pytest.mark.spark


@pytest.mark.parametrize(
    ("predicate", "message"),
    [
        ("cons_acct_key = 1; DROP TABLE x", "';' is not allowed"),
        ("cons_acct_key IN (SELECT 1)", "'SELECT' is not allowed"),
        ("EXISTS (SELECT 1)", "'EXISTS' is not allowed"),
        ("cons_acct_key +", "does not parse"),
        ("no_such_column = 1", "does not resolve against the source"),
        ("cons_acct_key + 1", "must be a boolean expression; 'cons_acct_key + 1' is bigint"),
        ("   ", "is empty"),
    ],
)
def test_bad_backfill_filters(spark: SparkSession, predicate: str, message: str) -> None:
    cfg = new_config()
    load_source(spark, cfg, [version(1, "2026-01")])
    with pytest.raises(BadFilterError, match=re.escape(message)) as err:
        run(spark, cfg, RunOptions(mode="backfill", backfill_filter=predicate))
    assert err.value.exit_code == 1
    # Refused before the lock: no table, not even the ledger, was created.
    assert not any(table_exists(spark, t) for t in (cfg.destination_table, cfg.ledger_table))


def test_forward_needs_a_start_month(spark: SparkSession) -> None:
    cfg = new_config()
    load_source(spark, cfg, [version(1, "2026-01")])
    with pytest.raises(ConfigError, match="forward needs --start-month"):
        run(spark, cfg, RunOptions(mode="forward"))
