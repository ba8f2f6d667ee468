"""SLOs on crafted data, through the real metric definitions, and their history across publishes."""

from datetime import date, datetime, timedelta, timezone

import pyarrow as pa
import pytest
import yaml
from dagster import FreshnessPolicy

from platform_resources import metrics, slo
from platform_resources.manifest import OutputPort

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


def port(slos: dict, actual_time: str = "order_date") -> OutputPort:
    return OutputPort.model_validate(yaml.safe_load(f"""
        name: orders
        description: Orders.
        visibility: public
        actual_time: {actual_time}
        slos: {slos!r}
        contract:
          primary_key: [id]
          columns:
            - {{name: id, type: bigint, description: Key., classification: public, nullable: false}}
            - {{name: order_date, type: date, description: When., classification: public}}
            - {{name: note, type: varchar, description: Note., classification: internal}}
        """.replace("'", '"')))


def orders(days_old: list[int], notes: list[str | None] | None = None) -> pa.Table:
    n = len(days_old)
    return pa.table({"id": pa.array(range(n), pa.int64()),
                     "order_date": pa.array([(NOW - timedelta(days=d)).date() for d in days_old], pa.date32()),
                     "note": notes if notes is not None else ["x"] * n})


def results(p: OutputPort, data: pa.Table, previous: dict | None = None, inputs: dict | None = None) -> dict:
    measured = slo.measure(p, data, NOW, previous, inputs)
    return {r.name: r for r in slo.evaluate(p, measured)}


def test_late_data_breaches_timeliness():
    p = port({"timeliness": {"max_delay": "2d", "severity": "error"}})
    assert results(p, orders([0, 1]))["slo_timeliness"].passed
    late = results(p, orders([5, 9]))["slo_timeliness"]
    assert not late.passed and late.severity == "error" and "5 d 12 h" in late.summary  # 5 days + noon


def test_nulls_breach_completeness():
    p = port({"completeness": {"columns": {"note": 0.9}}})
    assert results(p, orders([0] * 10, ["x"] * 10))["slo_completeness"].passed
    breach = results(p, orders([0] * 10, ["x"] * 8 + [None] * 2))["slo_completeness"]
    assert not breach.passed and breach.severity == "warning" and "note: 80.0% non-null < 90.0%" in breach.summary


def test_rows_against_an_input_port_breach_completeness():
    p = port({"completeness": {"rows_vs_input": {"input_port": "raw", "min_ratio": 0.5}}})
    assert results(p, orders([0] * 6), inputs={"raw": 10})["slo_completeness"].passed
    assert not results(p, orders([0] * 4), inputs={"raw": 10})["slo_completeness"].passed
    small = port({"completeness": {"rows_vs_input": {"input_port": "raw", "min_ratio": 0.0001}}})
    tiny = results(small, orders([0] * 10), inputs={"raw": 1_500_000})["slo_completeness"]  # digits kept, not "0.0%"
    assert not tiny.passed and tiny.summary == "10 rows are 0.00067% of input port raw's rows (minimum 0.01%)"


def test_an_empty_publish_and_a_jump_breach_volume():
    p = port({"volume": {"min_rows": 1, "max_change": 0.5, "severity": "error"}})
    assert "0 rows < minimum 1" in results(p, orders([]))["slo_volume"].summary
    previous = {"processing_time": (NOW - timedelta(hours=1)).isoformat(), "metrics": {"row_count": 10}}
    assert results(p, orders([0] * 12), previous)["slo_volume"].passed
    jump = results(p, orders([0] * 30), previous)["slo_volume"]
    assert not jump.passed and "+200.0%" in jump.summary


def test_temporality_metrics():
    previous = {"processing_time": (NOW - timedelta(hours=2)).isoformat(),
                "metrics": {"row_count": 2, "epoch_processing_time": "2026-01-01T00:00:00+00:00",
                            "epoch_actual_time": "2020-01-01T00:00:00+00:00"}}
    measured = slo.measure(port({}), orders([1, 3]), NOW, previous)
    assert measured["epoch_processing_time"] == "2026-01-01T00:00:00+00:00"
    assert measured["epoch_actual_time"] == "2020-01-01T00:00:00+00:00"  # the epoch only moves back
    assert measured["last_actual_time"] == datetime.combine(date(2026, 11, 24), datetime.min.time(), timezone.utc).isoformat()
    assert measured["processing_interval_seconds"] == 7200
    assert measured["timeliness_seconds"] == 36 * 3600
    snapshot = slo.measure(port({}, actual_time="snapshot"), orders([1]), NOW, None)
    assert snapshot["timeliness_seconds"] == 0 and snapshot["epoch_processing_time"] == NOW.isoformat()


