"""The command line as a user runs it: real subprocesses, real exit codes, real output."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyspark
import pytest

from factories import REFERENCE_CONFIG, reference_raw
from summary_pipeline.cli import COMMANDS, command_parser

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "summary_pipeline", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def test_bad_config_fails_before_spark_starts(tmp_path: Path) -> None:
    raw = reference_raw()
    raw["histroy_length"] = 3
    raw["grid_columns"][0]["mapper_rolling_column"] = "nope"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(raw))
    done = cli("--config", str(path), "--mode", "initial")
    assert done.returncode == 1
    assert done.stderr.splitlines()[0] == f"error: {path}: 2 problems:"
    assert "histroy_length: unknown key; did you mean 'history_length'?" in done.stderr
    assert "Traceback" not in done.stderr and "log level" not in done.stderr  # Spark never started


def test_bad_arguments_are_usage_errors() -> None:
    done = cli("--config", str(REFERENCE_CONFIG), "--mode", "initial", "--start-month", "2026-13")
    assert done.returncode == 2
    assert "'2026-13' is not a month; write YYYY-MM" in done.stderr
    assert cli("--config", str(REFERENCE_CONFIG), "--mode", "sideways").returncode == 2


@pytest.mark.parametrize(("flags", "message"), [
    (["--mode", "forward"], "forward needs --start-month YYYY-MM"),
    (["--mode", "backfill"], "backfill needs --backfill-filter"),
    (["--mode", "backfill", "--backfill-filter", "cons_acct_key = 1; DROP TABLE x"], "';' is not allowed"),
    (["--mode", "backfill", "--backfill-filter", "cons_acct_key IN (SELECT 1)"], "'SELECT' is not allowed"),
    (["--mode", "incremental", "--start-month", "2026-01"], "are for --mode initial or forward, not incremental"),
    (["--mode", "forward", "--start-month", "2026-03", "--end-month", "2026-01"], "2026-03 is after --end-month"),
    (["--mode", "initial", "--backfill-filter", "cons_acct_key = 1"], "--backfill-filter is for --mode backfill"),
    (["--replace"], "--replace is for --mode initial, not incremental"),
])
def test_usage_errors_are_refused_before_spark_starts(flags: list[str], message: str) -> None:
    done = cli("--config", str(REFERENCE_CONFIG), *flags)
    assert done.returncode == 2
    assert message in done.stderr and "usage: summary-pipeline" in done.stderr
    assert "SUMMARY PIPELINE" not in done.stdout  # refused before the banner, so before any JVM


def test_help_lists_every_command_and_an_unknown_one_gets_a_suggestion() -> None:
    done = cli("--help")
    assert done.returncode == 0
    listed = done.stdout[done.stdout.index("commands (summary-pipeline COMMAND --help"):].splitlines()[1:]
    assert [line.split()[0] for line in listed] == list(COMMANDS)
    typo = cli("valdate", "--config", str(REFERENCE_CONFIG))
    assert typo.returncode == 2
    assert "unknown command 'valdate'; did you mean 'validate'?" in typo.stderr


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_option_says_its_default(command: str) -> None:
    parser = command_parser(command)
    for action in parser._actions:
        if action.dest in ("help", "version"):
            continue
        assert action.help and ("default" in action.help or "required" in action.help), (command, action.dest)


def test_source_ddl_prints_the_reference_table_under_the_configs_name(tmp_path: Path) -> None:
    raw = reference_raw()
    raw["source_table"] = "raw.accounts"
    config = tmp_path / "config.json"
    config.write_text(json.dumps(raw))
    done = cli("source-ddl", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert "CREATE TABLE IF NOT EXISTS raw.accounts (" in done.stdout
    assert "PARTITIONED BY (rpt_as_of_mo);" in done.stdout


def test_spark_submit_entry_file_is_the_same_cli(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "jobs" / "summary_pipeline.py"), "--config",
                           str(tmp_path / "none.json")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "cannot read the config file" in done.stderr


def _steady(out: str) -> list[str]:
    """The demo's output without its first line (what it did to the warehouse), times and run ids."""
    lines = out.splitlines()[1:]
    return [re.sub(r"\b[0-9a-f]{16}\b|completed in [0-9.]+ minutes|[0-9.]+ s\b", "#", line) for line in lines]


