"""A pure-Python model of SPEC section 5, used by the tests as the oracle.

Why it exists: the engine computes `summary` and `latest_summary` with Spark, MERGE and incremental state;
this module computes the same two tables from nothing but the source versions and the config, in the most
direct way the spec can be read, so any difference between the two is a bug in one of them. It imports no
Spark and keeps no state between calls, and it favours being obviously right over being fast.

Deliberate limits (each one raises :class:`OracleError` rather than guessing):

* It cannot run Spark SQL. Every `mapper_expr` must be one of the expressions of the reference config (matched
  after collapsing whitespace), the generic sentinel-to-NULL pattern, or a bare column name.
* Rolling casts implement Integer/Long (``int``), Double (``float``) and String (``str``) only.

Decisions where the spec leaves room (the engine must make the same ones or the tests will say so):

* Rolling `mapper_expr` values are all evaluated against the row after step 4 (inferred columns), then a
  rolling column that shares its name with a column replaces it; one rolling value never feeds another.
* Remaining rank ties (after `base_ts` and `tie_breaker_columns`) are broken by the prepared values of the
  destination columns of `columns` in dict order, then the inferred columns in order, each descending with
  NULL below every value. Versions that still tie are identical in every column the tables hold.
* Rows the spec quarantines for their key, month or `base_ts` (SPEC 9) are dropped; values that cannot be cast
  are not modelled and raise.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

__all__ = ["OracleError", "add_months", "expected_tables"]

Row = dict[str, Any]
Expression = Callable[[Mapping[str, Any]], Any]
_RankKey = tuple[tuple[Any, ...], ...]

_DEFAULT_SOFT_DELETE_COLUMN = "soft_del_cd"
_DEFAULT_SOFT_DELETE_CODES = ("1", "4")
_MONTH_RE = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")


class OracleError(Exception):
    """The oracle was asked something it does not model; the test (not the engine) needs changing."""


# ----------------------------------------------------------------------------------------------------
# Months
# ----------------------------------------------------------------------------------------------------


def _month_index(month: object) -> int | None:
    """Map a valid 'YYYY-MM' to a month count so that arithmetic is plain integer arithmetic; else None."""
    if not isinstance(month, str):
        return None
    match = _MONTH_RE.fullmatch(month)
    if match is None:
        return None
    return int(match.group(1)) * 12 + int(match.group(2)) - 1


def add_months(month: str, delta: int) -> str:
    """Shift a 'YYYY-MM' month by `delta` months, so tests can write month offsets instead of literals.

    >>> add_months("2026-01", -1)
    '2025-12'
    >>> add_months("2025-12", 14)
    '2027-02'
    """
    index = _month_index(month)
    if index is None:
        raise OracleError(f"not a 'YYYY-MM' month: {month!r}")
    year, month0 = divmod(index + delta, 12)
    return f"{year:04d}-{month0 + 1:02d}"


# ----------------------------------------------------------------------------------------------------
# SQL three-valued logic: a condition is True, False or None (NULL); only True selects a CASE branch.
# ----------------------------------------------------------------------------------------------------


def _eq(left: Any, right: Any) -> bool | None:
    """SQL `=`: NULL when either side is NULL."""
    if left is None or right is None:
        return None
    return bool(left == right)


def _le(left: Any, right: Any) -> bool | None:
    """SQL `<=`: NULL when either side is NULL."""
    if left is None or right is None:
        return None
    return bool(left <= right)


def _ge(left: Any, right: Any) -> bool | None:
    """SQL `>=`: NULL when either side is NULL."""
    if left is None or right is None:
        return None
    return bool(left >= right)


def _in(value: Any, options: tuple[Any, ...]) -> bool | None:
    """SQL `x IN (...)` over a list without NULLs: NULL when x is NULL, else membership."""
    if value is None:
        return None
    return value in options


def _or(left: bool | None, right: bool | None) -> bool | None:
    """SQL `OR`: TRUE wins over NULL, NULL wins over FALSE."""
    if left is True or right is True:
        return True
    if left is None or right is None:
        return None
    return False


def _is_null(value: Any) -> bool:
    """SQL `IS NULL`: never NULL itself."""
    return value is None


def _case(branches: Sequence[tuple[bool | None, Any]], otherwise: Any = None) -> Any:
    """SQL searched CASE: the first branch whose condition is TRUE (not NULL), else ELSE, else NULL.

    Branch values are computed eagerly, which is harmless because every value here is a column or a literal.
    """
    for condition, value in branches:
        if condition is True:
            return value
    return otherwise


def _col(row: Mapping[str, Any], name: str) -> Any:
    """Read a column of the row being prepared; a name that is not there is a config error, not NULL."""
    if name not in row:
        raise OracleError(f"expression refers to column {name!r}, which the prepared row does not have")
    return row[name]


# ----------------------------------------------------------------------------------------------------
# The expressions the oracle understands
# ----------------------------------------------------------------------------------------------------

_SENTINELS = (-2147483647, -214748364, -21474836, -1)


def _acct_type_dtl_cd_default(row: Mapping[str, Any]) -> Any:
    """CASE WHEN acct_type_dtl_cd = '' OR acct_type_dtl_cd IS NULL THEN '999' ELSE acct_type_dtl_cd END."""
    value = _col(row, "acct_type_dtl_cd")
    return _case([(_or(_eq(value, ""), _is_null(value)), "999")], value)


def _orig_loan_am(row: Mapping[str, Any]) -> Any:
    """Installment account types report high credit as the loan amount, the others their credit limit."""
    installment_types = ("5", "214", "220", "213", "224")
    return _case(
        [(_in(_col(row, "acct_type_dtl_cd"), installment_types), _col(row, "hi_credit_am"))],
        _col(row, "credit_limit_am"),
    )


def _payment_rating_cd(row: Mapping[str, Any]) -> Any:
    """The reference rating: asset class when days past due <= -1, a 30-day bucket when >= 0, else NULL."""
    days = _col(row, "days_past_due")
    asset = _col(row, "asset_class_cd")
    by_asset_class = _case(
        [
            (_in(asset, ("1", "01", "S")), "S"),
            (_in(asset, ("2", "02", "B")), "B"),
            (_in(asset, ("3", "03", "D")), "D"),
            (_in(asset, ("4", "04")), "L"),
            (_in(asset, ("5", "05", "M")), "M"),
            (_in(asset, ("0", "6", "G", "L", "C")), asset),
        ],
        None,
    )
    by_days = _case(
        [
            (_le(days, 29), "0"),
            (_le(days, 59), "1"),
            (_le(days, 89), "2"),
            (_le(days, 119), "3"),
            (_le(days, 149), "4"),
            (_le(days, 179), "5"),
        ],
        "6",
    )
    return _case([(_le(days, -1), by_asset_class), (_ge(days, 0), by_days)])


_EXPRESSIONS: dict[str, Expression] = {
    "CASE WHEN acct_type_dtl_cd = '' OR acct_type_dtl_cd IS NULL THEN '999' ELSE acct_type_dtl_cd END": (
        _acct_type_dtl_cd_default
    ),
    (
        "CASE WHEN acct_type_dtl_cd IN ('5', '214', '220', '213', '224')"
        " THEN hi_credit_am ELSE credit_limit_am END"
    ): _orig_loan_am,
    (
        "CASE WHEN days_past_due <= -1 THEN CASE"
        " WHEN asset_class_cd IN ('1', '01', 'S') THEN 'S'"
        " WHEN asset_class_cd IN ('2', '02', 'B') THEN 'B'"
        " WHEN asset_class_cd IN ('3', '03', 'D') THEN 'D'"
        " WHEN asset_class_cd IN ('4', '04') THEN 'L'"
        " WHEN asset_class_cd IN ('5', '05', 'M') THEN 'M'"
        " WHEN asset_class_cd IN ('0', '6', 'G', 'L', 'C') THEN asset_class_cd"
        " ELSE NULL END"
        " WHEN days_past_due >= 0 THEN CASE"
        " WHEN days_past_due <= 29 THEN '0'"
        " WHEN days_past_due <= 59 THEN '1'"
        " WHEN days_past_due <= 89 THEN '2'"
        " WHEN days_past_due <= 119 THEN '3'"
        " WHEN days_past_due <= 149 THEN '4'"
        " WHEN days_past_due <= 179 THEN '5'"
        " ELSE '6' END END"
    ): _payment_rating_cd,
}

_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_IDENTITY_RE = re.compile(_IDENTIFIER)
_SENTINEL_RE = re.compile(
    rf"CASE WHEN (?P<c>{_IDENTIFIER}) IN \(-2147483647, -214748364, -21474836, -1\) THEN NULL ELSE (?P=c) END"
)


def _identity(name: str) -> Expression:
    """A bare column name: the column's current value."""
    return lambda row: _col(row, name)


