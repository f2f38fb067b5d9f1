"""Config evolution (issue 18): the tables' definition is recorded, a run under a different one is refused with
the changes listed, and ``evolve`` applies a change so that the tables equal a fresh ``initial`` under the new
config, every column, internal ones included."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from factories import T0, load_source, new_config, version
from summary_pipeline.config import PipelineConfig, parse_config
from summary_pipeline.definition import FINGERPRINT_PROPERTY, definition, fingerprint
from summary_pipeline.errors import DefinitionChangedError
from summary_pipeline.ops.validate import validate
from summary_pipeline.result import RunOptions
from summary_pipeline.runner import evolve, new_result, run
from summary_pipeline.store import protocol
from summary_pipeline.store.ledger import ledger_rows
from summary_pipeline.store.snapshots import state, table_properties

pytestmark = pytest.mark.spark

INCREMENTAL = RunOptions(mode="incremental")
EVOLVE = RunOptions(mode="evolve")
LATER = T0 + dt.timedelta(days=3)


def _versions() -> list[dict[str, Any]]:
    """Three accounts over eight months with gaps, a correction, a tombstone and a delete with no row."""
    rows = [version(a, f"2025-{m:02d}", 100 * a + m, ts=T0, next_schd_pymt_am=10 * m + a, high_credit_am_4in=7 * m)
            for a in (1, 2, 3) for m in (1, 2, 4, 5, 6, 8)]
    rows += [version(2, "2025-04", 999, ts=LATER, next_schd_pymt_am=77)]  # a correction
    rows += [version(1, "2025-05", 0, ts=LATER, soft_del_cd="1")]  # a tombstone
    rows += [version(3, "2025-09", 0, ts=LATER, soft_del_cd="4")]  # a delete with no active version
    return rows


def _raw(cfg: PipelineConfig) -> dict[str, Any]:
    raw = cfg.model_dump(by_alias=True, exclude_none=True, mode="json")
    raw["rolling_columns"] = [{k: v for k, v in r.items() if k != "num_cols"} for r in raw["rolling_columns"]]
    return raw


def _with(cfg: PipelineConfig, **changes: Any) -> PipelineConfig:
    """``cfg`` with top-level keys changed (the same tables)."""
    return parse_config({**_raw(cfg), **changes}, "changed-config")


EMI = {"name": "emi", "mapper_expr": "emi_amt", "type": "Integer"}
EMI_GRID = {"name": "emi_grid", "mapper_rolling_column": "emi", "placeholder": "-", "seperator": ","}


def _added(cfg: PipelineConfig, **entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Top-level changes that append ``entries`` to the config's lists (``rolling_columns=[...]``)."""
    raw = _raw(cfg)
    return {key: raw[key] + items for key, items in entries.items()}


def _table_rows(spark: SparkSession, table: str) -> list[dict[str, Any]]:
    return sorted((r.asDict(recursive=True) for r in spark.table(table).collect()),
                  key=lambda r: (r["cons_acct_key"], r.get("rpt_as_of_mo") or ""))


def _assert_as_fresh_initial(spark: SparkSession, cfg: PipelineConfig) -> None:
    """The tables equal those a fresh initial under ``cfg`` builds from the same source: same columns in the same
    order, same rows, every column (internal ones too), for summary, latest_summary and the deletes table."""
    fresh = parse_config({**_raw(cfg), "destination_table": f"{cfg.destination_table}_fresh",
                          "latest_history_table": f"{cfg.latest_history_table}_fresh"}, "fresh")
    if not state(spark, fresh.destination_table):
        run(spark, fresh, RunOptions(mode="initial"))
    for mine, theirs in ((cfg.destination_table, fresh.destination_table),
                         (cfg.latest_history_table, fresh.latest_history_table),
                         (cfg.deletes_table, fresh.deletes_table)):
        assert spark.table(mine).columns == spark.table(theirs).columns, mine
        assert _table_rows(spark, mine) == _table_rows(spark, theirs), mine


def _built(spark: SparkSession, cfg: PipelineConfig) -> None:
    load_source(spark, cfg, _versions())
    run(spark, cfg, RunOptions(mode="initial"))


