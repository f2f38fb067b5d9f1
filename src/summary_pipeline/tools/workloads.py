"""The benchmark's batches: generated, reproducible, in two shapes a profile chooses between.

``production`` (:func:`make_batch`): the next month for ~90% of accounts; ~5% new accounts, a fifth of them with
12 to 48 months of history; ~4% corrections of a month in the last 36 (a tenth of them older); ~1% extra versions
of batch keys; a few deletes of an account's latest month.

``seed`` (:func:`make_seed_batch`): the seed project's own test batch (issue 14, goal 5), whose corrections are
mostly whole grids re-sent. Both are generated from a fixed seed, so two calls of a profile measure the same data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import reduce
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from summary_pipeline.core.prepare import month_index
from summary_pipeline.tools.generate import generate_versions

__all__ = ["BATCHES", "END_MONTH", "NEXT_MONTH", "SEED", "make_batch", "make_seed_batch"]

END_MONTH = "2025-12"
NEXT_MONTH = "2026-01"
SEED = 7


def _pick(salt: str, share: float, key: str = "cons_acct_key") -> Any:
    """A reproducible share of accounts (or rows), chosen by hashing the key with a salt."""
    return F.pmod(F.xxhash64(F.lit(SEED), F.lit(salt), F.col(key)), F.lit(1_000_000)) < F.lit(int(share * 1e6))


def _draw(salt: str, below: int | Column, key: str = "cons_acct_key") -> Column:
    """A reproducible number in ``[0, below)`` per account (or row), from the key's hash with a salt."""
    return F.pmod(F.xxhash64(F.lit(SEED), F.lit(salt), F.col(key)), F.lit(below) if isinstance(below, int) else below)


def _union(parts: list[DataFrame]) -> DataFrame:
    """The batch: every part, with insert_ts and update_ts equal to base_ts (the ranking then rests on base_ts)."""
    batch = reduce(DataFrame.unionByName, parts)
    return batch.withColumns({"insert_ts": F.col("base_ts"), "update_ts": F.col("base_ts")})


def _corrected(rows: DataFrame, at: dt.datetime) -> DataFrame:
    """One new version of each (account, month) of ``rows``: another balance, active, an hour after ``at``."""
    return (rows.dropDuplicates(["cons_acct_key", "rpt_as_of_mo"])
            .withColumns({"acct_bal_am": F.col("acct_bal_am") + 7, "soft_del_cd": F.lit(None).cast("string"),
                          "base_ts": F.lit(at + dt.timedelta(hours=1))}))


def _extra(rows: DataFrame, share: float) -> DataFrame:
    """A second, later version of a share of ``rows``' keys (another balance, a minute later)."""
    return rows.where(_pick("extra", share)).withColumns({
        "acct_bal_am": F.col("acct_bal_am") + 1, "base_ts": F.col("base_ts") + F.expr("INTERVAL 1 MINUTE")})


