"""The benchmark (issue 5): what a run costs, measured on this machine, as ratios that travel to a cluster.

One call builds two histories of the same accounts (120 and 30 months), applies the same production-like batch
to both with ``incremental`` (after a dry run that warms the JVM for it), rebuilds the 120-month state from
scratch, and runs an *I/O floor* job that reads and writes the volumes the incremental run had to, with no
logic. It reports, all from that one call:

* initial build time and summary rows/s;
* incremental time and batch records/s, at 120 and at 30 months of history;
* ``T_full`` (full rebuild of the final state) and ``T_floor``, and the ratios against ``T_incremental``;
* the JVM's peak heap use in each phase (from its memory pools, reset between phases).

The batch follows production's shape: the next month for ~90% of accounts; ~5% new accounts, a fifth of them
with 12 to 48 months of history; ~4% corrections of a month in the last 36 (a tenth of them older); ~1% extra
versions of batch keys; a few deletes of an account's latest month. Everything is generated from a seed, so two
runs of a profile measure the same data.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from summary_pipeline.config import PipelineConfig
from summary_pipeline.engine import window_months
from summary_pipeline.facts import FACT_TS, VERSION
from summary_pipeline.generate import create_source_table, generate_versions
from summary_pipeline.prepare import month_index
from summary_pipeline.result import RunOptions, RunResult
from summary_pipeline.runner import read_watermark, run
from summary_pipeline.tables import ensure_namespace, replace_table

__all__ = ["PROFILES", "TARGETS", "Profile", "Report", "make_batch", "meets", "run_benchmark", "write_json"]


@dataclass(frozen=True)
class Profile:
    """A benchmark size: accounts, and the long and short history depths compared."""

    name: str
    accounts: int
    driver_memory: str
    months: int = 120
    short_months: int = 30


PROFILES = {
    "small": Profile("small", 2_000, "2g"),
    "medium": Profile("medium", 50_000, "8g"),
    "large": Profile("large", 250_000, "16g"),
}

END_MONTH = "2025-12"
NEXT_MONTH = "2026-01"
SEED = 7


@dataclass
class Phase:
    """One measured phase."""

    name: str
    seconds: float
    rows: int
    unit: str
    peak_heap_mib: float
    #: For a pipeline run: its own timings per step (read, classify, rebuild, writes), from the ledger row.
    steps: dict[str, float] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        """Rows (of the phase's unit) per second."""
        return self.rows / self.seconds if self.seconds else 0.0


@dataclass
class Report:
    """Everything one benchmark call measured (printed as a table, written as JSON)."""

    profile: str
    accounts: int
    months: int
    short_months: int
    history_length: int
    started_at: str
    phases: list[Phase] = field(default_factory=list)
    ratios: dict[str, float] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)

    def phase(self, name: str) -> Phase:
        """The phase called ``name``."""
        return next(p for p in self.phases if p.name == name)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, with each phase's rate."""
        data = asdict(self)
        for p in data["phases"]:
            p["per_second"] = round(p["rows"] / p["seconds"], 1) if p["seconds"] else 0.0
        return data


TARGETS = {
    "full_over_incremental": (">=", 10.0),
    "incremental_120_over_30": ("<=", 1.3),
    "incremental_over_floor": ("<=", 2.0),
    "initial_summary_rows_per_second": (">=", 25_000.0),
}


class _Memory:
    """Peak JVM heap in use between two marks, from the JVM's own memory pools (their peak is resettable)."""

    def __init__(self, spark: SparkSession) -> None:
        jvm = spark._jvm
        assert jvm is not None
        self.pools = [p for p in jvm.java.lang.management.ManagementFactory.getMemoryPoolMXBeans()
                      if str(p.getType().name()) == "HEAP"]

    def reset(self) -> None:
        """Start a new peak."""
        for pool in self.pools:
            pool.resetPeakUsage()

    def peak_mib(self) -> float:
        """The sum of the heap pools' peaks since :meth:`reset` (an upper bound of the heap's peak)."""
        return round(sum(int(p.getPeakUsage().getUsed()) for p in self.pools) / 2**20, 1)