# ----- the refusal --------------------------------------------------------------------------------------------


def test_a_run_under_a_changed_config_is_refused_with_each_change_listed(spark: SparkSession) -> None:
    base = new_config(history_length=6)
    cfg = _with(base, **_added(base, rolling_columns=[EMI]))
    _built(spark, cfg)
    rows_before = len(ledger_rows(spark, cfg.ledger_table))
    raw = _raw(cfg)
    kinds = {
        "history_length: 6 -> 8": _with(cfg, history_length=8),
        'rolling_columns[hi]: added (mapper_expr "hi_credit_am", type "int")':
            _with(cfg, **_added(cfg, rolling_columns=[{"name": "hi", "mapper_expr": "hi_credit_am",
                                                        "type": "Integer"}])),
        'rolling_columns[emi]: removed (was mapper_expr "emi_amt", type "int")':
            _with(cfg, rolling_columns=raw["rolling_columns"][:-1]),
        'rolling_columns[emi].mapper_expr: "emi_amt" -> "emi_amt * 2"':
            _with(cfg, rolling_columns=[*raw["rolling_columns"][:-1], {**EMI, "mapper_expr": "emi_amt * 2"}]),
        'tie_breaker_columns: ["insert_ts", "update_ts"] -> ["update_ts"]':
            _with(cfg, tie_breaker_columns=["update_ts"]),
        'soft_delete.codes: ["1", "4"] -> ["1"]':
            _with(cfg, soft_delete={"column": "soft_del_cd", "codes": ["1"]}),
    }
    others = (RunOptions(mode="incremental", dry_run=True), RunOptions(mode="backfill",
                                                                      backfill_filter="cons_acct_key = 1"))
    for i, (expected, changed) in enumerate(kinds.items()):
        for options in (INCREMENTAL, *(others if i == 0 else ())):  # every mode but initial is refused alike
            with pytest.raises(DefinitionChangedError) as caught:
                run(spark, changed, options, config_name="new.json")
            message = str(caught.value)
            assert caught.value.exit_code == 2
            assert f"\n  {expected}\n" in f"{message}\n" and message.count("\n  ") == 1, message
            assert "`summary-pipeline evolve --config new.json`" in message
    assert len(ledger_rows(spark, cfg.ledger_table)) == rows_before  # nothing recorded, nothing written
    with pytest.raises(DefinitionChangedError, match="or validate with the config that built them"):
        validate(spark, kinds["history_length: 6 -> 8"])
    # Settings that do not change the contents are not part of the definition.
    same = _with(cfg, layout={"write_mode": "copy-on-write"}, lock_timeout=900, audit=False,
                 spark={"spark.sql.shuffle.partitions": "3"}, max_rejected_rows=5)
    assert run(spark, same, INCREMENTAL).status == "succeeded"


def test_tables_built_before_definitions_were_recorded_are_adopted_once(spark: SparkSession) -> None:
    cfg = new_config(history_length=6)
    _built(spark, cfg)
    fp = fingerprint(definition(cfg))
    assert table_properties(spark, cfg.destination_table)[FINGERPRINT_PROPERTY] == fp
    # An earlier release recorded no definition, on the ledger or the tables.
    spark.sql(f"UPDATE {cfg.ledger_table} SET definition = NULL")
    for table in protocol.data_tables(cfg)[:3]:
        spark.sql(f"ALTER TABLE {table} UNSET TBLPROPERTIES ('{FINGERPRINT_PROPERTY}')")
    changed = _with(cfg, history_length=8)
    result = run(spark, changed, INCREMENTAL)  # adopted: whatever config runs first is the definition
    assert result.status == "succeeded" and json.loads(result.definition or "{}")["history_length"] == 8
    assert table_properties(spark, cfg.latest_history_table)[FINGERPRINT_PROPERTY] == fingerprint(
        definition(changed))
    with pytest.raises(DefinitionChangedError, match="history_length: 8 -> 6"):
        run(spark, cfg, INCREMENTAL)


# ----- evolve: every kind of change equals a fresh initial under the new config ---------------------------------


