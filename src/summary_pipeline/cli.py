"""The command line: a thin shell over :func:`summary_pipeline.runner.run` and a few tools.

Two forms, as the seed shows::

    summary-pipeline --config summary_config.json [--mode incremental] ...     # run the pipeline
    summary-pipeline generate|demo --config summary_config.json ...            # synthetic data, the demo
    summary-pipeline evolve --config new_config.json [--dry-run]              # apply a config change
    summary-pipeline runs|rollback|unlock|maintain --config summary_config.json  # ledger, lock, upkeep
    summary-pipeline validate --config summary_config.json [--sample 0.01]      # check the tables
    summary-pipeline inspect --config summary_config.json --account 42          # one account, month by month
    summary-pipeline changes --config summary_config.json --run-id ID          # the keys a run changed
    summary-pipeline source-ddl --config summary_config.json                   # the source's CREATE TABLE
    summary-pipeline benchmark --config summary_config.json --profile small    # measured cost and ratios

``spark-submit jobs/summary_pipeline.py --config ...`` is the same flat form; ``summary-pipeline --help`` lists
the commands (:data:`COMMANDS`). One handler turns every error into a short message and an exit code: 0
success, 1 failure (for validate: a check failed), 2 refusal or bad usage (usage errors before Spark starts),
130 / 143 stopped by Ctrl-C / SIGTERM (a run's writes undone: :mod:`summary_pipeline.interrupts`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import difflib
import json
import logging
import re
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from summary_pipeline import __version__, interrupts
from summary_pipeline.config import PipelineConfig, load_config
from summary_pipeline.console import Console
from summary_pipeline.errors import SummaryPipelineError, spark_error_message
from summary_pipeline.result import MODES, MONTH, RunOptions

__all__ = ["COMMANDS", "command_parser", "main"]

log = logging.getLogger("summary_pipeline")

#: A run id (``summary-pipeline runs`` lists them), and a reference of ``--as-of``/``--branch``: a run id, a tag
#: or branch name, or a timestamp. Neither is ever written into SQL (they are looked up, and read through Iceberg's
#: read options); quotes, ``;`` and the like are refused all the same, before Spark starts.
_RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_REFERENCE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:/ -]{0,127}$")
#: Every command, with the one line ``summary-pipeline --help`` and its own ``--help`` show for it.
COMMANDS = {
    "run": "build or update summary and latest_summary (the default: --config ... --mode ...)",
    "evolve": "apply a changed config to built tables as one run: the changed columns, or a full rebuild",
    "runs": "list the runs in the ledger, newest first",
    "rollback": "put summary, latest_summary and the watermark back to before a run",
    "unlock": "clear the run lock by hand (the next run undoes what the holder left half-done)",
    "maintain": "compact what runs wrote and expire snapshots no kept run's rollback needs",
    "validate": "check the tables against the production checklist and the invariant (exit 1 on a violation)",
    "inspect": "show one account month by month: values, flags, base_ts, grids, history",
    "changes": "list the keys a run changed (inserted, updated, tombstoned, latest moved), for downstream",
    "source-ddl": "print the source table's reference CREATE TABLE, named as the config names it",
    "generate": "append reproducible synthetic versions to the source table",
    "demo": "generate synthetic data, build the tables and show them",
    "benchmark": "measure initial, incremental, full rebuild and I/O floors on generated data (docs/PERFORMANCE.md)",
}
SUBCOMMANDS = tuple(COMMANDS)


def _month(text: str) -> str:
    if not MONTH.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a month; write YYYY-MM, e.g. 2026-01")
    return text


def _run_id(text: str) -> str:
    if not _RUN_ID.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a run id: letters, digits, '_' and '-' "
                                         "(`summary-pipeline runs` lists them)")
    return text


def _reference(text: str) -> str:
    if not _REFERENCE.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a run id, tag, branch or timestamp: letters, digits, "
                                         "spaces and '_' '.' ':' '/' '-' only")
    return text


def _parser(command: str) -> argparse.ArgumentParser:
    """A command's parser: its one line from :data:`COMMANDS` as description, and the options every command
    takes. Every option's help says its default (or that it is required)."""
    prog = "summary-pipeline" if command == "run" else f"summary-pipeline {command}"
    parser = argparse.ArgumentParser(prog=prog, description=COMMANDS[command])
    parser.add_argument("--config", required=True, help="path to the config JSON (the seed's format; required)")
    parser.add_argument("--warehouse", help="warehouse directory of the embedded catalog (default: the config's "
                        "warehouse key, else ./warehouse)")
    parser.add_argument("--output", choices=("text", "json"), default="text",
                        help="the final report on stdout: human text or one JSON object (default: text)")
    parser.add_argument("--log-format", choices=("text", "json"), default="text",
                        help="progress and log lines on stderr as JSON objects, one per line (default: text)")
    parser.add_argument("--verbose", action="store_true", help="debug logs and full tracebacks (default: off)")
    return parser


