"""Output ports: atomic publish stamped with a processing time, latest read, time travel, access policy."""

from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from platform_resources import ports
from platform_resources.access import AccessDenied, check_read_access, read_port
from platform_resources.registry import load_registry

PORT = "geography.nations.nations"


def nations(*names: str) -> pa.Table:
    return pa.table({"n_nationkey": pa.array(range(len(names)), pa.int32()), "n_name": list(names)})


def test_publish_then_read_latest(fresh_home):
    first = ports.publish(PORT, nations("FRANCE", "PERU"), {"n_name": "Nation name."})
    assert first.rows == 2 and first.table_name == "geography.nations__nations"
    assert first.location == ports.default_location(PORT)
    served = ports.scan_version(PORT, ports.resolve_version(PORT))
    assert served.column("n_name").to_pylist() == ["FRANCE", "PERU"]
    assert set(served.column(ports.PROCESSING_TIME_COLUMN).to_pylist()) == {first.processing_time}
    table = ports.catalog().load_table(ports.table_identifier(PORT))
    assert table.schema().find_field("n_name").doc == "Nation name."


def test_a_column_added_to_a_published_port_gets_its_description(fresh_home):
    ports.publish(PORT, nations("FRANCE"), {"n_name": "Nation name."})
    wider = nations("FRANCE").append_column("n_comment", pa.array(["wine"]))
    ports.publish(PORT, wider, {"n_name": "Nation name.", "n_comment": "A comment."})
    table = ports.catalog().load_table(ports.table_identifier(PORT))
    assert table.schema().find_field("n_comment").doc == "A comment."
    assert ports.scan_version(PORT, ports.resolve_version(PORT)).column("n_comment").to_pylist() == ["wine"]


def test_every_publish_is_a_new_strictly_later_version_and_old_ones_stay_readable(fresh_home):
    published = [ports.publish(PORT, nations(*names)) for names in (["A"], ["A", "B"], ["C"])]
    times = [p.processing_time for p in published]
    assert times == sorted(times) and len(set(times)) == 3
    assert [v.processing_time for v in ports.versions(PORT)] == times
    next_times = [p.processing_time for p in published[1:]] + [datetime.now(timezone.utc) + timedelta(days=1)]
    for result, expected, next_time in zip(published, (["A"], ["A", "B"], ["C"]), next_times):
        # as of the exact processing time, and as of the last moment before the next publish
        for as_of in (result.processing_time, next_time - timedelta(microseconds=1)):
            version = ports.resolve_version(PORT, as_of)
            assert version.snapshot_id == result.snapshot_id
            assert ports.scan_version(PORT, version).column("n_name").to_pylist() == expected
    assert ports.resolve_version(PORT).snapshot_id == published[-1].snapshot_id


def test_time_travel_before_the_oldest_version_is_an_explicit_error(fresh_home):
    first = ports.publish(PORT, nations("A"))
    with pytest.raises(ports.TimeTravelError, match="before the oldest retained version"):
        ports.resolve_version(PORT, first.processing_time - timedelta(seconds=1))
    naive_later = (first.processing_time + timedelta(seconds=1)).replace(tzinfo=None)  # naive = UTC
    assert ports.resolve_version(PORT, naive_later).snapshot_id == first.snapshot_id


def test_reading_a_port_that_was_never_published_says_how_to_publish_it(fresh_home):
    with pytest.raises(ports.PortNotPublishedError, match="mesh run --domain geography"):
        ports.resolve_version(PORT)


def test_processing_time_moves_forward_even_within_one_clock_tick(fresh_home, monkeypatch):
    # Whole milliseconds: a processing time is also its Iceberg snapshot's timestamp-ms.
    class StoppedClock(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(2026, 1, 1, tzinfo=timezone.utc)

    monkeypatch.setattr(ports, "datetime", StoppedClock)
    stamps = [ports.publish(PORT, nations("A")).processing_time for _ in range(3)]
    assert [later - earlier for earlier, later in zip(stamps, stamps[1:])] == [timedelta(milliseconds=1)] * 2


def test_restricted_port_without_approved_request_fails_before_any_data_is_read(fresh_home):
    registry = load_registry()
    restricted = "crm.customers.customer_contacts"
    # Nothing is published in this fresh home: a denial here proves the check runs before any read.
    for consumer in (None, "marketing.customer_distribution", "finance.pricing_summary"):
        with pytest.raises(AccessDenied, match="policy: crm.customers.customer_contacts is restricted") as denied:
            read_port(registry, restricted, consumer=consumer)
        assert "approved_access" in str(denied.value) and "crm-data@example.com" in str(denied.value)
    # Approved consumers, and the owning domain, pass the policy (and then find nothing published yet).
    for consumer in ("finance.returned_items", "marketing.large_volume_customers", "crm.customers"):
        check_read_access(registry, restricted, consumer)
        with pytest.raises(ports.PortNotPublishedError):
            read_port(registry, restricted, consumer=consumer)


def test_an_approval_without_a_request_is_not_enough(fresh_home):
    registry = load_registry()
    manifest = registry.products["finance.returned_items"]
    request = next(p for p in manifest.input_ports if p.source == "crm.customers.customer_contacts")
    request.access_request = None
    with pytest.raises(AccessDenied, match="with an access_request in the manifest of finance.returned_items"):
        check_read_access(registry, "crm.customers.customer_contacts", "finance.returned_items")


def test_public_ports_are_readable_by_anyone(fresh_home):
    ports.publish(PORT, nations("A"))
    served, version = read_port(load_registry(), PORT, consumer=None, limit=1)
    assert served.num_rows == 1 and version.processing_time <= datetime.now(timezone.utc)
