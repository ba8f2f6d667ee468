"""Retention: a port keeps the versions its manifest declares, expiry deletes the others' files, the epoch is reported."""

from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

import pyarrow as pa
import pytest
import yaml
from workspaces import product

from platform_resources import catalog, metrics, ports, slo
from platform_resources.cli import _epoch_line, main
from platform_resources.manifest import ManifestErrors, Retention, load_manifest
from platform_resources.registry import load_registry

PORT = "geography.nations.nations"


def nations(*names: str) -> pa.Table:
    return pa.table({"n_nationkey": pa.array(range(len(names)), pa.int32()), "n_name": list(names)})


def table_folder() -> Path:
    return Path(urlparse(ports.default_location(PORT)).path)


def files_on_disk() -> set[str]:
    return {str(f) for f in table_folder().rglob("*") if f.is_file() and f.parent.name == "data"}


def manifest_lists() -> set[str]:
    return {str(f) for f in (table_folder() / "metadata").glob("snap-*.avro")}


def publish_times(count: int, retention: Retention | None) -> list[ports.PublishResult]:
    return [ports.publish(PORT, nations(*[f"N{i}_{j}" for j in range(i + 1)]), retention=retention)
            for i in range(count)]


# --- the manifest field ---------------------------------------------------------------------------

@pytest.mark.parametrize("retention, problem", [
    ({"versions": 0}, "versions 0 is not between 1 and 10000"),
    ({"versions": 100_000}, "versions 100000 is not between 1 and 10000"),
    ({"keep": "0d"}, "zero duration"),
    ({"keep": "90 days"}, "is not a duration"),
    ({}, "retention needs 'keep: 90d' or 'versions: 10'"),
    ({"keep_for": "90d"}, "keep_for"),
])
def test_a_bad_retention_is_refused_with_the_file_line_and_fix(tmp_path, retention, problem):
    manifest = product("crm.kept", fresh=True)
    manifest["output_ports"][0]["retention"] = retention
    path = tmp_path / "kept.yaml"
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    with pytest.raises(ManifestErrors) as refused:
        load_manifest(path)
    message = str(refused.value)
    assert problem in message and "retention" in message and str(path) in message
    # The line of the wrong field, or of retention itself when the fields are missing.
    field = next(iter(retention), "retention")
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if text.strip().startswith(f"{field}:"))
    assert f"{path}:{line}:" in message


def test_retention_is_optional_and_takes_either_rule_or_both(tmp_path):
    manifest = product("crm.kept", fresh=True)
    path = tmp_path / "kept.yaml"
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    assert load_manifest(path).output_ports[0].retention is None  # today's behaviour: every version kept
    manifest["output_ports"][0]["retention"] = {"keep": "90d", "versions": 10}
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    assert load_manifest(path).output_ports[0].retention == Retention(keep="90d", versions=10)


# --- expiry ---------------------------------------------------------------------------------------

def test_without_retention_every_version_and_file_stays(fresh_home):
    published = publish_times(4, None)
    assert [v.processing_time for v in ports.versions(PORT)] == [p.processing_time for p in published]
    assert all(p.expired == 0 for p in published) and published[-1].epoch == published[0].processing_time
    assert len(files_on_disk()) == 4 and len(manifest_lists()) == 4


def test_versions_keeps_the_latest_ones_and_deletes_the_files_of_the_others(fresh_home):
    retention = Retention(versions=3)
    first = ports.publish(PORT, nations("FRANCE"), retention=retention)
    first_files = ports.local_data_files(PORT, ports.resolve_version(PORT))
    published = [first, *publish_times(4, retention)]
    assert [p.expired for p in published] == [0, 0, 0, 1, 1]
    kept = ports.versions(PORT)
    assert [v.processing_time for v in kept] == [p.processing_time for p in published[-3:]]
    assert published[-1].epoch == kept[0].processing_time
    assert ports.resolve_version(PORT).snapshot_id == published[-1].snapshot_id  # the served version is intact
    # The expired versions' data files and manifest lists are gone; every file left belongs to a kept version.
    assert not any(Path(f).exists() for f in first_files)
    table = ports.catalog().load_table(ports.table_identifier(PORT))
    assert len(table.metadata.snapshots) == 3 and len(manifest_lists()) == 3
    kept_files = {f for v in kept for f in ports.local_data_files(PORT, v)}
    assert files_on_disk() == kept_files and len(kept_files) == 3
    for version, i in zip(kept, (1, 2, 3), strict=True):  # after FRANCE, publish i served i + 1 nations
        names = [f"N{i}_{j}" for j in range(i + 1)]
        assert ports.scan_version(PORT, version).column("n_name").to_pylist() == names


def test_time_travel_before_the_epoch_is_an_explicit_error_naming_the_retention(fresh_home):
    published = publish_times(4, Retention(versions=2))
    with pytest.raises(ports.TimeTravelError) as refused:
        ports.resolve_version(PORT, published[1].processing_time)
    message = str(refused.value)
    assert "before the oldest retained version" in message and "retention (versions: 2)" in message
    assert published[2].processing_time.isoformat() in message
    assert ports.resolve_version(PORT, published[2].processing_time).snapshot_id == published[2].snapshot_id