def _kinds() -> dict[str, tuple[Callable[[PipelineConfig], dict[str, Any]], Callable[[PipelineConfig],
                                                                                      dict[str, Any]], str]]:
    """kind -> (the old config's changes to the base, the new config's, the path evolve takes)."""
    def same(_: PipelineConfig) -> dict[str, Any]:
        return {}

    def with_emi(c: PipelineConfig) -> dict[str, Any]:
        return _added(c, rolling_columns=[EMI], grid_columns=[EMI_GRID])

    return {
        "add a rolling column and its grid": (same, with_emi, "columns"),
        "drop a rolling column and its grid": (with_emi, same, "columns"),
        "change a rolling column's expression": (
            with_emi, lambda c: _added(c, rolling_columns=[{**EMI, "mapper_expr": "emi_amt * 2 + 1"}],
                                       grid_columns=[EMI_GRID]), "columns"),
        "change a grid": (with_emi, lambda c: _added(c, rolling_columns=[EMI], grid_columns=[
            {**EMI_GRID, "placeholder": "*", "seperator": ""}]), "columns"),
        "add an inferred column": (same, lambda c: _added(c, inferred_columns=[
            {"name": "hi_twice", "mapper_expr": "hi_credit_am * 2"}]), "columns"),
        "a new value that does not fit its type": (same, lambda c: _added(c, rolling_columns=[
            {"name": "hi_code", "mapper_expr": "CASE WHEN hi_credit_am > 40 THEN 'big' ELSE '1' END",
             "type": "Integer"}]), "rebuild"),
        "history length": (same, lambda c: {"history_length": 8}, "rebuild"),
        "ranking rule": (same, lambda c: {"tie_breaker_columns": ["update_ts"]}, "rebuild"),
        "a transformation": (same, lambda c: {"column_transformations": _raw(c)["column_transformations"][1:]},
                             "rebuild"),
        "drop a rolling column that shares its name with a column": (
            same, lambda c: {"rolling_columns": _raw(c)["rolling_columns"][:-1]}, "rebuild"),
    }


FAST = ("add a rolling column and its grid",)


@pytest.mark.parametrize("kind", [pytest.param(k, marks=() if k in FAST else pytest.mark.slow) for k in _kinds()])
def test_evolve_equals_a_fresh_initial_under_the_new_config(spark: SparkSession, kind: str) -> None:
    old_changes, new_changes, path = _kinds()[kind]
    base = new_config(history_length=6)
    old, new = _with(base, **old_changes(base)), _with(base, **new_changes(base))
    _built(spark, old)

    result = evolve(spark, new, EVOLVE)
    assert result.status == "succeeded" and result.message == f"{path} path"
    _assert_as_fresh_initial(spark, new)
    rows = ledger_rows(spark, new.ledger_table)
    assert rows[-1]["mode"] == "evolve" and json.loads(rows[-1]["definition"]) == definition(new)
    assert table_properties(spark, new.destination_table)[FINGERPRINT_PROPERTY] == fingerprint(definition(new))
    # The next run under the new config goes ahead; under the old one, it is refused.
    assert run(spark, new, INCREMENTAL).status == "succeeded"
    with pytest.raises(DefinitionChangedError):
        run(spark, old, INCREMENTAL)
    assert evolve(spark, new, EVOLVE).message == "nothing to evolve"


def test_a_dry_run_prints_the_plan_and_writes_nothing(spark: SparkSession) -> None:
    cfg = new_config(history_length=6)
    _built(spark, cfg)
    new = _with(cfg, **_added(cfg, rolling_columns=[EMI], grid_columns=[EMI_GRID]))
    before = {t: state(spark, t) for t in protocol.data_tables(cfg)}
    rows = len(ledger_rows(spark, cfg.ledger_table))
    lines: list[str] = []
    result = evolve(spark, new, RunOptions(mode="evolve", dry_run=True), progress=lines.append)
    assert result.status == "planned" and result.summary_rows_written == 18
    assert lines[:3] == ["Changes:", '  rolling_columns[emi]: added (mapper_expr "emi_amt", type "int")',
                         '  grid_columns[emi_grid]: added (mapper_rolling_column "emi", placeholder "-", '
                         'separator ",")']
    assert lines[3].startswith("Path: columns") and "computes emi_history, emi_grid" in lines[4]
    assert "no source version" in lines[5]
    assert {t: state(spark, t) for t in protocol.data_tables(cfg)} == before
    assert len(ledger_rows(spark, cfg.ledger_table)) == rows
    lines.clear()
    evolve(spark, _with(cfg, history_length=8), RunOptions(mode="evolve", dry_run=True), progress=lines.append)
    assert lines[1:3] == ["  history_length: 6 -> 8", "Path: rebuild (history_length changed: every row is built "
                          "again)"]