def _configs(base: PipelineConfig, profile: Profile) -> dict[str, PipelineConfig]:
    """One config per table set: the long history, the short one, and the full rebuild of the long one."""
    ns = f"bench_{profile.name}"
    names = {"long": f"{profile.months}", "short": f"{profile.short_months}", "full": "full"}
    configs = {}
    for role, suffix in names.items():
        source = f"{ns}.accounts_{profile.short_months if role == 'short' else profile.months}"
        configs[role] = base.model_copy(update={
            "source_table": source, "destination_table": f"{ns}.summary_{suffix}",
            "latest_history_table": f"{ns}.latest_summary_{suffix}", "run_ledger_table": None,
            "quarantine_table": None, "deletes_table_name": None})
    return configs


def _pick(salt: str, share: float, key: str = "cons_acct_key") -> Any:
    """A reproducible share of accounts (or rows), chosen by hashing the key with a salt."""
    return F.pmod(F.xxhash64(F.lit(SEED), F.lit(salt), F.col(key)), F.lit(1_000_000)) < F.lit(int(share * 1e6))


def _draw(salt: str, below: int, key: str = "cons_acct_key") -> Any:
    return F.pmod(F.xxhash64(F.lit(SEED), F.lit(salt), F.col(key)), F.lit(below))


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
    corrected = (source.where(_pick("correct", 0.04))
                 .where(month_index(F.col("rpt_as_of_mo")) == end - back)
                 .dropDuplicates(["cons_acct_key", "rpt_as_of_mo"])
                 .withColumns({"acct_bal_am": F.col("acct_bal_am") + 7, "soft_del_cd": F.lit(None).cast("string"),
                               "base_ts": F.lit(at + dt.timedelta(hours=1))}))
    extra = forward.where(_pick("extra", 0.01)).withColumns({
        "acct_bal_am": F.col("acct_bal_am") + 1, "base_ts": F.col("base_ts") + F.expr("INTERVAL 1 MINUTE")})
    deletes = (source.where(_pick("delete", 0.001) & (F.col("rpt_as_of_mo") == END_MONTH))
               .dropDuplicates(["cons_acct_key", "rpt_as_of_mo"])
               .withColumns({"soft_del_cd": F.lit("1"), "base_ts": F.lit(at + dt.timedelta(hours=2))}))
    parts = [forward, new_short, new_long, corrected, extra, deletes]
    batch = parts[0]
    for part in parts[1:]:
        batch = batch.unionByName(part)
    return batch.withColumns({"insert_ts": F.col("base_ts"), "update_ts": F.col("base_ts")})


def _write_source(spark: SparkSession, table: str, df: DataFrame, append: bool = False) -> int:
    create_source_table(spark, table)
    if not append:
        spark.sql(f"DELETE FROM {table}")
    df.writeTo(table).append()
    return int(spark.table(table).count())


