"""Which source versions each mode reads (SPEC 6). Modes only choose input; the engine is the same."""

from __future__ import annotations

import datetime as dt

from pyspark.errors import AnalysisException, ParseException
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from summary_pipeline.config import PipelineConfig
from summary_pipeline.errors import BadFilterError, ConfigError, SummaryPipelineError
from summary_pipeline.result import MONTH, RunOptions
from summary_pipeline.sql_text import STATEMENT_WORDS, expression_problem, one_expression_problem

__all__ = ["check_arguments", "check_backfill_filter", "filter_text_problem", "select_batch", "usage_problem"]

#: Refused in a predicate besides the statement words (``EXISTS`` is only ever a subquery's start there).
_FILTER_WORDS = (*STATEMENT_WORDS, "exists")
_WHAT = "--backfill-filter must be one boolean expression over source columns"


def filter_text_problem(predicate: str) -> str | None:
    """What makes a backfill predicate unacceptable as text (empty, a statement, ``;``, a subquery, a comment,
    a call of Java methods; :func:`summary_pipeline.sql_text.expression_problem`), or None.

    >>> print(filter_text_problem("cons_acct_key IN (SELECT 1)"))  # doctest: +ELLIPSIS
    --backfill-filter must be one boolean expression over source columns; 'SELECT' is not allowed (no ...
    >>> filter_text_problem("cons_acct_key = 1") is None
    True
    """
    text = predicate.strip()
    if not text:
        return "--backfill-filter is empty; give one boolean expression, e.g. \"cons_acct_key = 42\""
    found = expression_problem(text, _FILTER_WORDS)
    return f"{_WHAT}; {found}" if found else None


def usage_problem(options: RunOptions) -> str | None:
    """What is wrong with a run's arguments on their own, or None: the CLI checks this before Spark starts
    (exit 2), and every run checks it again. Whether a predicate parses and resolves needs the source schema
    (:func:`check_backfill_filter`).

    >>> usage_problem(RunOptions(mode="incremental", start_month="2026-01"))
    '--start-month and --end-month are for --mode initial or forward, not incremental'
    >>> usage_problem(RunOptions(mode="forward", start_month="2026-03", end_month="2026-01"))
    '--start-month 2026-03 is after --end-month 2026-01'
    """
    flags = _flags_problem(options)
    if flags is None and options.backfill_filter is not None:
        return filter_text_problem(options.backfill_filter)
    return flags


def _flags_problem(options: RunOptions) -> str | None:
    """A flag the mode needs and lacks, or a flag the mode does not take."""
    mode = options.mode
    for flag, month in (("--start-month", options.start_month), ("--end-month", options.end_month)):
        if month is not None and not MONTH.match(month):
            return f"{flag} {month!r} is not a month; write YYYY-MM, e.g. 2026-01"
    if mode == "forward" and not options.start_month:
        return "forward needs --start-month YYYY-MM (and optionally --end-month)"
    if mode == "backfill" and not options.backfill_filter:
        return "backfill needs --backfill-filter \"<predicate over source columns>\""
    if (options.start_month or options.end_month) and mode not in ("initial", "forward"):
        return f"--start-month and --end-month are for --mode initial or forward, not {mode}"
    if options.start_month and options.end_month and options.start_month > options.end_month:
        return f"--start-month {options.start_month} is after --end-month {options.end_month}"
    if options.backfill_filter is not None and mode != "backfill":
        return f"--backfill-filter is for --mode backfill, not {mode}"
    if options.replace and mode != "initial":
        return f"--replace is for --mode initial, not {mode}"
    return None


def check_backfill_filter(source: DataFrame, predicate: str) -> None:
    """Refuse anything but one boolean expression over source columns (no statements, ``;`` or subqueries:
    the text, then Spark's parser, which finds a subquery however it is written).

    Raises:
        BadFilterError: naming what is wrong with the predicate.
    """
    problem = filter_text_problem(predicate)
    if problem:
        raise BadFilterError(problem)
    text = predicate.strip()
    try:
        problem = one_expression_problem(source.sparkSession, text, _FILTER_WORDS)
        if problem:
            raise BadFilterError(f"{_WHAT}; {problem}")
        kind = source.limit(0).select(F.expr(text).alias("p")).schema["p"].dataType.simpleString()
    except ParseException as err:
        raise BadFilterError(f"--backfill-filter does not parse: {str(err).strip().splitlines()[0]}") from None
    except AnalysisException as err:
        raise BadFilterError(f"--backfill-filter does not resolve against the source: "
                             f"{str(err).strip().splitlines()[0]}") from None
    if kind != "boolean":
        raise BadFilterError(f"--backfill-filter must be a boolean expression; {text!r} is {kind}")


def check_arguments(source: DataFrame, options: RunOptions) -> None:
    """Refuse a mode's missing, conflicting or malformed arguments; runs no Spark job, so a run checks them
    before it locks.

    Raises:
        ConfigError: a flag missing or not for this mode (exit 2).
        BadFilterError: the backfill predicate (see :func:`check_backfill_filter`).
    """
    flags = _flags_problem(options)
    if flags:
        raise ConfigError([flags], "arguments")
    if options.mode == "backfill" and options.backfill_filter:
        check_backfill_filter(source, options.backfill_filter)


def select_batch(source: DataFrame, cfg: PipelineConfig, options: RunOptions, watermark: dt.datetime | None
                 ) -> DataFrame:
    """The source versions this run adds to R (SPEC 6), lazily.

    * initial: every version (of months A..B);
    * incremental: ``base_ts`` after the watermark minus the look-back;
    * forward: every version of months A..B (B defaults to A);
    * backfill: every version of every key that has a version matching the predicate, so the newest version of
      a key always takes part and a restatement never resurrects an older one.
    """
    check_arguments(source, options)
    month = F.col(cfg.month)
    if options.mode == "initial":
        batch = source
        if options.start_month:
            batch = batch.where(month >= options.start_month)
        if options.end_month:
            batch = batch.where(month <= options.end_month)
        return batch
    if options.mode == "incremental":
        if watermark is None:
            return source
        since = watermark - dt.timedelta(seconds=cfg.watermark_lookback)
        return source.where(F.col(cfg.ts) > F.lit(since))
    if options.mode == "forward" and options.start_month:
        return source.where(month.between(options.start_month, options.end_month or options.start_month))
    if options.mode == "backfill" and options.backfill_filter:
        keys = (source.where(F.expr(options.backfill_filter)).select(cfg.key, cfg.month).distinct()
                .toDF("_sp_bk", "_sp_bm"))
        # NULL-safe, so rows with a NULL key or month that match still reach the quarantine.
        on = source[cfg.key].eqNullSafe(keys["_sp_bk"]) & source[cfg.month].eqNullSafe(keys["_sp_bm"])
        return source.join(keys, on, "left_semi")
    raise SummaryPipelineError(f"unknown mode {options.mode!r}")