@pytest.mark.slow
def test_rollback_of_an_evolve_puts_back_the_columns_rows_and_definition(spark: SparkSession) -> None:
    cfg = new_config(history_length=6)
    _built(spark, cfg)
    before = {t: (spark.table(t).columns, _table_rows(spark, t)) for t in protocol.data_tables(cfg)[:3]}
    new = _with(cfg, **_added(cfg, rolling_columns=[EMI], grid_columns=[EMI_GRID]))
    result = evolve(spark, new, EVOLVE)
    assert "emi_history" in spark.table(cfg.destination_table).columns
    protocol.rollback(spark, cfg, new_result("rollback", cfg, {}), result.run_id, False, lambda _: None)
    assert {t: (spark.table(t).columns, _table_rows(spark, t)) for t in protocol.data_tables(cfg)[:3]} == before
    assert table_properties(spark, cfg.destination_table)[FINGERPRINT_PROPERTY] == fingerprint(definition(cfg))
    assert run(spark, cfg, INCREMENTAL).status == "succeeded"  # the old config is the tables' again


@pytest.mark.slow
def test_a_kill_at_every_step_of_an_evolve_is_repaired_by_running_it_again(spark: SparkSession) -> None:
    from factories import Kill, fault

    cfg = new_config(history_length=6)
    _built(spark, cfg)
    new = _with(cfg, **_added(cfg, rolling_columns=[EMI], grid_columns=[EMI_GRID]))
    old_rows = _table_rows(spark, cfg.destination_table)

    def undo() -> None:  # back to the old definition, as a user would
        last = [r for r in ledger_rows(spark, cfg.ledger_table) if r["mode"] == "evolve"
                and r["status"] == "succeeded" and r["summary_rows_written"]][-1]
        protocol.rollback(spark, cfg, new_result("rollback", cfg, {}), last["run_id"], True, lambda _: None)

    passed: list[str] = []
    evolve(spark, new, EVOLVE, on_step=passed.append)  # the steps an evolve of changed columns passes
    undo()
    assert "published_summary" not in passed  # its tables' columns change: replaced, not staged
    for step in passed:
        with pytest.raises(Kill):
            evolve(spark, new, EVOLVE, on_step=fault(step, Kill(step)))
        result = evolve(spark, new, EVOLVE)
        done_before = step in ("recorded", "released")  # killed after its commit point
        assert result.message == ("nothing to evolve" if done_before else "columns path"), step
        _assert_as_fresh_initial(spark, new)
        undo()
        assert _table_rows(spark, cfg.destination_table) == old_rows, step


def test_the_cli_evolves_and_refuses(spark: SparkSession, cli_in_process: Callable[..., int], tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    cfg = new_config(history_length=6)
    _built(spark, cfg)
    path = tmp_path / "new.json"
    path.write_text(json.dumps(_with(cfg, **_added(cfg, rolling_columns=[EMI])).model_dump(by_alias=True,
                                                                                           exclude_none=True)))
    assert cli_in_process(["--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the config defines") and f"summary-pipeline evolve --config {path}" in err
    assert cli_in_process(["evolve", "--config", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "EVOLVE (APPLY A CONFIG CHANGE) - DRY RUN" in out and "Path: columns" in out
    assert cli_in_process(["evolve", "--config", str(path)]) == 0
    assert cli_in_process(["--config", str(path)]) == 0