def test_keep_expires_the_versions_published_before_the_duration(fresh_home):
    retention = Retention(keep="1h")
    published = publish_times(3, retention)
    assert [p.expired for p in published] == [0, 0, 0]  # all within the hour
    t1, t2, t3 = (p.processing_time for p in published)
    # An hour after the second publish: the first is older than an hour, the second exactly an hour old.
    expiry = ports.expire_versions(PORT, retention, now=t2 + timedelta(hours=1))
    assert [v.processing_time for v in expiry.expired] == [t1] and expiry.epoch == t2
    assert expiry.removed_files and not any(Path(f).exists() for f in expiry.removed_files)
    # Long after: only the served version stays, however old.
    expiry = ports.expire_versions(PORT, retention, now=t3 + timedelta(days=30))
    assert [v.processing_time for v in expiry.expired] == [t2] and expiry.epoch == t3
    assert [v.processing_time for v in ports.versions(PORT)] == [t3]
    assert len(files_on_disk()) == 1
    assert ports.expire_versions(PORT, retention, now=t3 + timedelta(days=60)).expired == []


def test_with_both_rules_a_version_stays_while_either_keeps_it(fresh_home):
    published = publish_times(4, None)
    times = [p.processing_time for p in published]
    both = Retention(keep="1h", versions=2)
    # An hour after the second publish: the hour keeps versions 2..4, though the count keeps only 3 and 4.
    assert [v.processing_time for v in ports.retained(ports.versions(PORT), both, times[1] + timedelta(hours=1))] \
        == times[1:]
    expiry = ports.expire_versions(PORT, both, now=times[-1] + timedelta(days=1))  # the hour keeps none: the count
    assert [v.processing_time for v in expiry.expired] == times[:2]
    assert [v.processing_time for v in ports.versions(PORT)] == times[2:]


def test_removing_the_retention_stops_expiry_and_clears_the_table_property(fresh_home):
    publish_times(2, Retention(versions=1))
    table = ports.catalog().load_table(ports.table_identifier(PORT))
    assert table.properties[ports.RETENTION_PROPERTY] == "versions: 1"
    publish_times(2, None)
    table = ports.catalog().load_table(ports.table_identifier(PORT))
    assert ports.RETENTION_PROPERTY not in table.properties and len(ports.versions(PORT)) == 3


# --- the epoch in the metrics and the catalog -----------------------------------------------------

def publish_measured(port, data: pa.Table) -> ports.PublishResult:
    """A publish followed by its measurement, as the port asset does (platform_resources.port_asset)."""
    published = ports.publish(PORT, data, retention=port.retention)
    measured = slo.measure(port, data, published.processing_time, metrics.latest(PORT), None,
                           metrics.retained_records(PORT, published.epoch) if port.retention else None)
    metrics.record(PORT, published.processing_time, slo.as_record(measured, slo.evaluate(port, measured)))
    return published


def test_the_epoch_follows_the_retention_in_metrics_and_catalog(fresh_home, monkeypatch):
    registry = load_registry()
    manifest, port = registry.port(PORT)
    monkeypatch.setattr(port, "retention", Retention(versions=2))
    published = [publish_measured(port, nations(*[f"N{i}"] * (i + 1))) for i in range(4)]
    epoch = metrics.epoch(PORT)
    assert epoch["processing_time"] == published[2].processing_time.isoformat()
    # A snapshot port's actual time is its processing time: the oldest retained one.
    assert epoch["actual_time"] == published[2].processing_time.isoformat()
    assert len(metrics.history(PORT)) == 4  # the metrics history keeps every publish
    assert _epoch_line(epoch, port.retention) == (
        f"epoch: actual time {epoch['actual_time']}, processing time {epoch['processing_time']} "
        "(retention versions: 2)")
    [document] = catalog.discovery_document(registry, manifest.id)["ports"]
    assert document["retention"] == {"versions": 2} and document["epoch"] == epoch
    assert f"epoch: processing time {epoch['processing_time']}" in catalog.format_document(
        catalog.discovery_document(registry, manifest.id))
    from jsonschema import Draft202012Validator

    Draft202012Validator(catalog.discovery_schema(), format_checker=Draft202012Validator.FORMAT_CHECKER).validate(
        [catalog.discovery_document(registry, manifest.id)])


def test_without_retention_the_epoch_is_the_first_publish(fresh_home):
    _, port = load_registry().port(PORT)
    assert port.retention is None
    published = [publish_measured(port, nations("FRANCE")) for _ in range(3)]
    assert metrics.epoch(PORT)["processing_time"] == published[0].processing_time.isoformat()
    assert _epoch_line(metrics.epoch(PORT), None).endswith("(no retention: every version kept)")


def test_mesh_metrics_prints_the_epoch_after_expiry(fresh_home, monkeypatch, capsys):
    registry = load_registry()
    _, port = registry.port(PORT)
    monkeypatch.setattr(port, "retention", Retention(versions=1))
    monkeypatch.setattr("platform_resources.registry.load_registry", lambda: registry)  # with that retention
    published = [publish_measured(port, nations("FRANCE")) for _ in range(3)]
    assert main(["metrics", PORT]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    epoch = published[-1].processing_time.isoformat()
    assert last == f"epoch: actual time {epoch}, processing time {epoch} (retention versions: 1)"