@pytest.mark.spark
@pytest.mark.slow
def test_demo_then_initial_refusal_end_to_end(tmp_path: Path) -> None:
    warehouse = tmp_path / "wh"
    demo = cli("demo", "--config", str(REFERENCE_CONFIG), "--warehouse", str(warehouse), "--accounts", "20",
               "--start-month", "2025-01", "--end-month", "2025-12", cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr
    # Spark logs (and survives) code it failed to compile, e.g. a method over Java's 64 KB limit: the run then
    # falls back to slow interpreted code. The demo runs the product's own settings, whole-stage codegen on.
    spark_errors = [line for line in demo.stderr.splitlines() if re.match(r"\d\d:\d\d:\d\d ERROR ", line)]
    assert not spark_errors, "\n".join(spark_errors)
    assert "SUMMARY PIPELINE - INITIAL MODE (FULL REBUILD)" in demo.stdout
    assert "Case I (New accounts): 20" in demo.stdout
    assert "SUMMARY PIPELINE - INCREMENTAL MODE (PRODUCTION)" in demo.stdout
    assert "Processing new data since:" in demo.stdout
    assert "Case I (New accounts): 2" in demo.stdout  # 9999 and 9998
    assert "Case III (Backfill): 2" in demo.stdout  # accounts 1 and 2
    assert "Production checklist:" in demo.stdout
    # The same command again starts from an empty warehouse and prints the same (but for times and run ids).
    twice = cli("demo", "--config", str(REFERENCE_CONFIG), "--warehouse", str(warehouse), "--accounts", "20",
                "--start-month", "2025-01", "--end-month", "2025-12", cwd=tmp_path)
    assert twice.returncode == 0, twice.stderr
    assert demo.stdout.splitlines()[0] == f"Demo warehouse: {warehouse}"
    assert twice.stdout.splitlines()[0] == ("Starting from an empty demo warehouse: removed the previous demo's "
                                            f"tables in {warehouse}")
    assert _steady(twice.stdout) == _steady(demo.stdout)
    assert not (tmp_path / "spark-warehouse").exists()  # nothing stray in the user's working directory
    again = cli("--config", str(REFERENCE_CONFIG), "--warehouse", str(warehouse), "--mode", "initial",
                "--output", "json", "--log-format", "json", cwd=tmp_path)
    assert again.returncode == 2
    assert "--replace" in again.stderr and "Traceback" not in again.stderr
    assert json.loads(again.stdout.splitlines()[-1])["status"] == "failed"
    logged = [json.loads(line) for line in again.stderr.splitlines() if line.startswith("{")]
    assert any(r["level"] == "ERROR" and "--replace" in r["message"] for r in logged)


def _submit(tmp_path: Path, submit: list[str], *args: str, command: tuple[str, ...] = ()
            ) -> subprocess.CompletedProcess[str]:
    """spark-submit of the job file with pip's pyspark (``JAR``: the Iceberg runtime jar, ``LOG4J_JSON``: the
    job's JSON log4j config): ``command``, the config, the warehouse, then ``args``."""
    from summary_pipeline.spark import iceberg_jar, log4j_config

    spark_home = Path(pyspark.__file__).parent
    env = {**os.environ, "SPARK_HOME": str(spark_home), "PYSPARK_PYTHON": sys.executable,
           "PYSPARK_DRIVER_PYTHON": sys.executable}
    named = {"JAR": str(iceberg_jar()), "LOG4J_JSON": f"-Dlog4j2.configurationFile={log4j_config(json_lines=True)}"}
    return subprocess.run([str(spark_home / "bin" / "spark-submit"), "--master", "local[1]",
                           *(named.get(part, part) for part in submit), str(ROOT / "jobs" / "summary_pipeline.py"),
                           *command, "--config", str(REFERENCE_CONFIG), "--warehouse", str(tmp_path / "wh"), *args],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.parametrize(("submit", "message"), [
    ([], "this Spark has no Iceberg runtime on its classpath. Add to spark-submit: --jars"),
    (["--jars", "JAR"], "Iceberg's SQL extensions are not enabled"),
])
def test_a_submit_without_iceberg_says_which_options_to_add(tmp_path: Path, submit: list[str], message: str
                                                            ) -> None:
    done = _submit(tmp_path, submit)
    said = done.stdout + done.stderr  # spark-submit merges the Python process's stderr into its stdout
    assert done.returncode == 1
    assert message in said and "spark.sql.extensions=org.apache.iceberg" in said
    assert "Traceback" not in said


_WITH_ICEBERG = ["--jars", "JAR", "--conf", "spark.sql.extensions=org.apache.iceberg.spark.extensions."
                 "IcebergSparkSessionExtensions"]


@pytest.mark.spark
@pytest.mark.slow
def test_a_submit_is_quiet_by_default_verbose_on_asking_and_all_json_with_the_json_log4j(tmp_path: Path) -> None:
    quiet = _submit(tmp_path, _WITH_ICEBERG, command=("runs",))
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    assert " INFO " not in quiet.stdout + quiet.stderr  # the cluster's log4j logs INFO: the job's replaced it
    assert "Next incremental run reads versions after: (none: run initial)" in quiet.stdout
    assert not (tmp_path / "spark-warehouse").exists()  # nothing stray in the working directory
    verbose = _submit(tmp_path, _WITH_ICEBERG, "--verbose", command=("runs",))
    assert " INFO SparkContext: Running Spark version" in verbose.stderr
    # The job's JSON log4j config at submit: every line, the ones Spark logs before Python starts included.
    logged = _submit(tmp_path, [*_WITH_ICEBERG, "--driver-java-options", "LOG4J_JSON"], "--log-format", "json",
                     "--output", "json", "--verbose", command=("runs",))
    records = [json.loads(line) for line in (logged.stdout + logged.stderr).splitlines()]
    assert logged.returncode == 0 and [r["watermark"] for r in records if "watermark" in r] == [None]
    assert any(r.get("logger") == "org.apache.spark.SparkContext" for r in records)
