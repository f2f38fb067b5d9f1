"""Factories for tests: literal source versions, loading them, reading the tables back, comparing with the oracle."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from oracle import expected_tables
from summary_pipeline.config import PipelineConfig, parse_config
from summary_pipeline.store.protocol import StepHook
from summary_pipeline.tools.generate import SOURCE_SCHEMA, create_source_table

SOURCE_COLUMNS = [part.strip().split()[0] for part in SOURCE_SCHEMA.split(",")]

T0 = dt.datetime(2026, 1, 15, 10, 0, 0)


def shared_dir() -> Path:
    """The project's shared/ folder: beside the repository, or where SUMMARY_SHARED_DIR says."""
    env = os.environ.get("SUMMARY_SHARED_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared"


REPO_CONFIG = Path(__file__).resolve().parents[1] / "examples" / "summary_config.json"
#: The seed's reference config; the repository's copy of it when shared/ is not beside the clone.
REFERENCE_CONFIG = (shared_dir() / "reference" / "summary_config.json"
                    if (shared_dir() / "reference" / "summary_config.json").exists() else REPO_CONFIG)


def reference_raw() -> dict[str, Any]:
    """The seed's reference config as a dict (a fresh copy each call)."""
    data: dict[str, Any] = json.loads(REFERENCE_CONFIG.read_text())
    return data


_counter = itertools.count()


def new_config(history_length: int | None = None, *, in_catalog: str | None = None, **overrides: Any
               ) -> PipelineConfig:
    """The reference config with unique table names (one namespace per call; in catalog ``in_catalog``, named
    ``in_catalog.namespace.table``) and top-level overrides."""
    raw = reference_raw()
    ns = f"{in_catalog + '.' if in_catalog else ''}t{os.getpid()}_{next(_counter)}"
    raw.update(source_table=f"{ns}.accounts_all", destination_table=f"{ns}.summary",
               latest_history_table=f"{ns}.latest_summary")
    if history_length is not None:
        raw["history_length"] = history_length
        for r in raw["rolling_columns"]:
            r["num_cols"] = history_length
    raw.update(overrides)
    return parse_config(raw, "test-config")


def _first_day(month: str) -> dt.date | None:
    try:
        return dt.datetime.strptime(month, "%Y-%m").date()
    except (TypeError, ValueError):
        return None


def version(account: int, month: str, balance: int | None = 1000, *, ts: dt.datetime = T0, **extra: Any
            ) -> dict[str, Any]:
    """One source version with plausible defaults; ``extra`` sets any other source column by name."""
    row: dict[str, Any] = {
        "cons_acct_key": account,
        "rpt_as_of_mo": month,
        "acct_bal_am": balance,
        "base_ts": ts,
        "acct_credit_ext_am": 5000,
        "actual_pymt_am": 100,
        "past_due_am": 0,
        "days_past_due_ct_4in": 0,
        "asset_class_cd_4in": "S",
        "acct_type_dtl_cd": "5",
        "high_credit_am_4in": 6000,
        "acct_dt": _first_day(month),
    }
    row.update(extra)
    return row


def load_source(spark: SparkSession, cfg: PipelineConfig, versions: Iterable[Mapping[str, Any]]) -> None:
    """Create the config's source table (if missing) and append ``versions`` to it."""
    create_source_table(spark, cfg.source_table)
    rows = [tuple(v.get(c) for c in SOURCE_COLUMNS) for v in versions]
    if rows:
        spark.createDataFrame(rows, SOURCE_SCHEMA).writeTo(cfg.source_table).append()


def config_file(cfg: PipelineConfig, directory: Path) -> Path:
    """The reference config with ``cfg``'s table names, as a file the CLI (or a subprocess) can read."""
    raw = reference_raw()
    raw.update(source_table=cfg.source_table, destination_table=cfg.destination_table,
               latest_history_table=cfg.latest_history_table)
    path = directory / f"{cfg.destination_table.replace('.', '_')}.json"
    path.write_text(json.dumps(raw))
    return path


def oracle_config(cfg: PipelineConfig) -> dict[str, Any]:
    """The config as the seed-format dict the oracle reads."""
    return cfg.model_dump(by_alias=True, mode="json")


def read_tables(spark: SparkSession, cfg: PipelineConfig
                ) -> tuple[dict[tuple[int, str], dict[str, Any]], dict[int, dict[str, Any]]]:
    """Both tables as dicts keyed like the oracle's output."""
    summary = {(r[cfg.key], r[cfg.month]): r.asDict() for r in spark.table(cfg.destination_table).collect()}
    latest = {r[cfg.key]: r.asDict() for r in spark.table(cfg.latest_history_table).collect()}
    return summary, latest


def _diff(name: str, got: Mapping[Any, Mapping[str, Any]], want: Mapping[Any, Mapping[str, Any]],
          columns: Iterable[str]) -> list[str]:
    problems = []
    for key in sorted(set(got) ^ set(want), key=str)[:5]:
        problems.append(f"{name} {key}: {'unexpected row' if key in got else 'missing row'}")
    for key in sorted(set(got) & set(want), key=str):
        for c in columns:
            if got[key].get(c) != want[key].get(c):
                problems.append(f"{name} {key} {c}: engine {got[key].get(c)!r} != oracle {want[key].get(c)!r}")
        if len(problems) > 10:
            break
    return problems


def assert_matches_oracle(spark: SparkSession, cfg: PipelineConfig, versions: Iterable[Mapping[str, Any]]) -> None:
    """Both tables equal the oracle over ``versions`` on every column of each table."""
    want_summary, want_latest = expected_tables(list(versions), oracle_config(cfg))
    got_summary, got_latest = read_tables(spark, cfg)
    problems = _diff("summary", got_summary, want_summary, cfg.summary_columns)
    problems += _diff("latest", got_latest, want_latest, cfg.latest_columns)
    assert not problems, "\n".join(problems[:15])


class Kill(BaseException):
    """A simulated SIGKILL: no handler of the product catches it."""


def fault(at: str, what: BaseException | Callable[[], None]) -> StepHook:
    """A step hook for ``run(..., on_step=...)`` (and maintain, rollback, evolve): at step ``at``, raise ``what``
    (an exception) or call it (a side effect), once."""
    armed = [True]

    def hook(name: str) -> None:
        if name != at or not armed[0]:
            return
        armed[0] = False
        if isinstance(what, BaseException):
            raise what
        what()
    return hook