def _run_parser() -> argparse.ArgumentParser:
    parser = _parser("run")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    width = max(len(name) for name in COMMANDS)
    parser.epilog = "commands (summary-pipeline COMMAND --help for each one's options):\n" + "\n".join(
        f"  {name:<{width}}  {line}" for name, line in COMMANDS.items())
    parser.add_argument("--mode", choices=MODES, default="incremental",
                        help="processing mode (default: incremental)")
    parser.add_argument("--start-month", type=_month,
                        help="first month (YYYY-MM) for initial and forward (default: initial reads every month; "
                        "forward requires it)")
    parser.add_argument("--end-month", type=_month,
                        help="last month (YYYY-MM) for initial and forward (default: initial reads every month; "
                        "forward stops at --start-month)")
    parser.add_argument("--backfill-filter",
                        help="SQL predicate over source columns (required for --mode backfill, refused otherwise)")
    parser.add_argument("--dry-run", action="store_true",
                        help="read, classify and print the plan; write nothing (default: off)")
    parser.add_argument("--replace", action="store_true",
                        help="let initial replace summary tables that already hold data (default: off)")
    parser.add_argument("--no-audit", action="store_true",
                        help="publish the run's writes without auditing them first (default: audit, unless the "
                        "config's audit is false)")
    parser.add_argument("--metrics-file",
                        help="also write the run's figures (the ledger row's) to this JSON file (default: none)")
    parser.add_argument("--version", action="version", version=f"summary-pipeline {__version__}")
    return parser


def _generate_parser(command: str) -> argparse.ArgumentParser:
    parser = _parser(command)
    parser.add_argument("--accounts", type=int, default=200, help="number of accounts (default 200)")
    parser.add_argument("--start-month", type=_month, default="2023-01", help="first month (default 2023-01)")
    parser.add_argument("--end-month", type=_month, default="2025-12", help="last month (default 2025-12)")
    parser.add_argument("--seed", type=int, default=42, help="random seed: same seed, same data (default 42)")
    return parser


def _ledger_parser(command: str) -> argparse.ArgumentParser:
    parser = _parser(command)
    if command == "runs":
        parser.add_argument("--limit", type=int, default=20, help="how many runs to show (default 20)")
    if command == "rollback":
        parser.add_argument("--run-id", required=True, type=_run_id,
                            help="the run to undo (see `summary-pipeline runs`; required)")
    if command == "maintain":
        parser.add_argument("--keep-runs", type=int, default=7,
                            help="the last N runs stay undoable with rollback (default 7)")
    if command in ("rollback", "unlock"):
        parser.add_argument("--force", action="store_true",
                            help="rollback: undo later runs too; unlock: even if the holder may be alive "
                            "(default: off)")
    return parser


def _benchmark_parser() -> argparse.ArgumentParser:
    from summary_pipeline.tools.benchmark import PHASES, PROFILES

    def phases(text: str) -> tuple[str, ...]:
        names = tuple(name.strip() for name in text.split(",") if name.strip())
        if not names or any(name not in PHASES for name in names):
            raise argparse.ArgumentTypeError(f"{text!r}: give phases separated by commas, from {', '.join(PHASES)}")
        return names

    parser = _parser("benchmark")
    parser.add_argument("--profile", choices=list(PROFILES), default="small",
                        help="small (minutes), medium (50,000 accounts x 120 months), large (by hand), seed "
                        "(20,000 accounts x 48 months, the seed's own test batch); default small")
    parser.add_argument("--reuse", action="store_true",
                        help="measure again on the tables an earlier call of the profile kept: roll its incremental "
                        "runs back and rerun them, generating and building nothing (default: off)")
    parser.add_argument("--phases", type=phases,
                        help=f"measure only these, comma-separated: {', '.join(PHASES)} (default: all; from "
                        "scratch, initial and incremental always run)")
    parser.add_argument("--json", help="where to write the figures (default benchmark-<profile>.json, or "
                        "benchmark-<profile>-reuse.json when the call reused kept tables)")
    return parser