def test_metric_history_is_kept_per_processing_time(fresh_home):
    for hour, rows in enumerate([10, 12, 0]):
        when = NOW + timedelta(hours=hour)
        p = port({"volume": {"min_rows": 1}})
        measured = slo.measure(p, orders([0] * rows), when, metrics.latest("a.b.c"))
        metrics.record("a.b.c", when, slo.as_record(measured, slo.evaluate(p, measured)))
    history = metrics.history("a.b.c")
    assert [r["metrics"]["row_count"] for r in history] == [10, 12, 0]
    assert [r["metrics"]["processing_interval_seconds"] for r in history] == [None, 3600, 3600]
    assert [r["slos"][0]["passed"] for r in history] == [True, True, False]
    assert metrics.history("x.y.z") == []


def test_freshness_is_a_dagster_freshness_policy():
    from platform_resources.manifest import Freshness

    assert slo.freshness_policy(Freshness(max_age="26h", warn_after="12h")) == FreshnessPolicy.time_window(
        fail_window=timedelta(hours=26), warn_window=timedelta(hours=12))
    assert slo.freshness_policy(Freshness(cron="0 6 * * *", cron_window="2h")) is not None
    with pytest.raises(ValueError, match="give exactly one"):
        Freshness(max_age="1h", cron="0 6 * * *")


def test_freshness_status_by_max_age_and_by_cron_deadline():
    from platform_resources.manifest import Freshness

    aged = port({})
    aged.freshness = Freshness(max_age="26h", warn_after="12h")
    assert slo.freshness_status(aged, NOW - timedelta(hours=2), NOW).passed
    warn = slo.freshness_status(aged, NOW - timedelta(hours=13), NOW)
    assert (warn.passed, warn.severity) == (False, "warning")
    stale = slo.freshness_status(aged, NOW - timedelta(hours=30), NOW)
    assert (stale.passed, stale.severity) == (False, "error")
    assert not slo.freshness_status(aged, None, NOW).passed
    daily = port({})
    daily.freshness = Freshness(cron="0 6 * * *", cron_window="2h")  # published between 04:00 and 06:00 each day
    assert slo.freshness_status(daily, NOW.replace(hour=5), NOW).passed
    assert not slo.freshness_status(daily, NOW.replace(hour=3), NOW).passed


def test_every_slo_check_carries_its_observed_value_and_threshold_as_numbers():
    p = port({"timeliness": {"max_delay": "2d"}, "completeness": {"columns": {"note": 0.9}},
              "volume": {"min_rows": 1, "max_rows": 100, "max_change": 0.5}})
    checked = results(p, orders([5, 1, 1, 1, 1], notes=["x", None, "x", "x", "x"]),
                      previous={"metrics": {"row_count": 10}})
    assert checked["slo_timeliness"].metadata == {"timeliness_seconds": 86400 + 12 * 3600,  # the newest row, a day old
                                                  "max_delay_seconds": 2 * 86400}
    assert checked["slo_completeness"].metadata == {"note_non_null_share": 0.8, "note_min_share": 0.9}
    assert checked["slo_volume"].metadata == {"row_count": 5, "min_rows": 1, "max_rows": 100,
                                              "row_count_change": -0.5, "max_change": 0.5}
    assert all(isinstance(v, float) for r in checked.values() for v in r.metadata.values())  # plotted by Dagster
    assert "metadata" not in slo.as_record({}, list(checked.values()))["slos"][0]  # the history keeps its shape


def test_durations_read_the_way_people_say_them():
    assert [slo.duration_text(s) for s in (104.036968, 59.4, 3725, 3 * 86400 + 4 * 3600 + 5, None)] == \
        ["1 min 44 s", "59 s", "1 h 2 min", "3 d 4 h", None]
