"""The demo behind the README's run command: synthetic source, a full build, the seed's mixed batch through
an incremental run, and a look at the result."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from summary_pipeline.config import PipelineConfig
from summary_pipeline.console import Console
from summary_pipeline.progress import phase
from summary_pipeline.result import RunOptions
from summary_pipeline.runner import read_watermark, run
from summary_pipeline.store.tables import is_empty
from summary_pipeline.tools.generate import append_source, create_source_table, demo_batch, generate_versions

__all__ = ["DEMO_MARK", "demo_warehouse", "generate_source", "run_demo"]

#: The file the demo leaves in a warehouse directory it made, so that the next demo may start it afresh.
DEMO_MARK = ".summary-pipeline-demo"


def demo_warehouse(path: Path) -> str:
    """Start the demo from an empty warehouse directory, so that every demo prints the same; returns the line
    that says what was done.

    A directory the demo made (it holds :data:`DEMO_MARK`) is emptied; an empty or missing one is made and
    marked. A directory holding anything else is someone's tables: the demo never deletes those, and uses them
    as they are (the line says so).
    """
    where = path.resolve()
    if where.exists() and any(where.iterdir()):
        if not (where / DEMO_MARK).exists():
            return (f"{where} holds tables the demo did not make; using them as they are (for the demo's own "
                    "output, give it an empty directory: --warehouse DIR)")
        shutil.rmtree(where)
        said = f"Starting from an empty demo warehouse: removed the previous demo's tables in {where}"
    else:
        said = f"Demo warehouse: {where}"
    where.mkdir(parents=True, exist_ok=True)
    (where / DEMO_MARK).write_text("made by `summary-pipeline demo`; the next demo empties this directory\n")
    return said


def generate_source(spark: SparkSession, cfg: PipelineConfig, *, accounts: int, start_month: str,
                    end_month: str, seed: int) -> int:
    """Create the source table when missing and append synthetic versions; returns how many."""
    with phase("generate"):
        create_source_table(spark, cfg.source_table)
        versions = generate_versions(spark, accounts=accounts, start_month=start_month, end_month=end_month,
                                     seed=seed)
        return append_source(versions, cfg.source_table)


def _checklist(spark: SparkSession, cfg: PipelineConfig, console: Console) -> None:
    """The seed's daily checklist queries, and a few rows of one account."""
    summary = spark.table(cfg.destination_table)
    first_history = cfg.rolling_columns[0].history_column
    totals = summary.agg(
        F.count(F.lit(1)).alias("total_records"),
        F.max(cfg.month).alias("latest_month"),
        F.max(cfg.ts).alias("latest_timestamp"),
        F.count(F.when(F.size(first_history) != cfg.history_length, 1)).alias("wrong_array_lengths"),
    ).collect()[0].asDict()
    dupes = summary.groupBy(cfg.key, cfg.month).count().where("count > 1").count()
    console.table("Production checklist:", [{**totals, "duplicate_keys": dupes}])
    account = 1
    grid = [g.name for g in cfg.grid_columns][:1]
    rows = (summary.where(F.col(cfg.key) == account).orderBy(F.col(cfg.month).desc()).limit(6)
            .select(cfg.key, cfg.month, cfg.ts, F.slice(first_history, 1, 4).alias(f"{first_history}[0:4]"),
                    *grid).collect())
    console.table(f"\nNewest months of account {account} in {cfg.destination_table}:",
                  [r.asDict() for r in rows])


def run_demo(spark: SparkSession, cfg: PipelineConfig, console: Console, *, accounts: int, start_month: str,
             end_month: str, seed: int, config_name: str = "config") -> None:
    """Fill an empty source with synthetic data, rebuild both tables from it, and show the result."""
    if is_empty(spark, cfg.source_table):
        console.progress(f"Generating synthetic source versions for {accounts:,} accounts, {start_month} to "
                         f"{end_month}...")
        n = generate_source(spark, cfg, accounts=accounts, start_month=start_month, end_month=end_month,
                            seed=seed)
        console.progress(f"Generated {n:,} source versions for {accounts:,} accounts, "
                         f"{start_month} to {end_month}, in {cfg.source_table}")
    else:
        console.progress(f"{cfg.source_table} already holds data; using it as it is")
    console.banner("initial")
    result = run(spark, cfg, RunOptions(mode="initial", replace=True), progress=console.progress,
                 config_name=config_name)
    console.finished(result)
    watermark = read_watermark(spark, cfg) or dt.datetime(2026, 1, 15, 10)
    n = append_source(demo_batch(spark, watermark + dt.timedelta(hours=1)), cfg.source_table)
    console.progress(f"\nAppended the seed's mixed batch ({n} versions: forward months and backfills for accounts "
                     "1 and 2, new account 9999, new account 9998 with six months)\n")
    console.banner("incremental")
    result = run(spark, cfg, RunOptions(mode="incremental"), progress=console.progress, config_name=config_name)
    console.finished(result)
    _checklist(spark, cfg, console)