def _floor(spark: SparkSession, cfg: PipelineConfig, watermark: dt.datetime, batch_months: list[int],
           result: RunResult) -> int:
    """Read what the incremental run had to read and write as many rows as it wrote, with no logic.

    The reads are the batch, latest_summary, and the correction windows' month partitions with the columns
    the run reads there (no history arrays or grids, see ``runner.summary_window``). The writes are rows as wide
    as the run's (latest_summary rows, with every history array), drawn at random from latest_summary, which the
    run reads anyway, and spread over the window's months, written like the run writes (month partitions, the
    layout's properties, every task in parallel). (Sampling the window's own rows instead would read their
    arrays, which the run never does; a ``limit`` would funnel every row through one task.)"""
    noop = {"format": "noop", "mode": "overwrite"}
    batch = spark.table(cfg.source_table).where(F.col(cfg.ts) > F.lit(watermark))
    batch.write.save(**noop)
    latest = spark.table(cfg.latest_history_table)
    latest.write.save(**noop)
    months = window_months(batch_months, cfg.history_length)
    window = spark.table(cfg.destination_table).where(F.col(cfg.month).isin(months))
    window.select(*cfg.value_columns, FACT_TS, VERSION).write.save(**noop)
    ns = cfg.destination_table.rsplit(".", 1)[0]
    total = max(latest.count(), 1)
    month = F.element_at(F.array(*(F.lit(m) for m in months)),
                         (F.pmod(F.xxhash64(F.col(cfg.key), F.rand(SEED)), F.lit(len(months))) + 1).cast("int"))
    rows = latest.sample(withReplacement=True, fraction=result.summary_rows_written / total, seed=SEED)
    replace_table(rows.withColumn(cfg.month, month), f"{ns}.floor_summary", partition_by=cfg.month,
                  properties=cfg.layout.properties())
    rows = latest.sample(withReplacement=False, fraction=min(1.0, result.latest_rows_written / total), seed=SEED)
    replace_table(rows, f"{ns}.floor_latest", properties=cfg.layout.properties(latest=True))
    return int(batch.count())


def _fingerprint(df: DataFrame, columns: tuple[str, ...]) -> tuple[Any, ...]:
    """Row count and the sum of a 64-bit hash of every row: equal for equal tables, and in one scan (an
    ``exceptAll`` of the two 5M-row tables of the medium profile had not finished after 17 minutes)."""
    row = df.select(F.xxhash64(*columns).cast("decimal(38,0)").alias("h")).agg(F.count(F.lit(1)), F.sum("h"))
    return tuple(row.collect()[0])


def _same(spark: SparkSession, a: PipelineConfig, b: PipelineConfig) -> bool:
    """The incremental tables equal the full rebuild's, on every column the user sees."""
    for table_a, table_b, columns in ((a.destination_table, b.destination_table, a.summary_columns),
                                      (a.latest_history_table, b.latest_history_table, a.latest_columns)):
        if _fingerprint(spark.table(table_a), columns) != _fingerprint(spark.table(table_b), columns):
            return False
    return True


