"""The benchmark (issues 5 and 14): what a run costs, measured on this machine, as ratios that travel to a cluster.

One call builds two histories of the same accounts (the profile's long and short depths, 120 and 30 months for
most profiles), runs an *initial floor* job beside the long build (its reads and writes, with no logic), applies
the same batch (production's shape or the seed's: :mod:`summary_pipeline.tools.workloads`) to both with
``incremental`` (after a dry run that warms the JVM for it), rebuilds the long state from scratch, and runs an
*I/O floor* job that reads and writes the volumes the incremental run had to, with no logic. It reports, all
from that one call:

* initial build time and summary rows/s, and ``T_initial / T_initial_floor``;
* incremental time and batch records/s, at both depths;
* ``T_full`` (full rebuild of the final state) and ``T_floor``, and the ratios against ``T_incremental``;
* per phase, the JVM's peak heap use (from its memory pools, reset between phases) and Spark's job count.

A call with ``reuse`` on the tables an earlier call of the profile kept generates and builds nothing: it rolls
both incremental runs back and measures again only the phases asked for, so that a change is measured in
minutes. Phases not measured are absent from its report, and so are the ratios that need them.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Callable, Collection, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from summary_pipeline.config import PipelineConfig
from summary_pipeline.core.prepare import month_index
from summary_pipeline.errors import SummaryPipelineError
from summary_pipeline.metrics import job_group, spark_figures
from summary_pipeline.result import RunOptions, RunResult
from summary_pipeline.runner import new_result, run
from summary_pipeline.sql_text import sql_table
from summary_pipeline.store.ledger import ledger_rows
from summary_pipeline.store.protocol import rollback
from summary_pipeline.store.tables import ensure_namespace, table_exists
from summary_pipeline.tools.floors import initial_floor, io_floor
from summary_pipeline.tools.generate import create_source_table, generate_versions
from summary_pipeline.tools.workloads import BATCHES, END_MONTH, NEXT_MONTH, SEED

__all__ = ["PHASES", "PROFILES", "TARGETS", "Phase", "Profile", "Report", "meets", "run_benchmark", "write_json"]


@dataclass(frozen=True)
class Profile:
    """A benchmark size: accounts, the long and short history depths compared, and the batch's shape."""

    name: str
    accounts: int
    driver_memory: str
    months: int = 120
    short_months: int = 30
    #: Which of :data:`~summary_pipeline.tools.workloads.BATCHES` the incremental runs apply.
    batch: str = "production"


PROFILES = {
    "small": Profile("small", 2_000, "2g"),
    "medium": Profile("medium", 50_000, "2g"),
    "large": Profile("large", 250_000, "16g"),
    # The seed project's own test shape (issue 14, goal 5).
    "seed": Profile("seed", 20_000, "2g", months=48, batch="seed"),
}

#: What a call can measure (``--phases``): the two initial builds, the initial floor, the two incremental runs,
#: the full rebuild, the I/O floor.
PHASES = ("initial", "initial-floor", "incremental", "full", "floor")


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
    #: The Spark jobs the phase started (for a pipeline run, every job of its job group).
    spark_jobs: int | None = None

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
    #: Whether the call measured again on the tables an earlier call kept (``--reuse``).
    reused: bool = False
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
    "initial_over_floor": ("<=", 1.5),
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


def _write_source(spark: SparkSession, table: str, df: DataFrame, append: bool = False) -> int:
    create_source_table(spark, table)
    if not append:
        spark.sql(f"DELETE FROM {sql_table(table)}")
    df.writeTo(table).append()
    return int(spark.table(table).count())


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


def _drop(spark: SparkSession, cfgs: Iterable[PipelineConfig]) -> None:
    """Drop the tables of each config (not their source)."""
    for cfg in cfgs:
        for table in (cfg.destination_table, cfg.latest_history_table, cfg.ledger_table, cfg.deletes_table,
                      cfg.quarantine):
            spark.sql(f"DROP TABLE IF EXISTS {sql_table(table)}")


def _last_run(spark: SparkSession, cfg: PipelineConfig, mode: str) -> dict[str, Any]:
    """The ledger row of the latest succeeded ``mode`` run on ``cfg``'s tables ({} when there is none): what a
    phase on kept tables needs of the runs it does not repeat (watermarks, rows written)."""
    rows = [r for r in ledger_rows(spark, cfg.ledger_table, status="succeeded") if r["mode"] == mode]
    return rows[-1] if rows else {}