def _sentinel_to_null(name: str) -> Expression:
    """CASE WHEN <c> IN (-2147483647, -214748364, -21474836, -1) THEN NULL ELSE <c> END, for any column c."""
    return lambda row: _case([(_in(_col(row, name), _SENTINELS), None)], _col(row, name))


def _compile(expression: str) -> Expression:
    """Turn a config expression into a Python function of the row, or say plainly that the oracle cannot."""
    normalised = " ".join(expression.split())
    known = _EXPRESSIONS.get(normalised)
    if known is not None:
        return known
    if _IDENTITY_RE.fullmatch(normalised):
        return _identity(normalised)
    sentinel = _SENTINEL_RE.fullmatch(normalised)
    if sentinel is not None:
        return _sentinel_to_null(sentinel.group("c"))
    raise OracleError(
        f"the oracle cannot evaluate the expression {expression!r}; add a Python model of it to _EXPRESSIONS "
        "in tests/oracle.py"
    )


def _cast(value: Any, type_name: str, column: str) -> Any:
    """Cast a rolling value to its configured type the plain Python way (NULL stays NULL)."""
    if value is None:
        return None
    kind = type_name.strip().lower()
    try:
        if kind in ("integer", "int", "long", "bigint"):
            return int(value)
        if kind == "double":
            return float(value)
        if kind == "string":
            return str(value)
    except (TypeError, ValueError) as exc:
        raise OracleError(f"rolling column {column!r}: cannot cast {value!r} to {type_name}") from exc
    raise OracleError(f"rolling column {column!r}: the oracle does not model the type {type_name!r}")


