"""Which source versions each mode reads (SPEC 6). Modes only choose input; the engine is the same."""

from __future__ import annotations

import datetime as dt
import re

from pyspark.errors import AnalysisException, ParseException
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from summary_pipeline.config import PipelineConfig
from summary_pipeline.errors import BadFilterError, ConfigError, SummaryPipelineError
from summary_pipeline.result import RunOptions

__all__ = ["check_arguments", "check_backfill_filter", "select_batch"]

_FORBIDDEN = re.compile(r";|\b(select|insert|update|delete|drop|create|alter|merge|truncate|exists)\b",
                        re.IGNORECASE)


def check_backfill_filter(source: DataFrame, predicate: str) -> None:
    """Refuse anything but one boolean expression over source columns (no statements, ``;`` or subqueries).

    Raises:
        BadFilterError: naming what is wrong with the predicate.
    """
    text = predicate.strip()
    if not text:
        raise BadFilterError("--backfill-filter is empty; give one boolean expression, e.g. \"cons_acct_key = 42\"")
    found = _FORBIDDEN.search(text)
    if found:
        raise BadFilterError(f"--backfill-filter must be one boolean expression over source columns; "
                             f"{found.group(0).strip()!r} is not allowed (no statements, ';' or subqueries)")
    try:
        kind = source.limit(0).select(F.expr(text).alias("p")).schema["p"].dataType.simpleString()
    except ParseException as err:
        raise BadFilterError(f"--backfill-filter does not parse: {str(err).strip().splitlines()[0]}") from None
    except AnalysisException as err:
        raise BadFilterError(f"--backfill-filter does not resolve against the source: "
                             f"{str(err).strip().splitlines()[0]}") from None
    if kind != "boolean":
        raise BadFilterError(f"--backfill-filter must be a boolean expression; {text!r} is {kind}")


def check_arguments(source: DataFrame, options: RunOptions) -> None:
    """Refuse a mode's missing or malformed arguments; runs no Spark job, so a run checks them before it locks."""
    if options.mode == "forward" and not options.start_month:
        raise ConfigError(["forward needs --start-month YYYY-MM (and optionally --end-month)"], "arguments")
    if options.mode == "backfill":
        if not options.backfill_filter:
            raise BadFilterError("backfill needs --backfill-filter \"<predicate over source columns>\"")
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