def _kept(spark: SparkSession, cfgs: Iterable[PipelineConfig], batch_table: str) -> bool:
    """Whether an earlier call left what a call with ``reuse`` starts from: the batch, and both table sets with
    a succeeded initial and incremental run in their ledgers."""
    return table_exists(spark, batch_table) and all(
        _last_run(spark, cfg, mode) for cfg in cfgs for mode in ("initial", "incremental"))


def _roll_back(spark: SparkSession, cfg: PipelineConfig, say: Callable[[str], None]) -> None:
    """Undo the latest incremental run on ``cfg``'s tables, as ``summary-pipeline rollback`` does."""
    run_id = str(_last_run(spark, cfg, "incremental")["run_id"])
    rollback(spark, cfg, new_result("rollback", cfg, {"run_id": run_id, "force": False}), run_id, False, say)


def _jobs(spark: SparkSession, *run_ids: str) -> int:
    """How many Spark jobs the job groups of ``run_ids`` started."""
    return sum(spark_figures(spark, run_id).get("spark_jobs", 0) for run_id in run_ids)


def _ratios(report: Report, long: str, short: str) -> dict[str, float]:
    """Every ratio whose phases the call measured (``long`` and ``short`` label the two depths)."""
    seconds = {p.name: p.seconds for p in report.phases}
    pairs = {
        "full_over_incremental": (f"full rebuild {long}", f"incremental {long}"),
        "incremental_120_over_30": (f"incremental {long}", f"incremental {short}"),
        "incremental_over_floor": (f"incremental {long}", f"I/O floor {long}"),
        "initial_over_floor": (f"initial {long}", f"initial floor {long}"),
    }
    ratios = {name: round(seconds[a] / seconds[b], 2) for name, (a, b) in pairs.items()
              if seconds.get(a) and seconds.get(b)}
    if f"initial {long}" in seconds:
        ratios["initial_summary_rows_per_second"] = round(report.phase(f"initial {long}").per_second, 1)
    return ratios


