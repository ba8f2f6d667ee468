"""SLOs and metrics of output ports: the definitions are global (here), the thresholds local (each manifest).

At every publish the platform measures temporality (epoch, last processing and actual time, processing
interval, timeliness) and quality (completeness, volume), evaluates the port's SLOs on them, and keeps the
record per processing time (platform_resources.metrics). Freshness is Dagster's FreshnessPolicy.
"""

from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timezone

import pyarrow as pa
from dagster import FreshnessPolicy

from platform_resources.manifest import Freshness, OutputPort
from platform_resources.staged import Staged, staged

SLO_CHECKS = {
    "slo_timeliness": "Timeliness SLO: the newest actual time in the data is at most max_delay before the processing time.",
    "slo_completeness": "Completeness SLO: non-null shares of the chosen columns, and rows against an input port.",
    "slo_volume": "Volume SLO: row count within bounds, and its change against the previous publish.",
}


def freshness_policy(freshness: Freshness | None) -> FreshnessPolicy | None:
    if freshness is None:
        return None
    if freshness.cron:
        return FreshnessPolicy.cron(deadline_cron=freshness.cron, timezone=freshness.cron_timezone,
                                    lower_bound_delta=Freshness.to_timedelta(freshness.cron_window))
    return FreshnessPolicy.time_window(
        fail_window=Freshness.to_timedelta(freshness.max_age),
        warn_window=freshness.warn_after and Freshness.to_timedelta(freshness.warn_after))


@dataclass
class SloResult:
    name: str
    passed: bool
    severity: str
    summary: str
    # The observed values and their thresholds, numeric so the check's page in Dagster plots them over publishes.
    metadata: dict[str, float] = field(default_factory=dict)


def _as_datetime(value) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, date):
        return datetime.combine(value, time.min, tzinfo=timezone.utc)
    return None


def measure(port: OutputPort, data: Staged | pa.Table, processing_time: datetime, previous: dict | None,
            input_rows: dict[str, int] | None = None, retained: list[dict] | None = None,
            total_rows: int | None = None) -> dict:
    """The metrics of one publish. `previous` is the port's last record (metrics.latest), if any. `retained`: the
    records of the older versions the port still keeps, when a retention has expired some; the epoch is then theirs
    (without it the epoch only moves back, every version being kept). `total_rows`: a publish of some partitions
    only (`data`), after which the port serves that many rows; volume and actual times are the port's, not the
    partitions'."""
    data = staged(data)
    before = (previous or {}).get("metrics", {})
    rows = data.num_rows if total_rows is None else total_rows
    if port.actual_time == "snapshot":
        earliest_actual = latest_actual = processing_time  # a snapshot is the state as of its processing time
    else:
        earliest_actual, latest_actual = map(_as_datetime, data.extremes(port.actual_time))
        if total_rows is not None:  # the other partitions still serve their facts
            earliest_actual = min(filter(None, [earliest_actual, _parse(before.get("earliest_actual_time"))]), default=None)
            latest_actual = max(filter(None, [latest_actual, _parse(before.get("last_actual_time"))]), default=None)
    epoch_processing = before.get("epoch_processing_time") or processing_time.isoformat()
    epoch_actual = min(filter(None, [earliest_actual, _as_datetime(_parse(before.get("epoch_actual_time")))]), default=None)
    if retained is not None:
        epoch_processing = min([processing_time, *(_parse(r["processing_time"]) for r in retained)]).isoformat()
        # A record from before earliest_actual_time was measured gives its own epoch: never later than the truth.
        epoch_actual = min(filter(None, [earliest_actual, *(_parse(r["metrics"].get("earliest_actual_time")
                                                                   or r["metrics"].get("epoch_actual_time"))
                                                            for r in retained)]), default=None)
    last_pt = _parse((previous or {}).get("processing_time"))
    metrics = {
        "row_count": rows,
        "row_count_change": (rows - before["row_count"]) / before["row_count"] if before.get("row_count") else None,
        "completeness": {name: (1 - data.null_count(name) / data.num_rows) if data.num_rows else None
                         for name in data.column_names},
        "epoch_processing_time": epoch_processing,
        "epoch_actual_time": epoch_actual.isoformat() if epoch_actual else None,
        "earliest_actual_time": earliest_actual.isoformat() if earliest_actual else None,  # of this version alone
        "last_processing_time": processing_time.isoformat(),
        "last_actual_time": latest_actual.isoformat() if latest_actual else None,
        "processing_interval_seconds": (processing_time - last_pt).total_seconds() if last_pt else None,
        "timeliness_seconds": (processing_time - latest_actual).total_seconds() if latest_actual else None,
    }
    if port.slos.completeness and port.slos.completeness.rows_vs_input and input_rows is not None:
        upstream = input_rows.get(port.slos.completeness.rows_vs_input.input_port)
        metrics["rows_vs_input"] = rows / upstream if upstream else None
    return metrics


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def evaluate(port: OutputPort, metrics: dict) -> list[SloResult]:
    """Each declared SLO against this publish's metrics."""
    results = []
    slos = port.slos
    if slos.timeliness:
        results.append(_timeliness(slos.timeliness, metrics))
    if slos.completeness:
        results.append(_completeness(slos.completeness, metrics))
    if slos.volume:
        results.append(_volume(slos.volume, metrics))
    return results