# ----------------------------------------------------------------------------------------------------
# Config
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rolling:
    name: str
    expression: Expression
    type_name: str


@dataclass(frozen=True)
class _Grid:
    name: str
    rolling: str
    placeholder: str
    separator: str


@dataclass(frozen=True)
class _Config:
    """The slice of the seed config that section 5 depends on, with the spec's defaults filled in."""

    account: str
    month: str
    timestamp: str
    tie_breakers: tuple[str, ...]
    history_length: int
    columns: tuple[tuple[str, str], ...]
    date_columns: tuple[str, ...]
    transformations: tuple[tuple[str, Expression], ...]
    inferred: tuple[tuple[str, Expression], ...]
    rolling: tuple[_Rolling, ...]
    grids: tuple[_Grid, ...]
    soft_delete_column: str
    soft_delete_codes: tuple[str, ...]

    @staticmethod
    def parse(config: Mapping[str, Any]) -> _Config:
        """Read the seed JSON once; expressions compile up front so an unknown one fails even with no rows."""
        history_length = int(config.get("history_length", 36))
        rolling = tuple(
            _Rolling(str(r["name"]), _compile(str(r["mapper_expr"])), str(r["type"]))
            for r in config.get("rolling_columns", [])
        )
        for r in config.get("rolling_columns", []):
            if "num_cols" in r and int(r["num_cols"]) != history_length:
                raise OracleError(
                    f"rolling column {r['name']!r}: num_cols {r['num_cols']} "
                    f"!= history_length {history_length}"
                )
        rolling_names = {r.name for r in rolling}
        grids = tuple(
            _Grid(
                name=str(g["name"]),
                rolling=str(g["mapper_rolling_column"]),
                placeholder=str(g.get("placeholder", "?")),
                separator=str(g.get("separator", g.get("seperator", ""))),
            )
            for g in config.get("grid_columns", [])
        )
        for grid in grids:
            if grid.rolling not in rolling_names:
                raise OracleError(
                    f"grid column {grid.name!r} refers to unknown rolling column {grid.rolling!r}"
                )
        soft_delete = config.get("soft_delete") or {}
        return _Config(
            account=str(config.get("primary_column", "cons_acct_key")),
            month=str(config.get("partition_column", "rpt_as_of_mo")),
            timestamp=str(config.get("max_identifier_column", "base_ts")),
            tie_breakers=tuple(str(c) for c in config.get("tie_breaker_columns", [])),
            history_length=history_length,
            columns=tuple((str(s), str(d)) for s, d in config["columns"].items()),
            date_columns=tuple(str(c) for c in config.get("date_col_list", [])),
            transformations=tuple(
                (str(t["name"]), _compile(str(t["mapper_expr"])))
                for t in config.get("column_transformations", [])
            ),
            inferred=tuple(
                (str(t["name"]), _compile(str(t["mapper_expr"]))) for t in config.get("inferred_columns", [])
            ),
            rolling=rolling,
            grids=grids,
            soft_delete_column=str(soft_delete.get("column", _DEFAULT_SOFT_DELETE_COLUMN)),
            soft_delete_codes=tuple(str(c) for c in soft_delete.get("codes", _DEFAULT_SOFT_DELETE_CODES)),
        )


