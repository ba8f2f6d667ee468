"""Partitioned ports: the partitioning in the manifest, the windows a run publishes, and partition publishes on the
real Iceberg catalog (one commit, one snapshot, only the window's partitions replaced)."""

from datetime import date, timedelta

import pyarrow as pa
import pytest

from platform_resources import ports
from platform_resources.manifest import OutputPort
from platform_resources.partitions import all_keys, partitions_def, sql_predicate, window_of_keys, window_of_text


def _port(partitioning: dict, column_type: str = "date") -> OutputPort:
    return OutputPort.model_validate({
        "name": "orders", "visibility": "public", "actual_time": "day",
        "contract": {"primary_key": ["id"], "columns": [
            {"name": "id", "type": "bigint", "nullable": False},
            {"name": "day", "type": column_type, "nullable": False},
            {"name": "region", "type": "varchar", "nullable": False}]},
        "partitioning": partitioning})


DAILY = {"by": "day", "start": "1995-03-01", "end": "1995-03-11"}


def _orders(days: list[date], per_day: int = 3, first_id: int = 0) -> pa.Table:
    rows = [(first_id + i * per_day + j, day) for i, day in enumerate(days) for j in range(per_day)]
    return pa.table({"id": pa.array([r[0] for r in rows], pa.int64()), "day": pa.array([r[1] for r in rows], pa.date32()),
                     "region": pa.array(["EU"] * len(rows))})


def _days(first: str, count: int) -> list[date]:
    return [date.fromisoformat(first) + timedelta(days=i) for i in range(count)]


def test_partitioning_is_checked_where_it_is_declared():
    with pytest.raises(ValueError, match="needs 'start:'"):
        _port({"by": "day"})
    with pytest.raises(ValueError, match="first day of a month"):
        _port({"by": "month", "start": "1995-03-02"})
    with pytest.raises(ValueError, match="needs a date or timestamp or timestamptz column"):
        _port({"by": "day", "start": "1995-03-01", "column": "region"})
    with pytest.raises(ValueError, match="needs 'values:'"):
        _port({"by": "value", "column": "region"})
    assert _port(DAILY).partition_column == "day"  # the actual time by default


def test_windows_name_the_partitions_of_the_port():
    port = _port(DAILY)
    assert all_keys(port.partitioning) == [d.isoformat() for d in _days("1995-03-01", 10)]
    assert len(partitions_def(port.partitioning).get_partition_keys()) == 10
    week = window_of_text(port, "1995-03-02..1995-03-08")
    assert (week.start, week.end, len(week.keys), week.whole) == (date(1995, 3, 2), date(1995, 3, 9), 7, False)
    assert window_of_text(port, "1995-03").whole  # the month holds every partition of this port
    assert sql_predicate(week) == "\"day\" >= date '1995-03-02' and \"day\" < date '1995-03-09'"
    with pytest.raises(ValueError, match="holds no partition of the port: its partitions run from 1995-03-01"):
        window_of_text(port, "2001-01-01")
    with pytest.raises(ValueError, match="is not a date"):
        window_of_text(port, "yesterday")
    monthly = _port({"by": "month", "start": "1995-01-01", "end": "1996-01-01"})
    assert window_of_text(monthly, "1995-03-15").keys == ("1995-03-01",)
    by_region = _port({"by": "value", "column": "region", "values": ["EU", "ASIA"]})
    assert sql_predicate(window_of_text(by_region, "EU")) == "\"region\" in ('EU')"


def test_a_partition_publish_replaces_only_its_partitions(fresh_home):
    port, port_id = _port(DAILY), "sales.orders.orders"
    every = window_of_keys(port, all_keys(port.partitioning))
    first = ports.publish(port_id, _orders(_days("1995-03-01", 10)), window=every)
    table = ports.catalog().load_table(ports.table_identifier(port_id))
    assert [str(f.transform) for f in table.spec().fields] == ["day"]

    one_day = window_of_text(port, "1995-03-04")
    again = ports.publish(port_id, _orders(_days("1995-03-04", 1), per_day=5, first_id=100), window=one_day)
    assert (again.rows, again.total_rows) == (5, 32)  # 30 - 3 + 5
    table.refresh()
    assert table.current_snapshot().timestamp_ms == int(again.processing_time.timestamp() * 1000)
    assert len(ports.versions(port_id)) == 2  # one snapshot per publish

    latest = ports.resolve_version(port_id)
    rows = ports.scan_version(port_id, latest).to_pylist()
    stamps = {r["day"]: r["_processing_time"] for r in rows}
    assert stamps[date(1995, 3, 4)] == again.processing_time  # each partition carries its own processing time
    assert stamps[date(1995, 3, 5)] == first.processing_time
    assert sorted(r["id"] for r in rows if r["day"] == date(1995, 3, 4)) == list(range(100, 105))
    assert ports.scan_version(port_id, latest, window=one_day).num_rows == 5
    # Time travel per partition: as of the first publish, the day had its first three rows.
    assert ports.scan_version(port_id, ports.resolve_version(port_id, first.processing_time), window=one_day).num_rows == 3
    assert len(ports.local_data_files(port_id, latest, one_day)) == 1


def test_a_partition_publish_refuses_what_would_change_other_partitions(fresh_home):
    port, port_id = _port(DAILY), "sales.orders.orders"
    one_day = window_of_text(port, "1995-03-04")
    with pytest.raises(ports.PartitionPublishError, match="3 of the 6 rows .* lie outside them"):
        ports.publish(port_id, _orders(_days("1995-03-04", 2)), window=one_day)
    ports.publish(port_id, _orders(_days("1995-03-01", 10)))  # published before it was partitioned
    with pytest.raises(ports.PartitionPublishError, match="publish every partition once"):
        ports.publish(port_id, _orders(_days("1995-03-04", 1)), window=one_day)
    ports.publish(port_id, _orders(_days("1995-03-01", 10)), window=window_of_keys(port, all_keys(port.partitioning)))
    wider = _orders(_days("1995-03-04", 1)).append_column("note", pa.array(["x"] * 3))
    with pytest.raises(ports.PartitionPublishError, match="would change its columns or types"):
        ports.publish(port_id, wider, window=one_day)
    assert ports.scan_version(port_id, ports.resolve_version(port_id)).num_rows == 30  # nothing was lost


def test_retention_expires_partition_publishes_without_losing_the_partitions_they_left_alone(fresh_home):
    from platform_resources.manifest import Retention

    port, port_id = _port(DAILY), "sales.orders.orders"
    keep_one = Retention(versions=1)
    ports.publish(port_id, _orders(_days("1995-03-01", 10)), window=window_of_keys(port, all_keys(port.partitioning)),
                  retention=keep_one)
    for i, day in enumerate(["1995-03-02", "1995-03-05", "1995-03-09"]):
        published = ports.publish(port_id, _orders([date.fromisoformat(day)], first_id=1000 * (i + 1)),
                                  window=window_of_text(port, day), retention=keep_one)
        assert published.expired == 1
    [served] = ports.versions(port_id)
    rows = ports.scan_version(port_id, served).to_pylist()  # every file it needs is still there
    assert len(rows) == 30 and sorted({r["day"] for r in rows}) == _days("1995-03-01", 10)
    assert sorted(r["id"] for r in rows if r["day"] == date(1995, 3, 5)) == [2000, 2001, 2002]
