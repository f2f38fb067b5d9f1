"""Bad source rows (SPEC 9): quarantined with their reason, once each; a threshold stops the run before writing."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import SparkSession

from factories import load_source, new_config, reference_raw, version
from summary_pipeline.errors import RejectThresholdError
from summary_pipeline.result import RunOptions
from summary_pipeline.runner import run
from summary_pipeline.store.ledger import ledger_rows
from summary_pipeline.store.tables import table_exists

pytestmark = pytest.mark.spark


def _bad_rows() -> list[dict[str, object]]:
    return [
        version(None, "2026-01", 1),  # type: ignore[arg-type]
        version(1, "2026-13", 1),
        version(1, "26-01", 1),
        version(1, "", 1),
        {**version(1, "2026-01", 1), "rpt_as_of_mo": None},
        {**version(1, "2026-02", 1), "base_ts": None},
        version(2, "2026-01", 1, asset_class_cd_4in="S"),  # does not fit Integer (see the config below)
    ]


def _config():  # type: ignore[no-untyped-def]
    raw = reference_raw()
    rolling = next(r for r in raw["rolling_columns"] if r["name"] == "asset_class_cd")
    rolling["type"] = "Integer"
    return new_config(rolling_columns=raw["rolling_columns"])


@pytest.mark.slow
def test_each_kind_of_bad_row_is_quarantined_once(spark: SparkSession) -> None:
    cfg = _config()
    good = version(3, "2026-01", 5, asset_class_cd_4in="01")
    load_source(spark, cfg, [*_bad_rows(), good])
    result = run(spark, cfg, RunOptions(mode="initial"))
    assert result.rejected == {
        "NULL cons_acct_key": 1,
        "malformed rpt_as_of_mo '2026-13'": 1,
        "malformed rpt_as_of_mo '26-01'": 1,
        "malformed rpt_as_of_mo ''": 1,
        "NULL rpt_as_of_mo": 1,
        "NULL base_ts": 1,
        "value does not fit rolling column asset_class_cd (Integer)": 1,
    }
    assert {r["cons_acct_key"] for r in spark.table(cfg.destination_table).collect()} == {3}
    assert ledger_rows(spark, cfg.ledger_table)[-1]["rejected_rows"] == 7
    run(spark, cfg, RunOptions(mode="initial", replace=True))  # the same rows rejected again
    rows = spark.table(cfg.quarantine).collect()
    assert len(rows) == 7
    assert {r["reject_reason"] for r in rows} == set(result.rejected)
    assert all(r["acct_bal_am"] == 1 for r in rows)  # the raw source row is kept as it came


def test_threshold_stops_before_writing(spark: SparkSession) -> None:
    cfg = _config().model_copy(update={"max_rejected_rows": 1})
    good = version(3, "2026-01", 5, ts=dt.datetime(2026, 1, 1), asset_class_cd_4in="01")
    load_source(spark, cfg, [*_bad_rows(), good])
    with pytest.raises(RejectThresholdError) as err:
        run(spark, cfg, RunOptions(mode="initial"))
    message = str(err.value)
    assert message.startswith("7 of 8 source rows were rejected (NULL base_ts: 1, NULL cons_acct_key: 1,")
    assert "nothing was written to" in message and "max_rejected_rows=1" in message
    assert not table_exists(spark, cfg.destination_table) and not table_exists(spark, cfg.latest_history_table)
    assert spark.table(cfg.quarantine).count() == 7
    assert err.value.exit_code == 1
    row = ledger_rows(spark, cfg.ledger_table)[-1]  # the run is in the ledger, failed, with its counts
    assert (row["status"], row["rejected_rows"], row["source_rows"]) == ("failed", 7, 8)
    assert row["error"].startswith("7 of 8 source rows were rejected")