# ----------------------------------------------------------------------------------------------------
# Versions
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Version:
    """One valid source row after preparation, with everything section 5 asks of it."""

    account: int
    month: str
    month_index: int
    base_ts: Any
    prepared: Row
    rolling: Row
    deleted: bool
    rank: _RankKey


def _nulls_lowest(value: Any) -> tuple[Any, ...]:
    """Sort key under which NULL is below every value (so it comes last in a descending sort)."""
    return (0,) if value is None else (1, value)


def _prepare(source: Mapping[str, Any], cfg: _Config) -> tuple[Row, Row]:
    """SPEC 4 steps 1-5: the prepared row and the rolling values (which also replace same-named columns)."""
    row: Row = {dest: source.get(src) for src, dest in cfg.columns}
    for name in cfg.date_columns:
        value = row.get(name)
        if isinstance(value, date) and value.year < 1000:
            row[name] = None
    for name, expression in cfg.transformations:
        row[name] = expression(row)
    for name, expression in cfg.inferred:
        row[name] = expression(row)
    rolling: Row = {r.name: _cast(r.expression(row), r.type_name, r.name) for r in cfg.rolling}
    for name, value in rolling.items():
        if name in row:
            row[name] = value
    return row, rolling


def _read_version(source: Mapping[str, Any], cfg: _Config) -> _Version | None:
    """Prepare one source row, or None when SPEC 9 quarantines it for its key, month or timestamp."""
    account = source.get(cfg.account)
    month = source.get(cfg.month)
    base_ts = source.get(cfg.timestamp)
    month_index = _month_index(month)
    if account is None or month_index is None or base_ts is None:
        return None
    prepared, rolling = _prepare(source, cfg)
    destination_names = [dest for _, dest in cfg.columns] + [name for name, _ in cfg.inferred]
    rank = (
        _nulls_lowest(base_ts),
        *(_nulls_lowest(source.get(c)) for c in cfg.tie_breakers),
        *(_nulls_lowest(prepared.get(name)) for name in destination_names),
    )
    deleted = prepared.get(cfg.soft_delete_column) in cfg.soft_delete_codes
    return _Version(int(account), str(month), month_index, base_ts, prepared, rolling, deleted, rank)


