"""Nothing from the config or the command line reaches SQL as anything but a checked name, an escaped literal or
one expression (issue 19): each way in, tried with an injection, is refused with a clear message and changes
nothing."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from factories import load_source, new_config, reference_raw, version
from summary_pipeline import cli
from summary_pipeline.config import PipelineConfig, parse_config
from summary_pipeline.errors import BadFilterError, ConfigError
from summary_pipeline.modes import usage_problem
from summary_pipeline.ops.maintain import _call
from summary_pipeline.result import RunOptions
from summary_pipeline.runner import new_result, run
from summary_pipeline.sql_text import expression_problem, sql_in, sql_name, sql_string, sql_table
from summary_pipeline.store.ledger import ensure_ledger, ledger_rows, mark, record
from summary_pipeline.store.snapshots import restore, state
from summary_pipeline.store.tables import merge, merge_sql, table_exists

DROP = "x; DROP TABLE victim.summary"


# ----- pure: the text checks and the quoting (no Spark) ---------------------------------------------------------


def test_a_string_literal_ends_where_it_should_whatever_it_holds() -> None:
    assert sql_string("x' OR '1'='1") == r"'x\' OR \'1\'=\'1'"
    assert sql_string("a\\") == r"'a\\'"  # a trailing backslash cannot escape the closing quote
    assert sql_string("\\'; DROP TABLE t; --") == r"'\\\'; DROP TABLE t; --'"
    assert sql_name("we`ird") == "`we``ird`"
    assert sql_in("m", ["2026-01", "x') OR ('1'='1"]) == r"`m` IN ('2026-01', 'x\') OR (\'1\'=\'1')"


@pytest.mark.parametrize("name", [DROP, "db.t -- x", "db.`t`", "db.t'", "a.b.c.d.e", "", "db..t"])
def test_a_table_name_that_is_not_one_never_reaches_a_statement(name: str) -> None:
    with pytest.raises(ConfigError, match="is not a table name"):
        sql_table(name)
    with pytest.raises(ConfigError, match="is not a table name"):
        merge_sql(name, "src", ["k"], ["k"])


def test_merge_text_quotes_names_and_escapes_months() -> None:
    text = merge_sql("db.t", "src", ["k", "m", "we`ird"], ["k"], months=("m", ["2026-01' OR '1'='1"]))
    assert "t.`we``ird` = s.`we``ird`" in text
    assert r"AND t.`m` IN ('2026-01\' OR \'1\'=\'1')" in text


@pytest.mark.parametrize(("text", "found"), [
    ("1=1; DROP TABLE t", "';' is not allowed"),
    ("a IN (SELECT 1)", "'SELECT' is not allowed"),
    ("a = 1 OR delete", "'delete' is not allowed"),
    ("a = 1 -- AND b = 2", "a comment ('--') is not allowed"),
    ("a = 1 /* x */", "a comment ('/*') is not allowed"),
    ("a = 'x", "a quote (') is not closed"),
    ("reflect('java.lang.System', 'exit', 0) IS NULL", "'reflect' calls Java methods"),
    ("`java_method`('java.lang.System', 'exit', 0)", "'java_method' calls Java methods"),
])
def test_the_text_check_refuses_more_than_one_expression(text: str, found: str) -> None:
    assert found in (expression_problem(text) or "")


@pytest.mark.parametrize("text", ["acct_type_dtl_cd = 'a;b'", "x = 'DROP TABLE t'", "`select` = 1",
                                  r"x = 'it\'s; fine'", "x = r'\' OR y = ';'", "exists(a, v -> v > 1)"])
def test_quoted_words_and_semicolons_are_values_not_statements(text: str) -> None:
    assert expression_problem(text) is None


def _problems(**changes: Any) -> list[str]:
    raw = reference_raw()
    for key, value in changes.items():
        if callable(value):
            value(raw)
        else:
            raw[key] = value
    with pytest.raises(ConfigError) as err:
        parse_config(raw, "cfg.json")
    return err.value.problems


@pytest.mark.parametrize("key", ["source_table", "destination_table", "latest_history_table", "run_ledger_table",
                                 "quarantine_table", "deletes_table", "changes_table"])
def test_a_config_table_name_with_sql_in_it_is_refused(key: str) -> None:
    assert _problems(**{key: DROP}) == [
        f"{key}: {DROP!r} is not a table name; use [catalog.]namespace.table with letters, digits and underscores"]


@pytest.mark.parametrize(("change", "where"), [
    ({"primary_column": "cons_acct_key; DROP TABLE t"}, "primary_column: "),
    ({"catalog_name": "local; DROP"}, "catalog_name: "),
    ({"tie_breaker_columns": ["insert_ts` = 1 --"]}, "tie_breaker_columns[0]: "),
    ({"x": lambda raw: raw["grid_columns"][0].update(name="g` = 1 --")}, "grid_columns[0] (g` = 1 --).name: "),
    ({"x": lambda raw: raw["columns"].update(acct_bal_am="balance_am`; --")}, "columns.acct_bal_am: "),
])
def test_a_config_column_name_with_sql_in_it_is_refused(change: dict[str, Any], where: str) -> None:
    found = _problems(**change)
    assert any(p.startswith(where) and "is not a column identifier" in p for p in found), found


@pytest.mark.parametrize(("key", "text", "found"), [
    ("column_transformations", "1; DROP TABLE t", "';' is not allowed (no statements, ';' or subqueries)"),
    ("inferred_columns", "(SELECT max(balance_am) FROM other.t)", "'SELECT' is not allowed"),
    ("rolling_columns", "balance_am -- ; DROP TABLE t", "a comment ('--') is not allowed"),
    ("rolling_columns", "java_method('java.lang.System', 'exit', 0)", "'java_method' calls Java methods"),
    ("inferred_columns", "  ", "is empty"),
])
def test_a_config_expression_must_be_one_expression(key: str, text: str, found: str) -> None:
    def change(raw: dict[str, Any]) -> None:
        raw[key][0]["mapper_expr"] = text
    problems = _problems(x=change)
    name = reference_raw()[key][0]["name"]
    assert len(problems) == 1 and problems[0].startswith(f"{key}[0] ({name}).mapper_expr: "), problems
    assert found in problems[0]


def test_a_tag_template_with_a_quote_is_refused() -> None:
    assert _problems(tags={"name": "report-{month}'; DROP TABLE t; --"}) == [
        "tags.name: letters, digits, '_', '-' and '.' only"]


@pytest.mark.parametrize(("options", "found"), [
    (RunOptions(mode="backfill", backfill_filter="1=1; DROP TABLE t"), "';' is not allowed"),
    (RunOptions(mode="backfill", backfill_filter="cons_acct_key IN (SELECT 1)"), "'SELECT' is not allowed"),
    (RunOptions(mode="backfill", backfill_filter="cons_acct_key = 1 --"), "a comment ('--') is not allowed"),
    (RunOptions(mode="forward", start_month="2026-01' OR '1'='1"), "--start-month \"2026-01' OR '1'='1\" is not"),
    (RunOptions(mode="initial", end_month="2026-01; DROP"), "--end-month '2026-01; DROP' is not a month"),
])
def test_run_arguments_from_python_are_checked_like_the_command_line(options: RunOptions, found: str) -> None:
    assert found in (usage_problem(options) or "")


def test_a_ledger_that_names_a_table_badly_is_refused_before_any_undo() -> None:
    with pytest.raises(ConfigError, match="is not a table name"):
        restore(None, {"db.ok": 1, DROP: None}, ["run"])  # refused before Spark is asked anything


#: Command lines that try to inject, with the message each is refused with (exit 2, before Spark starts).
#: ``{summary}`` is the table the attempt would drop.
ATTEMPTS = [
    (["--mode", "backfill", "--backfill-filter", "1=1; DROP TABLE {summary}"], "';' is not allowed"),
    (["--mode", "backfill", "--backfill-filter", "cons_acct_key IN (SELECT cons_acct_key FROM {summary})"],
     "'SELECT' is not allowed"),
    (["--mode", "backfill", "--backfill-filter", "1=1 -- everything"], "a comment ('--') is not allowed"),
    (["--mode", "forward", "--start-month", "2026-01'; DROP TABLE {summary}; --"], "is not a month"),
    (["rollback", "--run-id", "x' OR '1'='1"], "is not a run id"),
    (["changes", "--run-id", "x' OR '1'='1"], "is not a run id"),
    (["inspect", "--account", "1", "--run-id", "x'; DROP TABLE {summary}; --"], "is not a run id"),
    (["inspect", "--account", "1", "--as-of", "x'; DROP TABLE {summary}; --"], "is not a run id, tag, branch"),
    (["inspect", "--account", "1", "--branch", "main' OR '1'='1"], "is not a run id, tag, branch"),
    (["validate", "--as-of", "2026-01-31'; DROP TABLE {summary}; --"], "is not a run id, tag, branch"),
]


def _command(args: list[str], config: str, summary: str) -> list[str]:
    command = [a.format(summary=summary) for a in args]
    at = 1 if command[0] in cli.SUBCOMMANDS else 0
    return [*command[:at], "--config", config, *command[at:]]


@pytest.mark.parametrize(("args", "message"), ATTEMPTS)
def test_the_command_line_refuses_injections_before_spark_starts(args: list[str], message: str, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    def no_spark(*_args: object, **_kw: object) -> None:
        raise AssertionError("Spark must not start")
    monkeypatch.setattr(cli, "_session", no_spark)
    path = tmp_path / "c.json"
    path.write_text(json.dumps(reference_raw()))
    with pytest.raises(SystemExit) as done:
        cli.main(_command(args, str(path), "default.summary"))
    assert done.value.code == 2
    assert message in capsys.readouterr().err


def test_a_config_file_with_sql_in_a_table_name_is_refused_before_spark_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "_session", lambda *_a, **_k: pytest.fail("Spark must not start"))
    raw = reference_raw()
    raw["destination_table"] = DROP
    path = tmp_path / "c.json"
    path.write_text(json.dumps(raw))
    assert cli.main(["--config", str(path), "--mode", "initial"]) == 1
    assert f"destination_table: {DROP!r} is not a table name" in capsys.readouterr().err


# ----- with Spark: the same attempts against real tables change nothing ------------------------------------------


@pytest.fixture(scope="module")
def built(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PipelineConfig, str]]:
    """Tables built by one initial run, and a config file naming them."""
    cfg = new_config()
    load_source(spark, cfg, [version(1, "2026-01"), version(2, "2026-01"), version(1, "2026-02")])
    run(spark, cfg, RunOptions(mode="initial"))
    path = tmp_path_factory.mktemp("injection") / "config.json"
    _write_config(path, cfg)
    yield cfg, str(path)


def _write_config(path: Path, cfg: PipelineConfig, **changes: Any) -> None:
    raw = reference_raw()
    raw.update(source_table=cfg.source_table, destination_table=cfg.destination_table,
               latest_history_table=cfg.latest_history_table, **changes)
    path.write_text(json.dumps(raw))


def _state_of(spark: SparkSession, cfg: PipelineConfig) -> dict[str, Any]:
    """Every table's snapshot and the ledger's rows: what an injection would change."""
    tables = (cfg.source_table, cfg.destination_table, cfg.latest_history_table, cfg.deletes_table,
              cfg.changes_table, cfg.ledger_table)
    found: dict[str, Any] = {t: state(spark, t) for t in tables}
    found["ledger rows"] = [(r["run_id"], r["status"]) for r in ledger_rows(spark, cfg.ledger_table)]
    return found


@pytest.mark.spark
def test_injections_from_the_command_line_change_nothing(spark: SparkSession, built: tuple[PipelineConfig, str],
                                                         cli_in_process: Callable[..., int]) -> None:
    cfg, config = built
    before = _state_of(spark, cfg)
    assert all(before[t] is not None for t in (cfg.destination_table, cfg.latest_history_table))
    for args, _ in ATTEMPTS:
        with pytest.raises(SystemExit) as done:
            cli_in_process(_command(args, config, cfg.destination_table))
        assert done.value.code == 2, args
    assert _state_of(spark, cfg) == before


@pytest.mark.spark
def test_an_account_is_a_value_never_sql(spark: SparkSession, built: tuple[PipelineConfig, str],
                                         cli_in_process: Callable[..., int],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    cfg, config = built
    before = _state_of(spark, cfg)
    for account in ("1 OR 1=1", "1' OR '1'='1", "1; DROP TABLE x"):
        assert cli_in_process(["inspect", "--config", config, "--account", account]) == 1
        assert f"{account!r} is not a value of cons_acct_key (bigint)" in capsys.readouterr().err
    assert _state_of(spark, cfg) == before


@pytest.mark.spark
def test_a_subquery_the_text_check_misses_is_found_by_sparks_parser(spark: SparkSession,
                                                                     built: tuple[PipelineConfig, str],
                                                                     cli_in_process: Callable[..., int],
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    cfg, config = built
    before = _state_of(spark, cfg)
    for predicate in (f"cons_acct_key IN (TABLE {cfg.source_table})", f"(TABLE {cfg.ledger_table}) IS NULL"):
        assert cli_in_process(["--config", config, "--mode", "backfill", "--backfill-filter", predicate]) == 1
        assert "a subquery is not allowed (no statements, ';' or subqueries)" in capsys.readouterr().err
        with pytest.raises(BadFilterError, match="a subquery is not allowed"):
            run(spark, cfg, RunOptions(mode="backfill", backfill_filter=predicate))
    assert _state_of(spark, cfg) == before


@pytest.mark.spark
def test_a_config_expression_with_a_subquery_or_a_statement_is_refused_before_any_table_is_made(
        spark: SparkSession, tmp_path: Path, cli_in_process: Callable[..., int],
        capsys: pytest.CaptureFixture[str]) -> None:
    cfg = new_config()
    load_source(spark, cfg, [version(1, "2026-01")])
    raw = reference_raw()
    raw["inferred_columns"][0]["mapper_expr"] = f"(TABLE {cfg.source_table})"  # no SELECT: passes the text
    _write_config(tmp_path / "c.json", cfg, inferred_columns=raw["inferred_columns"])
    assert cli_in_process(["--config", str(tmp_path / "c.json"), "--mode", "initial"]) == 1
    assert ("inferred_columns (orig_loan_am): must be one Spark SQL expression over the row's columns; a subquery "
            "is not allowed") in capsys.readouterr().err
    # A config built in Python skips the first check (model_copy validates nothing): Spark's check still holds.
    steps = list(cfg.rolling_columns)
    steps[0] = steps[0].model_copy(update={"mapper_expr": f"1; DROP TABLE {cfg.source_table}"})
    with pytest.raises(ConfigError, match="';' is not allowed"):
        run(spark, cfg.model_copy(update={"rolling_columns": tuple(steps)}), RunOptions(mode="initial"))
    assert table_exists(spark, cfg.source_table)
    assert not any(table_exists(spark, t) for t in (cfg.destination_table, cfg.ledger_table))


@pytest.mark.spark
def test_an_error_text_is_stored_as_written_and_marks_only_its_run(spark: SparkSession) -> None:
    cfg = new_config()
    ensure_ledger(spark, cfg.ledger_table)
    mine, other = new_result("initial", cfg, {}), new_result("initial", cfg, {})
    for result in (mine, other):
        result.status = "running"
        record(spark, cfg.ledger_table, result, new=True)
    evil = f"it's \\' done\\', status = 'succeeded' WHERE run_id = '{other.run_id}' --\\"
    mark(spark, cfg.ledger_table, [mine.run_id], "failed", evil, {cfg.destination_table: 7, "x'y": None})
    rows = {r["run_id"]: r for r in ledger_rows(spark, cfg.ledger_table)}
    assert (rows[mine.run_id]["status"], rows[mine.run_id]["error"]) == ("failed", evil)
    assert rows[mine.run_id]["snapshots_after"] == {cfg.destination_table: 7, "x'y": None}
    assert (rows[other.run_id]["status"], rows[other.run_id]["error"]) == ("running", None)


@pytest.mark.spark
def test_a_month_in_a_merge_stays_a_value(spark: SparkSession) -> None:
    table = f"{new_config().destination_table}_merge"
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {table.rsplit('.', 1)[0]}")
    spark.createDataFrame([(1, "2026-01", 1), (2, "2026-02", 2)], "k int, m string, v int").writeTo(table).using(
        "iceberg").create()
    rows = spark.createDataFrame([(1, "2026-01", 10), (2, "2026-02", 20)], "k int, m string, v int")
    # Injected, the second "month" would widen the ON clause to every row and update k=2 in place.
    merge(spark, rows, table, ["k"], months=["2026-01", "x') OR ('1'='1"], month_column="m")
    assert sorted(tuple(r) for r in spark.table(table).collect()) == [(1, "2026-01", 10), (2, "2026-02", 2),
                                                                    (2, "2026-02", 20)]


@pytest.mark.spark
def test_maintains_month_filter_is_a_literal_holding_one_in_list(spark: SparkSession) -> None:
    """``maintain`` passes Iceberg a ``where`` string that Iceberg parses again: two levels, both escaped."""
    months = ["2026-01", "x') OR ('1'='1", "a\\'); DROP TABLE t; --"]
    parser = spark._jsparkSession.sessionState().sqlParser()
    literal = parser.parseExpression(sql_string(sql_in("rpt_as_of_mo", months)))
    assert literal.getClass().getSimpleName() == "Literal"
    where = parser.parseExpression(str(literal.value()))
    assert where.getClass().getSimpleName() == "In" and where.list().size() == len(months)
    assert [str(where.list().apply(i).value()) for i in range(len(months))] == months


@pytest.mark.spark
def test_maintains_compaction_of_the_ledgers_months_compacts_only_those_months(spark: SparkSession) -> None:
    table = f"{new_config().destination_table}_compact"
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {table.rsplit('.', 1)[0]}")
    spark.sql(f"CREATE TABLE {table} (k int, m string) USING iceberg PARTITIONED BY (m)")
    for k in (1, 2):  # two files in each month
        spark.createDataFrame([(k, "2026-01"), (k, "2026-02")], "k int, m string").writeTo(table).append()
    where = sql_string(sql_in("m", ["2026-01", "x') OR ('1'='1"]))  # as maintain builds it from the ledger
    done = _call(spark, "rewrite_data_files", table, options="map('min-input-files', '2')", where=where)
    assert sum(int(r["rewritten_data_files_count"]) for r in done) == 2  # 2026-02's files were left alone
