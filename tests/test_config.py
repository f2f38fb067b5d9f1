"""Config validation, first phase (no Spark): the seed's file loads; every problem is listed at once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from factories import REFERENCE_CONFIG, reference_raw
from summary_pipeline.config import load_config, parse_config, spark_type
from summary_pipeline.errors import ConfigError


def problems_of(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_config(raw, "my.json")
    assert str(err.value).startswith("my.json: ")
    return err.value.problems


def test_reference_config_loads_unchanged() -> None:
    cfg = load_config(REFERENCE_CONFIG)
    assert cfg.history_length == 36
    assert cfg.key == "cons_acct_key" and cfg.month == "rpt_as_of_mo" and cfg.ts == "base_ts"
    assert cfg.grid_columns[0].separator == "" and cfg.grid_columns[0].placeholder == "?"
    assert cfg.tie_breaker_columns == ("insert_ts", "update_ts")
    assert cfg.history_columns[1] == "balance_am_history"
    assert "payment_history_grid" in cfg.latest_columns


def test_seed_keys_that_configure_nothing_are_reported() -> None:
    cfg = load_config(REFERENCE_CONFIG)
    assert cfg.ignored_keys() == ["coalesce_exclusion_cols", "primary_date_column", "backfill_settings",
                                  "performance", "rolling_columns[].mapper_column"]


def test_spark_config_maps_onto_spark_settings_and_spark_block_wins() -> None:
    raw = reference_raw()
    raw["spark"] = {"spark.sql.shuffle.partitions": 7, "spark.sql.adaptive.enabled": False}
    settings = parse_config(raw).spark_settings()
    assert settings["spark.sql.autoBroadcastJoinThreshold"] == str(50 * 1024 * 1024)
    assert settings["spark.sql.adaptive.skewJoin.enabled"] == "true"
    assert settings["spark.sql.shuffle.partitions"] == "7"
    assert settings["spark.sql.adaptive.enabled"] == "false"


def test_layout_sets_table_properties_and_storage_partitioned_joins() -> None:
    plain = load_config(REFERENCE_CONFIG)  # no layout block: the layout docs/PERFORMANCE.md recommends
    assert plain.layout.properties()["write.merge.mode"] == "merge-on-read"
    assert plain.layout.properties(latest=True)["write.merge.mode"] == "copy-on-write"
    assert "spark.sql.sources.v2.bucketing.enabled" not in plain.spark_settings()
    raw = reference_raw()
    raw["layout"] = {"summary_buckets": 64, "write_mode": "copy-on-write", "target_file_size_mb": 256}
    cfg = parse_config(raw)
    assert cfg.layout.properties() == {"write.merge.mode": "copy-on-write", "write.update.mode": "copy-on-write",
                                       "write.delete.mode": "copy-on-write",
                                       "write.target-file-size-bytes": str(256 * 1024 * 1024)}
    raw["layout"]["latest_write_mode"] = "merge-on-read"
    cfg = parse_config(raw)
    assert cfg.layout.properties()["write.merge.mode"] == "copy-on-write"
    assert {v for k, v in cfg.layout.properties(latest=True).items() if k.endswith(".mode")} == {
        "merge-on-read"}
    assert cfg.spark_settings()["spark.sql.sources.v2.bucketing.shuffle.enabled"] == "true"


def test_every_problem_is_listed_in_one_message() -> None:
    raw = reference_raw()
    raw["histroy_length"] = 12
    del raw["source_table"]
    raw["destination_table"] = "default.summary; DROP TABLE x"
    raw["rolling_columns"][1]["type"] = "Intger"
    raw["rolling_columns"][2]["num_cols"] = 12
    raw["grid_columns"][0]["mapper_rolling_column"] = "payment_rating"
    raw["latest_history_addon_cols"].append("balance")
    raw["soft_delete"]["colum"] = "x"
    problems = problems_of(raw)
    assert problems == [
        "source_table: required key is missing",
        "destination_table: 'default.summary; DROP TABLE x' is not a table name; use [catalog.]namespace.table "
        "with letters, digits and underscores",
        "rolling_columns[1] (balance_am).type: unknown type 'Intger'; use one of Integer, Long, Double, Decimal, "
        "Decimal(p,s), String, Date",
        "soft_delete.colum: unknown key; did you mean 'column'?",
        "histroy_length: unknown key; did you mean 'history_length'?",
        "rolling_columns[2] (credit_limit_am).num_cols: 12 differs from history_length 36; they must be equal",
        "grid_columns[0] (payment_history_grid).mapper_rolling_column: 'payment_rating' is not a rolling column; "
        "did you mean 'payment_rating_cd'?",
        "latest_history_addon_cols[24]: 'balance' is not a summary column; did you mean 'balance_am'?",
    ]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda r: r["columns"].update(acct_bal_am="emi_amt"), "columns: destination name 'emi_amt' is used more"),
        (lambda r: r["columns"].update(base_ts="ts"), "columns.base_ts: the max_identifier_column must keep its"),
        (lambda r: r["date_col_list"].append("nope_dt"), "date_col_list[7]: 'nope_dt' is not a destination name"),
        (lambda r: r["column_transformations"].append({"name": "new_col", "mapper_expr": "1"}),
         "column_transformations[7] (new_col): not a destination column"),
        (lambda r: r["inferred_columns"].append({"name": "balance_am", "mapper_expr": "1"}),
         "inferred_columns (balance_am): already a column"),
        (lambda r: r.update(soft_delete={"column": "deleted"}), "soft_delete.column: 'deleted' is not a destination"),
        (lambda r: r.update(history_length=0), "history_length: Input should be greater than or equal to 1"),
        (lambda r: r.update(watermark_lookback="soon"), "watermark_lookback: 'soon' is not a duration"),
        (lambda r: r["grid_columns"][0].update(seperator="|"), "give 'separator' or the seed's 'seperator'"),
        (lambda r: r.update(tie_breaker_columns="insert_ts"), "tie_breaker_columns: Input should be a valid"),
        (lambda r: r.update(layout={"write_mode": "fast"}), "layout.write_mode: Input should be 'copy-on-write' or"),
        (lambda r: r.update(layout={"summary_bucket": 8}), "layout.summary_bucket: unknown key; did you mean"),
    ],
)
def test_single_problems(change: Any, expected: str) -> None:
    raw = reference_raw()
    change(raw)
    assert any(p.startswith(expected) or expected in p for p in problems_of(raw)), problems_of(raw)


def test_both_spellings_of_separator_are_accepted() -> None:
    raw = reference_raw()
    raw["grid_columns"][0]["separator"] = "|"
    assert parse_config(raw).grid_columns[0].separator == "|"
    del raw["grid_columns"][0]["separator"]
    raw["grid_columns"][0]["seperator"] = "-"
    assert parse_config(raw).grid_columns[0].separator == "-"


def test_lookback_durations() -> None:
    raw = reference_raw()
    raw["watermark_lookback"] = "2 hours"
    assert parse_config(raw).watermark_lookback == 7200
    raw["watermark_lookback"] = 60
    assert parse_config(raw).watermark_lookback == 60


def test_types() -> None:
    assert [spark_type(t) for t in ("Integer", "Long", "Double", "String", "Date", "Decimal", "decimal(10, 3)")] == [
        "int", "bigint", "double", "string", "date", "decimal(18,2)", "decimal(10,3)"]
    with pytest.raises(ValueError, match="unknown type"):
        spark_type("Decimal(50,2)")


def test_unreadable_and_invalid_json_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"source_table": ')
    with pytest.raises(ConfigError, match=r"bad.json: 1 problem:\n  - not valid JSON: Expecting value at line 1"):
        load_config(bad)
    bad.write_text(json.dumps([1]))
    with pytest.raises(ConfigError, match="top level must be a JSON object"):
        load_config(bad)


def test_the_example_config_is_the_seed_reference_unchanged() -> None:
    from factories import REPO_CONFIG, shared_dir

    reference = shared_dir() / "reference" / "summary_config.json"
    if not reference.exists():
        pytest.skip("shared/ is not beside this clone")
    assert json.loads(REPO_CONFIG.read_text()) == json.loads(reference.read_text())