# ----------------------------------------------------------------------------------------------------
# The tables
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    """A summary row before its history: whose values it shows, and whether it is a tombstone."""

    fact: _Version
    shown: _Version
    tombstone: bool


def expected_tables(
    versions: Iterable[Mapping[str, Any]], config: Mapping[str, Any]
) -> tuple[dict[tuple[int, str], dict[str, Any]], dict[int, dict[str, Any]]]:
    """Return (summary, latest): summary keyed by (account, 'YYYY-MM'), latest keyed by account.

    This is SPEC section 5 over R = `versions`, computed from scratch; it is what `initial` over these
    versions must produce and what any sequence of runs that has read exactly these versions must leave.

    Args:
        versions: source rows keyed by source column names; a missing key is NULL.
        config: the parsed seed-format config.

    Returns:
        The expected `summary` rows (every column the spec names, `base_ts` being the window maximum) and, per
        account, its `latest_summary` row as the full summary row (callers project the columns they compare).
    """
    cfg = _Config.parse(config)
    by_key: defaultdict[tuple[int, int], list[_Version]] = defaultdict(list)
    for source in versions:
        version = _read_version(source, cfg)
        if version is not None:
            by_key[(version.account, version.month_index)].append(version)

    active_facts: dict[tuple[int, int], _Version] = {}
    entries: dict[tuple[int, int], _Entry] = {}
    for key, candidates in by_key.items():
        ranked = sorted(candidates, key=lambda v: v.rank, reverse=True)
        fact = ranked[0]
        if not fact.deleted:
            active_facts[key] = fact
            entries[key] = _Entry(fact, fact, tombstone=False)
            continue
        below = next((v for v in ranked[1:] if not v.deleted), None)
        if below is not None:
            entries[key] = _Entry(fact, below, tombstone=True)

    h = cfg.history_length
    summary: dict[tuple[int, str], dict[str, Any]] = {}
    for account, index in sorted(entries):
        entry = entries[(account, index)]
        row = dict(entry.shown.prepared)
        if entry.tombstone:
            row[cfg.soft_delete_column] = entry.fact.prepared.get(cfg.soft_delete_column)
        row.setdefault(cfg.soft_delete_column, None)
        row[cfg.account] = account
        row[cfg.month] = entry.fact.month
        histories: dict[str, list[Any]] = {}
        for r in cfg.rolling:
            history = []
            for k in range(h):
                earlier = active_facts.get((account, index - k))
                history.append(None if earlier is None else earlier.rolling[r.name])
            histories[r.name] = history
            row[f"{r.name}_history"] = history
        for grid in cfg.grids:
            row[grid.name] = grid.separator.join(
                grid.placeholder if x is None else str(x) for x in histories[grid.rolling]
            )
        row["fact_base_ts"] = entry.fact.base_ts
        row[cfg.timestamp] = max(
            entries[(account, index - j)].fact.base_ts for j in range(h) if (account, index - j) in entries
        )
        summary[(account, entry.fact.month)] = row

    # Ascending month order: a later active month always takes over; a tombstone only while no active has.
    shown_latest: dict[int, _Entry] = {}
    for account, index in sorted(entries):
        entry = entries[(account, index)]
        held = shown_latest.get(account)
        if held is None or held.tombstone or not entry.tombstone:
            shown_latest[account] = entry
    latest = {account: _copy_row(summary[(account, e.fact.month)]) for account, e in shown_latest.items()}
    return summary, latest


def _copy_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """Copy a row and its history lists, so a test that edits `latest` cannot change `summary`."""
    return {name: list(value) if isinstance(value, list) else value for name, value in row.items()}