def _evolve_parser() -> argparse.ArgumentParser:
    parser = _parser("evolve")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan (the changes, the path, what it reads and writes); write nothing "
                        "(default: off)")
    parser.add_argument("--no-audit", action="store_true",
                        help="publish without auditing the evolved tables first (default: audit, unless the "
                        "config's audit is false)")
    return parser


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a fraction in (0, 1], e.g. 0.01 for 1% of accounts")
    return value


def _validate_parser() -> argparse.ArgumentParser:
    parser = _parser("validate")
    parser.add_argument("--sample", type=_fraction,
                        help="check this fraction of accounts (whole accounts, by key hash), e.g. 0.01 (default: every "
                        "account)")
    parser.add_argument("--examples", type=int, default=5, help="offending keys shown per check (default 5)")
    _as_of_option(parser)
    return parser


def _as_of_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--as-of", metavar="REF", type=_reference,
                        help="read the tables as they were: a run id (what it published, or its staged writes if "
                        "it never published), a tag (report-2026-01), a branch, or a timestamp (2026-01-31 "
                        "18:00:00) (default: as they are now)")


def _inspect_parser() -> argparse.ArgumentParser:
    parser = _parser("inspect")
    parser.add_argument("--account", required=True, help="the account key (required)")
    _as_of_option(parser)
    parser.add_argument("--run-id", type=_run_id, help="read the tables as this run left them; for a run that did "
                        "not publish (a failed audit), its staged writes (the same as --as-of RUN_ID; default: as "
                        "they are now)")
    parser.add_argument("--branch", type=_reference,
                        help="read this branch of the tables (the same as --as-of BRANCH; default: main)")
    return parser


def _changes_parser() -> argparse.ArgumentParser:
    parser = _parser("changes")
    parser.add_argument("--run-id", required=True, type=_run_id, help="the run whose changes to show (required)")
    parser.add_argument("--limit", type=int, default=20,
                        help="text output: rows shown after the counts (default 20); --output json prints every "
                        "row, one JSON object per line")
    return parser