def _timeliness(timeliness, metrics: dict) -> SloResult:
    limit = Freshness.to_timedelta(timeliness.max_delay).total_seconds()
    gap = metrics["timeliness_seconds"]
    passed = gap is not None and gap <= limit
    summary = (f"newest actual time is {duration_text(gap)} before the processing time (limit {timeliness.max_delay})"
               if gap is not None else "no actual time in the data")
    observed = {"timeliness_seconds": float(gap)} if gap is not None else {}
    return SloResult("slo_timeliness", passed, timeliness.severity, summary,
                     {**observed, "max_delay_seconds": float(limit)})


def _share(value: float) -> str:
    """A share as a percentage that never rounds a small one to 0.0% (0.00067%, not 0.0%)."""
    return f"{value:.1%}" if value == 0 or value >= 0.001 else f"{value * 100:.2g}%"


def _completeness(completeness, metrics: dict) -> SloResult:
    shares = {c: metrics["completeness"].get(c) or 0 for c in completeness.columns}
    problems = [f"{c}: {shares[c]:.1%} non-null < {share:.1%}" for c, share in completeness.columns.items()
                if shares[c] < share]
    metadata = {}
    for column, share in completeness.columns.items():
        metadata[f"{column}_non_null_share"] = float(shares[column])
        metadata[f"{column}_min_share"] = float(share)
    ratio = completeness.rows_vs_input
    if ratio:
        observed = metrics.get("rows_vs_input") or 0
        metadata.update({"rows_vs_input": float(observed), "rows_vs_input_min_ratio": float(ratio.min_ratio)})
        if observed < ratio.min_ratio:
            problems.append(f"{metrics['row_count']:,} rows are {_share(observed)} of input port {ratio.input_port}'s "
                            f"rows (minimum {_share(ratio.min_ratio)})")
    return SloResult("slo_completeness", not problems, completeness.severity, "; ".join(problems) or "complete", metadata)


def _volume(volume, metrics: dict) -> SloResult:
    rows, change = metrics["row_count"], metrics["row_count_change"]
    problems = []
    if volume.min_rows is not None and rows < volume.min_rows:
        problems.append(f"{rows} rows < minimum {volume.min_rows}")
    if volume.max_rows is not None and rows > volume.max_rows:
        problems.append(f"{rows} rows > maximum {volume.max_rows}")
    if volume.max_change is not None and change is not None and abs(change) > volume.max_change:
        problems.append(f"row count changed {change:+.1%} since the previous publish (limit ±{volume.max_change:.0%})")
    metadata = {"row_count": float(rows)}
    for name, value in (("min_rows", volume.min_rows), ("max_rows", volume.max_rows), ("row_count_change", change),
                        ("max_change", volume.max_change)):
        if value is not None:
            metadata[name] = float(value)
    return SloResult("slo_volume", not problems, volume.severity, "; ".join(problems) or f"{rows} rows", metadata)


def duration_text(seconds: float | None) -> str | None:
    """A duration the way people say it: "1 min 44 s", "2 h 5 min", "3 d 4 h" (the two largest units)."""
    if seconds is None:
        return None
    sign, left = ("-" if seconds < 0 else ""), abs(seconds)
    if left < 60:
        return f"{sign}{left:.0f} s" if left >= 1 or left == 0 else f"{sign}{left:.2f} s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        amount = int(left // size)
        if amount or parts:
            parts.append((amount, unit))
        left -= amount * size
    shown = [f"{amount} {unit}" for amount, unit in parts[:2] if amount]
    return sign + " ".join(shown)


def as_record(metrics: dict, results: list[SloResult]) -> dict:
    """The history's record of one publish (the check metadata is Dagster's, not part of it)."""
    return {"metrics": metrics, "slos": [{k: v for k, v in asdict(r).items() if k != "metadata"} for r in results]}


def freshness_status(port: OutputPort, last_processing_time: datetime | None, now: datetime) -> SloResult | None:
    """Is the port fresh now? The same rule Dagster's FreshnessPolicy applies, for reports outside the UI."""
    freshness = port.freshness
    if freshness is None:
        return None
    if last_processing_time is None:
        return SloResult("freshness", False, "error", "never published")
    if freshness.cron:
        from dagster._utils.schedules import reverse_cron_string_iterator  # Dagster's own cron arithmetic

        tick = next(reverse_cron_string_iterator(now.timestamp(), freshness.cron, freshness.cron_timezone))
        due_after = tick - Freshness.to_timedelta(freshness.cron_window)
        passed = last_processing_time >= due_after
        return SloResult("freshness", passed, "error",
                         f"last publish {last_processing_time.isoformat()}, due after {due_after.isoformat()} for the "
                         f"{tick.isoformat()} deadline")
    age = now - last_processing_time
    if age <= Freshness.to_timedelta(freshness.max_age):
        severity, passed = "warning", not (freshness.warn_after and age > Freshness.to_timedelta(freshness.warn_after))
    else:
        severity, passed = "error", False
    return SloResult("freshness", passed, severity, f"last publish {age.total_seconds() / 3600:.1f} h ago "
                                                      f"(max age {freshness.max_age})")