def run_benchmark(spark: SparkSession, base: PipelineConfig, profile: Profile,
                  say: Callable[[str], None]) -> Report:
    """Run every phase of ``profile`` and return the report (see the module docstring)."""
    cfgs = _configs(base, profile)
    long, short, full = cfgs["long"], cfgs["short"], cfgs["full"]
    ensure_namespace(spark, long.destination_table)
    for cfg in cfgs.values():
        for table in (cfg.destination_table, cfg.latest_history_table, cfg.ledger_table, cfg.deletes_table,
                      cfg.quarantine):
            spark.sql(f"DROP TABLE IF EXISTS {table}")
    report = Report(profile=profile.name, accounts=profile.accounts, months=profile.months,
                    short_months=profile.short_months, history_length=base.history_length,
                    started_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    settings={**{k: v for k, v in spark.sparkContext.getConf().getAll()
                                 if k in ("spark.master", "spark.driver.memory", "spark.sql.shuffle.partitions")},
                              **{f"layout.{k}": str(v) for k, v in base.layout.model_dump().items()}})
    memory = _Memory(spark)
    quiet: Callable[[str], None] = lambda _line: None  # noqa: E731 - the runs' own progress lines are not wanted

    def measure(name: str, unit: str, body: Callable[[], int | RunResult]) -> Phase:
        say(f"  {name} ...")
        memory.reset()
        start = time.monotonic()
        out = body()
        seconds = round(time.monotonic() - start, 2)
        if isinstance(out, RunResult):
            rows = out.summary_rows_written if unit == "summary rows" else out.source_rows
            phase = Phase(name, seconds, rows, unit, memory.peak_mib(), dict(out.timings))
        else:
            phase = Phase(name, seconds, out, unit, memory.peak_mib())
        report.phases.append(phase)
        say(f"  {name}: {phase.seconds:.1f} s, {phase.rows:,} {unit} ({phase.per_second:,.0f}/s)")
        return phase

    start_long = f"{2025 - (profile.months - 1) // 12:04d}-{12 - (profile.months - 1) % 12:02d}"
    say(f"Generating {profile.accounts:,} accounts x {profile.months} months of source versions")
    history = generate_versions(spark, accounts=profile.accounts, start_month=start_long, end_month=END_MONTH,
                                seed=SEED)
    _write_source(spark, long.source_table, history)
    short_start = month_index(F.lit(END_MONTH)) - (profile.short_months - 1)
    _write_source(spark, short.source_table,
                  spark.table(long.source_table).where(month_index(F.col("rpt_as_of_mo")) >= short_start))

    initial = RunOptions(mode="initial")
    # The short build runs first: it also warms the JVM (JIT, code generation), which a cluster amortises over
    # hours of work but which would otherwise dominate the first small phase measured here.
    measure("initial (30 months)", "summary rows", lambda: run(spark, short, initial, progress=quiet))
    measure("initial (120 months)", "summary rows", lambda: run(spark, long, initial, progress=quiet))

    watermark = read_watermark(spark, long)
    assert watermark is not None
    at = watermark + dt.timedelta(days=30)
    say("Generating the batch")
    batch = make_batch(spark, spark.table(long.source_table), profile.accounts, at)
    batch_table = f"{long.source_table}_batch"
    _write_source(spark, batch_table, batch)
    _write_source(spark, long.source_table, spark.table(batch_table), append=True)
    _write_source(spark, short.source_table, spark.table(batch_table), append=True)
    batch_months = sorted({int(r[0]) for r in spark.table(batch_table)
                           .select(month_index(F.col("rpt_as_of_mo"))).distinct().collect()} - {2026 * 12})

    incremental = RunOptions(mode="incremental")
    results: dict[str, RunResult] = {}

    def inc(cfg: PipelineConfig, key: str) -> RunResult:
        results[key] = run(spark, cfg, incremental, progress=quiet)
        return results[key]

    # Warm the incremental code paths too, as the short build warmed the initial ones: otherwise the first run
    # measured pays for them and the second does not (a dry run reads, classifies and rebuilds, writes nothing).
    say("  warm-up: a dry run of the 30-month incremental")
    run(spark, short, RunOptions(mode="incremental", dry_run=True), progress=quiet)
    t_inc = measure("incremental (120 months)", "batch records", lambda: inc(long, "long"))
    t_short = measure("incremental (30 months)", "batch records", lambda: inc(short, "short"))
    t_full = measure("full rebuild (120 months)", "summary rows", lambda: run(spark, full, initial, progress=quiet))
    t_floor = measure("I/O floor (120 months)", "batch records",
                      lambda: _floor(spark, long, watermark, batch_months, results["long"]))

    t_initial = report.phase("initial (120 months)")
    report.ratios = {
        "full_over_incremental": round(t_full.seconds / t_inc.seconds, 2),
        "incremental_120_over_30": round(t_inc.seconds / t_short.seconds, 2),
        "incremental_over_floor": round(t_inc.seconds / t_floor.seconds, 2),
        "initial_summary_rows_per_second": round(t_initial.per_second, 1),
    }
    say("Checking the incremental result against the full rebuild")
    report.checks = {"incremental_equals_full_rebuild": _same(spark, long, full)}
    return report


def meets(name: str, value: float) -> bool:
    """Whether a ratio meets its target."""
    op, target = TARGETS[name]
    return value >= target if op == ">=" else value <= target


def write_json(report: Report, path: Path) -> None:
    """Write the report as JSON (the figures behind docs/PERFORMANCE.md)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.as_dict(), indent=2, sort_keys=True))
