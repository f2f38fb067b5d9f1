"""Hypothesis strategies: random source versions that exercise every rule of SPEC 5 on small data."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import strategies as st

from factories import version
from oracle import add_months

BASE_MONTH = "2023-01"
SENTINELS = (-2147483647, -214748364, -21474836, -1)
ASSET_CODES = ("1", "01", "S", "2", "02", "B", "3", "03", "D", "4", "04", "5", "05", "M", "0", "6", "G", "L",
               "C", "X", None)

balances = st.one_of(st.integers(-5, 100_000), st.sampled_from(SENTINELS), st.none())
soft_delete_codes = st.sampled_from([None, None, None, None, "0", "1", "4"])


@st.composite
def account_versions(draw: st.DrawFn, account: int, span: int = 30) -> list[dict[str, Any]]:
    """Versions of one account: months with gaps, repeated keys, tie-breaks, deletes, odd values."""
    month_offsets = draw(st.lists(st.integers(0, span), min_size=1, max_size=10))
    out = []
    for offset in month_offsets:
        hours = draw(st.integers(0, 3))
        insert = draw(st.one_of(st.none(), st.integers(0, 2)))
        out.append(version(
            account,
            add_months(BASE_MONTH, offset),
            draw(balances),
            ts=dt.datetime(2026, 1, 1) + dt.timedelta(hours=hours),
            insert_ts=None if insert is None else dt.datetime(2025, 1, 1) + dt.timedelta(days=insert),
            soft_del_cd=draw(soft_delete_codes),
            days_past_due_ct_4in=draw(st.one_of(st.none(), st.integers(-3, 200))),
            asset_class_cd_4in=draw(st.sampled_from(ASSET_CODES)),
            acct_type_dtl_cd=draw(st.sampled_from(["5", "214", "1", "", None])),
        ))
    return out


@st.composite
def bad_rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A few rows the pipeline must reject (SPEC 9)."""
    kinds = draw(st.lists(st.sampled_from(["key", "month", "ts"]), max_size=3))
    rows = []
    for kind in kinds:
        row = version(10_000, draw(st.sampled_from(["2026-13", "26-01", "", "2026-00"])) if kind == "month"
                      else "2025-01", 1)
        if kind == "key":
            row["cons_acct_key"] = None
        if kind == "ts":
            row["base_ts"] = None
        rows.append(row)
    return rows


@st.composite
def source_versions(draw: st.DrawFn, min_accounts: int = 20, max_accounts: int = 30) -> list[dict[str, Any]]:
    """Versions of several independent accounts, plus a few bad rows."""
    n = draw(st.integers(min_accounts, max_accounts))
    rows: list[dict[str, Any]] = []
    for account in range(1, n + 1):
        rows += draw(account_versions(account))
    return rows + draw(bad_rows())


@st.composite
def batch_steps(draw: st.DrawFn, accounts: int, steps: int) -> list[tuple[str, list[dict[str, Any]]]]:
    """A sequence of (mode, new source versions) steps over the same accounts.

    Later steps bring new months, corrections of old months (some beyond H), extra versions of existing keys,
    deletes, and versions older than the watermark that only forward/backfill read.
    """
    out = []
    for step in range(steps):
        mode = "initial" if step == 0 else draw(st.sampled_from(["incremental", "incremental", "forward", "backfill"]))
        rows: list[dict[str, Any]] = []
        for account in range(1, accounts + 1):
            if step and not draw(st.booleans()):
                continue
            for row in draw(account_versions(account)):
                # Later steps arrive later, except a few stragglers (older base_ts than the watermark).
                late = draw(st.integers(0, 9)) == 0
                row["base_ts"] = row["base_ts"] + dt.timedelta(days=0 if late else 10 * step)
                rows.append(row)
        out.append((mode, rows))
    return out