def run_benchmark(spark: SparkSession, base: PipelineConfig, profile: Profile, say: Callable[[str], None], *,
                  reuse: bool = False, phases: Collection[str] | None = None) -> Report:
    """Run ``profile``'s phases and return the report (see the module docstring).

    ``phases`` (names from :data:`PHASES`; all when None) says what to measure. A call from scratch always
    runs the initial builds and the incremental runs, which every other phase needs. With ``reuse``, when an
    earlier call's tables are in place (else the call starts from scratch), nothing is generated or built: the
    incremental runs are rolled back and run again. The initial builds cannot be measured then, as the source
    already holds the batch.
    """
    cfgs = _configs(base, profile)
    long, short, full = cfgs["long"], cfgs["short"], cfgs["full"]
    batch_table = f"{long.source_table}_batch"
    ensure_namespace(spark, long.destination_table)
    kept = reuse and _kept(spark, (long, short), batch_table)
    if kept and phases is not None and "initial" in phases:
        raise SummaryPipelineError("the initial builds cannot be measured again on kept tables (their source "
                                   "already holds the batch): leave initial out of --phases, or drop --reuse")
    if reuse and not kept:
        say(f"No tables of an earlier {profile.name} call to reuse (a batch, and ledgers with a succeeded "
            "initial and incremental run): starting from scratch")
    wanted = set(phases or PHASES)
    if not kept:
        wanted |= {"initial", "incremental"}  # from scratch, every other phase needs them
    report = Report(profile=profile.name, accounts=profile.accounts, months=profile.months,
                    short_months=profile.short_months, history_length=base.history_length,
                    started_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), reused=kept,
                    settings={**{k: v for k, v in spark.sparkContext.getConf().getAll()
                                 if k in ("spark.master", "spark.driver.memory", "spark.sql.shuffle.partitions")},
                              **{f"layout.{k}": str(v) for k, v in base.layout.model_dump().items()}})
    memory = _Memory(spark)
    quiet: Callable[[str], None] = lambda _line: None  # noqa: E731 - the runs' own progress lines are not wanted

    def measure(name: str, unit: str, body: Callable[[], int | RunResult]) -> Phase:
        say(f"  {name} ...")
        memory.reset()
        group = f"benchmark-{uuid.uuid4().hex[:16]}"
        start = time.monotonic()
        with job_group(spark, group, name):
            out = body()
        seconds = round(time.monotonic() - start, 2)
        peak = memory.peak_mib()
        if isinstance(out, RunResult):
            rows = out.summary_rows_written if unit == "summary rows" else out.source_rows
            phase = Phase(name, seconds, rows, unit, peak, dict(out.timings), _jobs(spark, group, out.run_id))
        else:
            phase = Phase(name, seconds, out, unit, peak, spark_jobs=_jobs(spark, group))
        report.phases.append(phase)
        say(f"  {name}: {phase.seconds:.1f} s, {phase.rows:,} {unit} ({phase.per_second:,.0f}/s)")
        return phase

    deep, shallow = f"({profile.months} months)", f"({profile.short_months} months)"  # the phases' labels
    initial = RunOptions(mode="initial")
    if not kept:
        _drop(spark, cfgs.values())
        start_long = f"{2025 - (profile.months - 1) // 12:04d}-{12 - (profile.months - 1) % 12:02d}"
        say(f"Generating {profile.accounts:,} accounts x {profile.months} months of source versions")
        history = generate_versions(spark, accounts=profile.accounts, start_month=start_long, end_month=END_MONTH,
                                    seed=SEED)
        _write_source(spark, long.source_table, history)
        short_start = month_index(F.lit(END_MONTH)) - (profile.short_months - 1)
        _write_source(spark, short.source_table,
                      spark.table(long.source_table).where(month_index(F.col("rpt_as_of_mo")) >= short_start))
        # The short build runs first: it also warms the JVM (JIT, code generation), which a cluster amortises
        # over hours of work but which would otherwise dominate the first small phase measured here.
        measure(f"initial {shallow}", "summary rows", lambda: run(spark, short, initial, progress=quiet))
        measure(f"initial {deep}", "summary rows", lambda: run(spark, long, initial, progress=quiet))

    built = _last_run(spark, long, "initial")
    if "initial-floor" in wanted:
        read = spark.table(long.source_table).where(F.col(long.ts) <= F.lit(built["watermark_committed"]))
        versions = read.count()
        measure(f"initial floor {deep}", "summary rows",
                lambda: initial_floor(long, read, int(built["summary_rows_written"]), versions))

    if not kept:
        say("Generating the batch")
        at = built["watermark_committed"] + dt.timedelta(days=30)
        _write_source(spark, batch_table,
                      BATCHES[profile.batch](spark, spark.table(long.source_table), profile.accounts, at))
        _write_source(spark, long.source_table, spark.table(batch_table), append=True)
        _write_source(spark, short.source_table, spark.table(batch_table), append=True)
    # The months the batch corrects or adds history to (its forward months, NEXT_MONTH on, have no window).
    batch_months = sorted(int(r[0]) for r in spark.table(batch_table).where(F.col("rpt_as_of_mo") < NEXT_MONTH)
                          .select(month_index(F.col("rpt_as_of_mo"))).distinct().collect())

    if "incremental" in wanted:
        if kept:
            say("  rolling back the incremental runs of the earlier call")
            _roll_back(spark, long, quiet)
            _roll_back(spark, short, quiet)
        # Warm the incremental code paths too, as the short build warmed the initial ones: otherwise the first
        # run measured pays for them and the second does not (a dry run reads, classifies and rebuilds, writes
        # nothing).
        say(f"  warm-up: a dry run of the {profile.short_months}-month incremental")
        run(spark, short, RunOptions(mode="incremental", dry_run=True), progress=quiet)
        incremental = RunOptions(mode="incremental")
        measure(f"incremental {deep}", "batch records", lambda: run(spark, long, incremental, progress=quiet))
        measure(f"incremental {shallow}", "batch records", lambda: run(spark, short, incremental, progress=quiet))
    if "full" in wanted:
        _drop(spark, [full])
        measure(f"full rebuild {deep}", "summary rows", lambda: run(spark, full, initial, progress=quiet))
    if "floor" in wanted:
        applied = _last_run(spark, long, "incremental")
        measure(f"I/O floor {deep}", "batch records",
                lambda: io_floor(spark, long, applied["watermark_read"], batch_months,
                                 int(applied["summary_rows_written"]), int(applied["latest_rows_written"])))

    report.ratios = _ratios(report, deep, shallow)
    if wanted & {"incremental", "full"} and table_exists(spark, full.destination_table):
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
