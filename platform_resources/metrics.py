"""The history of every port's metrics, one record per processing time, kept under the mesh home."""

import json
import sqlite3
from contextlib import closing
from datetime import datetime

from platform_resources.home import connect_store


def _connect() -> sqlite3.Connection:
    return connect_store("metrics.sqlite", "create table if not exists port_metrics (port_id text not null, "
                         "processing_time text not null, record text not null, primary key (port_id, processing_time))")


def record(port_id: str, processing_time: datetime, metrics: dict) -> None:
    """Store what one publish measured (metrics and SLO results) under its processing time."""
    with closing(_connect()) as con, con:
        con.execute("insert or replace into port_metrics values (?, ?, ?)",
                    (port_id, processing_time.isoformat(), json.dumps(metrics, default=str)))


def history(port_id: str) -> list[dict]:
    """Every recorded publish of the port, oldest first: {'processing_time': iso, **record}."""
    return _records("where port_id = ? order by processing_time", port_id)


def latest(port_id: str) -> dict | None:
    records = _records("where port_id = ? order by processing_time desc limit 1", port_id)
    return records[0] if records else None


def _records(condition: str, port_id: str) -> list[dict]:
    with closing(_connect()) as con:
        rows = con.execute(f"select processing_time, record from port_metrics {condition}", (port_id,)).fetchall()
    return [{"processing_time": when, **json.loads(record)} for when, record in rows]


def retained_records(port_id: str, epoch: datetime | None) -> list[dict]:
    """The recorded publishes still retained: processing time at or after the epoch (all when None)."""
    return [r for r in history(port_id) if epoch is None or datetime.fromisoformat(r["processing_time"]) >= epoch]


def epoch(port_id: str) -> dict | None:
    """The port's epoch as its latest publish measured it, after that publish's expiry: the oldest retained
    processing time and the oldest actual time in the retained versions; None before a recorded publish."""
    values = (latest(port_id) or {}).get("metrics") or {}
    if not values.get("epoch_processing_time"):
        return None
    return {"processing_time": values["epoch_processing_time"], "actual_time": values.get("epoch_actual_time")}


def mark_reconsumed(watermarks: dict[str, dict], previous: dict | None) -> dict[str, dict]:
    """The upstream versions a publish consumed per input port, each marked `reconsumed` when the port's previous
    publish consumed the same upstream processing time (nothing new came in on that input)."""
    before = (previous or {}).get("inputs") or {}
    return {name: {**mark, "reconsumed": (before.get(name) or {}).get("processing_time") == mark["processing_time"]}
            for name, mark in watermarks.items()}


def input_lags(record: dict) -> dict[str, dict]:
    """Per input port of one publish: the upstream processing time consumed, the upstream's latest recorded one,
    and the lag (seconds) between them; 0 when the publish consumed the upstream's latest version."""
    lags = {}
    for name, mark in (record.get("inputs") or {}).items():
        upstream = latest(mark["port"])
        newest = upstream["processing_time"] if upstream else mark["processing_time"]
        lag = (datetime.fromisoformat(newest) - datetime.fromisoformat(mark["processing_time"])).total_seconds()
        lags[name] = {**mark, "upstream_latest": newest, "lag_seconds": max(lag, 0.0)}
    return lags