def make_batch(spark: SparkSession, source: DataFrame, accounts: int, at: dt.datetime) -> DataFrame:
    """The production-shaped batch (see the module docstring), all arriving around ``at``."""
    forward = (generate_versions(spark, accounts=accounts, start_month=NEXT_MONTH, end_month=NEXT_MONTH,
                                 seed=SEED, base_ts=at).where(_pick("forward", 0.90)))
    n_new = max(1, accounts // 20)
    n_long = max(1, n_new // 5)
    new_short = generate_versions(spark, accounts=n_new - n_long, start_month=NEXT_MONTH, end_month=NEXT_MONTH,
                                  seed=SEED, first_account=accounts + 1, base_ts=at)
    long_start = accounts + n_new - n_long + 1
    new_long = (generate_versions(spark, accounts=n_long, start_month="2022-02", end_month=NEXT_MONTH, seed=SEED,
                                  first_account=long_start, base_ts=at)
                .where(month_index(F.col("rpt_as_of_mo")) >= F.lit(2026 * 12) - 11 - _draw("history", 37)))
    end = month_index(F.lit(END_MONTH))
    back = F.when(_pick("older", 0.10), 36 + _draw("old-month", 48)).otherwise(_draw("month", 36))
    corrected = _corrected(source.where(_pick("correct", 0.04))
                           .where(month_index(F.col("rpt_as_of_mo")) == end - back), at)
    deletes = (source.where(_pick("delete", 0.001) & (F.col("rpt_as_of_mo") == END_MONTH))
               .dropDuplicates(["cons_acct_key", "rpt_as_of_mo"])
               .withColumns({"soft_del_cd": F.lit("1"), "base_ts": F.lit(at + dt.timedelta(hours=2))}))
    return _union([forward, new_short, new_long, corrected, _extra(forward, 0.01), deletes])


def _one_month(spark: SparkSession, accounts: int, month: str, at: dt.datetime, first_account: int = 1) -> DataFrame:
    """Every one of ``accounts`` accounts' versions of one month (a single month has no gap and no late start)."""
    return generate_versions(spark, accounts=accounts, start_month=month, end_month=month, seed=SEED,
                             first_account=first_account, base_ts=at)


def _gap_fills(rows: DataFrame) -> DataFrame:
    """For each account of ``rows`` with a missing month between its first and last, one row for such a month
    (chosen by hashing the key): its last month's row, moved there. Accounts without a gap give none."""
    month = month_index(F.col("rpt_as_of_mo"))
    spans = rows.groupBy("cons_acct_key").agg(
        F.max(month).alias("_last"), F.array_except(F.sequence(F.min(month), F.max(month)),
                                                    F.collect_set(month)).alias("_gaps"))
    gap = F.element_at("_gaps", (_draw("gap", F.size("_gaps")) + 1).cast("int"))
    return (rows.join(spans.where(F.size("_gaps") > 0), "cons_acct_key").where(month == F.col("_last"))
            .dropDuplicates(["cons_acct_key"])
            .withColumn("rpt_as_of_mo", F.format_string("%04d-%02d", F.floor(gap / 12), gap % 12 + 1))
            .drop("_last", "_gaps"))


def make_seed_batch(spark: SparkSession, source: DataFrame, accounts: int, at: dt.datetime) -> DataFrame:
    """The seed project's test batch, all arriving around ``at``; the shares are of the existing accounts.

    The next month for ~92% of them, and for ~1% of those the month after too. Corrections, as the batch the
    issue measured has them (on 20,000 accounts: 4,966 corrections, most of them 200 accounts re-sending 24
    months): ~1% of accounts re-send their last 24 months, as bureaus re-send whole grids; ~3% correct one month,
    three quarters a month they have (within the last 36) and a quarter a month they are missing (a gap in
    their history). New accounts: 5% as many, a tenth of them with three months. ~2% of the forward keys get a
    second, later version.
    """
    forward = _one_month(spark, accounts, NEXT_MONTH, at).where(_pick("forward", 0.92))
    after = _one_month(spark, accounts, "2026-02", at).where(_pick("forward", 0.92) & _pick("two-months", 0.01))
    n_new = max(1, accounts // 20)
    n_three = max(1, n_new // 10)
    three_from = accounts + n_new - n_three + 1
    new = [_one_month(spark, n_new, NEXT_MONTH, at, accounts + 1),
           *(_one_month(spark, n_three, m, at, three_from) for m in ("2025-11", "2025-12"))]
    month, end = month_index(F.col("rpt_as_of_mo")), month_index(F.lit(END_MONTH))
    grids = source.where(_pick("grid", 0.01) & (month > end - 24))
    single, fill = _pick("correct", 0.03), _pick("fill", 0.25)
    existing = source.where(single & ~fill & (month == end - _draw("month", 36)))
    missing = _gap_fills(source.where(single & fill))
    corrected = _corrected(grids.unionByName(existing).unionByName(missing), at)
    return _union([forward, after, *new, corrected, _extra(forward, 0.02)])


#: The batch shapes a profile can name.
BATCHES: dict[str, Callable[[SparkSession, DataFrame, int, dt.datetime], DataFrame]] = {
    "production": make_batch,
    "seed": make_seed_batch,
}