class JsonLogFormatter(logging.Formatter):
    """One JSON object per log record: time (UTC, ISO 8601), level, logger, message."""

    def format(self, record: logging.LogRecord) -> str:
        when = dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds")
        when = when.removesuffix("+00:00") + "Z"  # as Spark's JSON lines (log4j2-json.properties) write UTC
        data = {"time": when, "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            data["traceback"] = self.formatException(record.exc_info)
        return json.dumps(data)


def _setup_logging(verbose: bool, json_logs: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter() if json_logs else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    for noisy in ("py4j", "py4j.clientserver", "py4j.java_gateway"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not verbose:
        log.setLevel(logging.WARNING)
    # The console's lines, as log records when --log-format json asks for them (see Console).
    logging.getLogger("summary_pipeline.progress").setLevel(logging.INFO)


def _handle(console: Console, verbose: bool, body: Callable[[], int]) -> int:
    """Run ``body`` and turn every exception into one message and an exit code."""
    try:
        return body()
    except SummaryPipelineError as err:
        if verbose:
            log.exception("failed")
        console.error(err)
        return err.exit_code
    except KeyboardInterrupt as err:  # before a session is watched (or by a command that writes nothing)
        signum = err.signum if isinstance(err, interrupts.Interrupted) else int(signal.SIGINT)
        console.error(interrupts.Interrupted(signum))
        return 128 + signum
    except Exception as err:
        message = spark_error_message(err)
        if message is None:
            raise
        if verbose:
            log.exception("failed")
        console.error(Exception(message), hint="Rerun with --verbose for the full traceback.")
        return 1


@contextmanager
def _session(console: Console, cfg: PipelineConfig, warehouse: str | None,
             extra: dict[str, str] | None = None) -> Iterator[Any]:
    """The command's Spark session, watched for Ctrl-C and SIGTERM, stopped at the end (the first command on
    a machine then saves the JVM's class archive: :mod:`summary_pipeline.jvm_cache`)."""
    from summary_pipeline.progress import Ticker
    from summary_pipeline.spark import build_session, stop

    spark = build_session(cfg, warehouse=warehouse, extra=extra, class_archive=True,
                          verbose=log.isEnabledFor(logging.DEBUG), json_logs=console.json_logs)  # --verbose
    ticker = Ticker(spark, sys.stderr, terminal=sys.stderr.isatty() and not console.json_logs, emit=console.tick)
    signum: int | None = None
    try:
        with interrupts.watching(spark), ticker as console.ticker:
            try:
                yield spark
            finally:
                signum = interrupts.received()  # while watching: the watch forgets it when it ends
    finally:
        console.ticker = None
        stop(spark, console.note, keep_archive=signum is None)  # a command stopped by a signal does not wait


def _run_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> RunOptions:
    """The run's options. A flag missing for the mode, one the mode does not take, or a predicate that is not
    one expression is a usage error: exit 2 here, before any JVM starts."""
    from summary_pipeline.modes import usage_problem

    options = RunOptions(mode=args.mode, start_month=args.start_month, end_month=args.end_month,
                         backfill_filter=args.backfill_filter, dry_run=args.dry_run, replace=args.replace,
                         audit=False if args.no_audit else None)
    problem = usage_problem(options)
    if problem:
        parser.error(problem)
    return options


def _cmd_run(args: argparse.Namespace, options: RunOptions, console: Console) -> int:
    from summary_pipeline.runner import run

    cfg = load_config(args.config)
    console.banner(options.mode, options.dry_run)
    console.ignored_keys(cfg.ignored_keys())
    with _session(console, cfg, args.warehouse) as spark:
        result = run(spark, cfg, options, progress=console.progress, config_name=args.config)
    console.finished(result)
    if args.metrics_file:
        path = Path(args.metrics_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result.as_dict(), default=str, sort_keys=True, indent=2))
    return 0


def _cmd_evolve(args: argparse.Namespace, console: Console) -> int:
    from summary_pipeline.runner import evolve

    cfg = load_config(args.config)
    console.banner("evolve", args.dry_run)
    console.ignored_keys(cfg.ignored_keys())
    options = RunOptions(mode="evolve", dry_run=args.dry_run, audit=False if args.no_audit else None)
    with _session(console, cfg, args.warehouse) as spark:
        result = evolve(spark, cfg, options, progress=console.progress, config_name=args.config)
    console.finished(result)
    return 0


def _cmd_generate(args: argparse.Namespace, console: Console, demo: bool) -> int:
    from summary_pipeline.spark import under_spark_submit, warehouse_dir
    from summary_pipeline.tools import demo as demo_module

    cfg = load_config(args.config)
    where = warehouse_dir(cfg, args.warehouse)
    if demo and "://" not in where and not under_spark_submit():  # the embedded catalog's own directory
        console.progress(demo_module.demo_warehouse(Path(where)))
    with _session(console, cfg, args.warehouse) as spark:
        if demo:
            demo_module.run_demo(spark, cfg, console, accounts=args.accounts, start_month=args.start_month,
                                 end_month=args.end_month, seed=args.seed, config_name=args.config)
        else:
            n = demo_module.generate_source(spark, cfg, accounts=args.accounts, start_month=args.start_month,
                                            end_month=args.end_month, seed=args.seed)
            console.progress(f"Appended {n:,} versions to {cfg.source_table}")
    return 0


def _cmd_ledger(args: argparse.Namespace, console: Console, command: str) -> int:
    from summary_pipeline.runner import new_result
    from summary_pipeline.store.ledger import committed_watermark, ledger_rows
    from summary_pipeline.store.lock import clear_lock
    from summary_pipeline.store.protocol import rollback
    from summary_pipeline.store.tables import table_exists

    cfg = load_config(args.config)
    with _session(console, cfg, args.warehouse) as spark:
        if command == "runs":
            rows = ledger_rows(spark, cfg.ledger_table)
            console.runs(cfg.ledger_table, rows[::-1][: args.limit], committed_watermark(rows))
        elif command == "maintain":
            from summary_pipeline.ops.maintain import maintain

            console.banner("maintain")
            maintain(spark, cfg, new_result("maintain", cfg, {"keep_runs": args.keep_runs}), args.keep_runs,
                     console.progress)
        elif command == "unlock":
            holder = clear_lock(spark, cfg.ledger_table, cfg.lock_timeout, force=args.force) \
                if table_exists(spark, cfg.ledger_table) else None
            console.progress(f"Cleared the lock held by {holder.describe()}" if holder else "The lock was not held")
        else:
            console.banner("rollback")
            result = new_result("rollback", cfg, {"run_id": args.run_id, "force": args.force})
            rollback(spark, cfg, result, args.run_id, args.force, console.progress)
            console.progress(f"Rolled back run {args.run_id}; the watermark is {result.watermark_committed}")
    return 0


def _cmd_benchmark(args: argparse.Namespace, console: Console) -> int:
    from summary_pipeline.tools.benchmark import PROFILES, run_benchmark, write_json

    cfg = load_config(args.config)
    profile = PROFILES[args.profile]
    with _session(console, cfg, args.warehouse, {"spark.driver.memory": profile.driver_memory}) as spark:
        report = run_benchmark(spark, cfg, profile, console.progress, reuse=args.reuse, phases=args.phases)
    path = Path(args.json or f"benchmark-{profile.name}{'-reuse' if report.reused else ''}.json")
    write_json(report, path)
    console.benchmark(report, str(path))
    return 0


def _cmd_validate(args: argparse.Namespace, console: Console) -> int:
    from summary_pipeline.ops.validate import validate

    cfg = load_config(args.config)
    console.banner("validate")
    with _session(console, cfg, args.warehouse) as spark:
        as_of = _resolve(spark, cfg, args.as_of)
        report = validate(spark, cfg, args.sample, args.examples, console.progress, config_name=args.config,
                          as_of=as_of)
    console.validation(report)
    return 0 if report.ok else 1


def _cmd_source_ddl(args: argparse.Namespace) -> int:
    from summary_pipeline.tools.generate import source_ddl

    print(source_ddl(load_config(args.config).source_table), end="")
    return 0


def _cmd_inspect(args: argparse.Namespace, console: Console) -> int:
    from summary_pipeline.ops.inspect_account import inspect_account

    cfg = load_config(args.config)
    given = [r for r in (args.as_of, args.run_id, args.branch) if r]
    if len(given) > 1:
        command_parser("inspect").error("give one of --as-of, --run-id and --branch")
    with _session(console, cfg, args.warehouse) as spark:
        view = inspect_account(spark, cfg, args.account, config_name=args.config,
                               as_of=_resolve(spark, cfg, given[0] if given else None))
    console.account(view)
    return 0


def _resolve(spark: Any, cfg: PipelineConfig, reference: str | None) -> Any:
    from summary_pipeline.store.as_of import NOW, resolve

    return resolve(spark, cfg, reference) if reference else NOW


def _cmd_changes(args: argparse.Namespace, console: Console) -> int:
    from summary_pipeline.ops.changes import read_changes

    cfg = load_config(args.config)
    with _session(console, cfg, args.warehouse) as spark:
        record = read_changes(spark, cfg, args.run_id, None if console.json_output else args.limit)
    console.changes(record)
    return 0


def command_parser(command: str) -> argparse.ArgumentParser:
    """The parser of one command (``run`` is the seed's flat form)."""
    if command == "run":
        return _run_parser()
    if command == "benchmark":
        return _benchmark_parser()
    if command == "validate":
        return _validate_parser()
    if command == "inspect":
        return _inspect_parser()
    if command == "changes":
        return _changes_parser()
    if command == "evolve":
        return _evolve_parser()
    if command in ("generate", "demo"):
        return _generate_parser(command)
    if command == "source-ddl":
        return _parser(command)
    return _ledger_parser(command)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``summary-pipeline``, ``python -m summary_pipeline`` and the spark-submit job file."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    command = args_list[0] if args_list and args_list[0] in SUBCOMMANDS else "run"
    if args_list and args_list[0] in SUBCOMMANDS:
        args_list = args_list[1:]
    elif args_list and not args_list[0].startswith("-"):
        guess = difflib.get_close_matches(args_list[0], SUBCOMMANDS, n=1)
        hint = f"; did you mean {guess[0]!r}?" if guess else ""
        _run_parser().error(f"unknown command {args_list[0]!r}{hint} (summary-pipeline --help lists them)")
    parser = command_parser(command)
    args = parser.parse_args(args_list)
    _setup_logging(args.verbose, json_logs=args.log_format == "json")
    interrupts.raise_on_sigterm()
    console = Console(json_output=args.output == "json", json_logs=args.log_format == "json")
    if command == "run":
        options = _run_options(parser, args)
        return _handle(console, args.verbose, lambda: _cmd_run(args, options, console))
    if command in ("generate", "demo"):
        return _handle(console, args.verbose, lambda: _cmd_generate(args, console, demo=command == "demo"))
    if command == "benchmark":
        return _handle(console, args.verbose, lambda: _cmd_benchmark(args, console))
    if command == "validate":
        return _handle(console, args.verbose, lambda: _cmd_validate(args, console))
    if command == "inspect":
        return _handle(console, args.verbose, lambda: _cmd_inspect(args, console))
    if command == "changes":
        return _handle(console, args.verbose, lambda: _cmd_changes(args, console))
    if command == "evolve":
        return _handle(console, args.verbose, lambda: _cmd_evolve(args, console))
    if command == "source-ddl":
        return _handle(console, args.verbose, lambda: _cmd_source_ddl(args))
    return _handle(console, args.verbose, lambda: _cmd_ledger(args, console, command))


if __name__ == "__main__":
    sys.exit(main())
