"""A port serves exactly its contract: no phantom columns, no unannounced breaking change, one snapshot per publish
(read by DuckDB's iceberg extension as an outside reader would), Iceberg time travel by timestamp equal to
`mesh read --as-of`, and one consistent product version after a partial publish."""

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import duckdb_extension_avro
import duckdb_extension_iceberg
import pyarrow as pa
import pytest
from dagster import Failure

from platform_resources import cli, ports
from platform_resources.port_asset import refuse_unannounced_breaking_change, publish_stamp
from platform_resources.registry import load_registry

PORT = "geography.nations.nations"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def nations(**columns: list) -> pa.Table:
    return pa.table({name: pa.array(values) for name, values in columns.items()})


def iceberg_duckdb() -> duckdb.DuckDBPyConnection:
    """DuckDB with the iceberg extension of the pinned duckdb-extension-iceberg package (and avro, which it needs),
    offline: nothing is downloaded."""
    con = duckdb.connect()
    con.execute("set autoinstall_known_extensions = false")
    for module, name in ((duckdb_extension_avro, "avro"), (duckdb_extension_iceberg, "iceberg")):
        con.execute(f"load '{next(Path(module.__file__).parent.glob(f'extensions/*/{name}.duckdb_extension'))}'")
    return con


def table():
    return ports.catalog().load_table(ports.table_identifier(PORT))


def served_columns(version: ports.PortVersion) -> list[str]:
    return ports.scan_version(PORT, version).column_names


# --- phantom columns -------------------------------------------------------------------------------

def test_a_column_removed_from_the_published_data_is_no_longer_served_and_older_versions_keep_it(fresh_home):
    first = ports.publish(PORT, nations(n_nationkey=[0, 1], n_name=["FRANCE", "PERU"], n_comment=["wine", "llamas"]))
    ports.publish(PORT, nations(n_nationkey=[2], n_name=["CHILE"]))
    assert [f.name for f in table().schema().fields] == ["n_nationkey", "n_name", ports.PROCESSING_TIME_COLUMN]
    latest, older = ports.resolve_version(PORT), ports.resolve_version(PORT, first.processing_time)
    assert served_columns(latest) == ["n_nationkey", "n_name", ports.PROCESSING_TIME_COLUMN]
    # time travel serves the older version in its own schema, with its values (pyiceberg and the plain files alike)
    assert ports.scan_version(PORT, older).column("n_comment").to_pylist() == ["wine", "llamas"]
    files = ports.local_data_files(PORT, older)
    assert duckdb.sql(f"select n_comment from read_parquet({files!r}) order by 1").fetchall() == [("llamas",), ("wine",)]
    assert "n_comment" not in duckdb.sql(f"select * from read_parquet({ports.local_data_files(PORT, latest)!r})").columns


def test_a_column_whose_type_changed_is_served_with_the_new_type_and_older_versions_keep_the_old_one(fresh_home):
    first = ports.publish(PORT, nations(n_nationkey=pa.array([1], pa.int32()), n_name=["A"]))
    ports.publish(PORT, nations(n_nationkey=["one"], n_name=["A"]))
    assert ports.scan_version(PORT, ports.resolve_version(PORT)).schema.field("n_nationkey").type in (pa.string(),
                                                                                                      pa.large_string())
    assert ports.scan_version(PORT, ports.resolve_version(PORT, first.processing_time)).column("n_nationkey").type \
        == pa.int32()


def test_a_widened_type_keeps_its_iceberg_field_and_the_columns_follow_the_published_order(fresh_home):
    ports.publish(PORT, nations(n_nationkey=pa.array([1], pa.int32()), n_name=["A"]))
    before = table().schema().find_field("n_nationkey").field_id
    ports.publish(PORT, nations(n_name=["B"], n_nationkey=pa.array([2], pa.int64())))
    schema = table().schema()
    assert schema.find_field("n_nationkey").field_id == before  # an Iceberg promotion (int -> long) in place
    assert served_columns(ports.resolve_version(PORT)) == ["n_name", "n_nationkey", ports.PROCESSING_TIME_COLUMN]


# --- one publish, one snapshot ---------------------------------------------------------------------

def test_every_publish_commits_exactly_one_snapshot_and_no_reader_ever_sees_an_empty_port(fresh_home):
    published_rows = [["A", "B"], ["C"], [], ["D", "E", "F"]]
    results = [ports.publish(PORT, nations(n_name=pa.array(rows, pa.string()))) for rows in published_rows]
    snapshots = table().metadata.snapshots
    assert [s.snapshot_id for s in snapshots] == [r.snapshot_id for r in results]
    assert [int(s.summary["total-records"]) for s in snapshots] == [len(rows) for rows in published_rows]
    # An outside reader at every snapshot the table has: exactly what that publish published, empty only when it was.
    con, metadata = iceberg_duckdb(), table().metadata_location
    for snapshot, rows in zip(snapshots, published_rows):
        read = con.execute("select n_name from iceberg_scan(?, snapshot_from_id = ?) order by 1",
                           [metadata, snapshot.snapshot_id]).fetchall()
        assert [name for (name,) in read] == rows


def test_iceberg_time_travel_by_timestamp_is_mesh_read_as_of(fresh_home):
    published = [ports.publish(PORT, nations(n_name=names)) for names in (["A"], ["A", "B"], ["C"])]
    con, metadata = iceberg_duckdb(), table().metadata_location
    # a processing time is its snapshot's timestamp-ms
    assert [s.timestamp_ms for s in table().metadata.snapshots] == \
        [(p.processing_time - EPOCH) // timedelta(milliseconds=1) for p in published]
    moments = [t for p in published for t in (p.processing_time - timedelta(microseconds=1), p.processing_time,
                                              p.processing_time + timedelta(microseconds=500))][1:]
    for moment in moments:
        mesh_read = ports.scan_version(PORT, ports.resolve_version(PORT, moment)).column("n_name").to_pylist()
        iceberg = con.execute("select n_name from iceberg_scan(?, snapshot_from_timestamp = ?::timestamptz) order by 1",
                              [metadata, moment]).fetchall()
        assert [name for (name,) in iceberg] == sorted(mesh_read), moment
    before = published[0].processing_time - timedelta(microseconds=1)
    with pytest.raises(ports.TimeTravelError):
        ports.resolve_version(PORT, before)
    assert con.execute("select * from iceberg_scan(?, snapshot_from_timestamp = ?::timestamptz)",
                       [metadata, before]).fetchall() == []


def test_an_older_snapshot_read_by_duckdb_has_that_versions_columns(fresh_home):
    first = ports.publish(PORT, nations(n_name=["A"], n_comment=["old"]))
    ports.publish(PORT, nations(n_name=["B"]))
    con, metadata = iceberg_duckdb(), table().metadata_location
    assert [d[0] for d in con.execute("select * from iceberg_scan(?)", [metadata]).description] == \
        ["n_name", ports.PROCESSING_TIME_COLUMN]
    old = con.execute("select n_comment from iceberg_scan(?, snapshot_from_id = ?)", [metadata, first.snapshot_id])
    assert old.fetchall() == [("old",)]


# --- breaking changes at publish -------------------------------------------------------------------

def publish_as(manifest, port_name: str, run_id: str = "run-1", **columns: list) -> ports.PublishResult:
    port = manifest.output_port(port_name)
    data = nations(**columns) if columns else nations(**{c.name: pa.array([None], pa.string()) for c in port.contract.columns})
    return ports.publish(f"{manifest.id}.{port_name}", data, stamp=publish_stamp(manifest, port, run_id))


def with_contract(manifest, port_name: str, version: str | None = None, drop: str | None = None, retype=None):
    """The manifest with one port's contract changed (a copy: the registry keeps the original)."""
    port = manifest.output_port(port_name)
    columns = [c.model_copy(update={"type": retype[1]}) if retype and c.name == retype[0] else c
               for c in port.contract.columns if c.name != drop]
    changed_port = port.model_copy(update={"contract": port.contract.model_copy(update={"columns": columns})})
    ports_ = [changed_port if p.name == port_name else p for p in manifest.output_ports]
    return manifest.model_copy(update={"output_ports": ports_, "version": version or manifest.version})


def test_a_breaking_change_is_refused_at_publish_without_a_major_bump(fresh_home):
    registry = load_registry()
    manifest = registry.products["geography.nations"]
    publish_as(manifest, "nations")
    for changed, change in ((with_contract(manifest, "nations", version="1.1.0", drop="n_comment"),
                             "column n_comment removed (or renamed)"),
                            (with_contract(manifest, "nations", retype=("n_nationkey", "varchar"), drop=None), None),
                            (with_contract(manifest, "nations", retype=("n_name", "integer")),
                             "column n_name type narrowed from varchar to integer")):
        port = changed.output_port("nations")
        if change is None:  # integer -> varchar widens: not breaking
            refuse_unannounced_breaking_change(registry, changed, port, PORT)
            continue
        with pytest.raises(Failure) as refused:
            refuse_unannounced_breaking_change(registry, changed, port, PORT)
        message = refused.value.description
        assert PORT in message and change in message and "Nothing published" in message
        assert f"bump the major version in {registry.files[manifest.id]} (version: {changed.version} -> 2.0.0)" in message


def test_a_breaking_change_publishes_with_a_major_bump_and_is_then_the_served_contract(fresh_home):
    registry = load_registry()
    manifest = registry.products["geography.nations"]
    publish_as(manifest, "nations")
    bumped = with_contract(manifest, "nations", version="2.0.0", drop="n_comment")
    refuse_unannounced_breaking_change(registry, bumped, bumped.output_port("nations"), PORT)
    publish_as(bumped, "nations")
    served = ports.served_stamp(PORT)
    assert (served.product_version, served.contract_version) == ("2.0.0", "2.0.0")
    assert table().properties[ports.CONTRACT_VERSION_PROPERTY] == "2.0.0"
    # the next publish compares with 2.0.0's contract: no change, nothing to refuse; removing another column is
    refuse_unannounced_breaking_change(registry, bumped, bumped.output_port("nations"), PORT)
    with pytest.raises(Failure, match="column n_name removed"):
        again = with_contract(bumped, "nations", version="2.1.0", drop="n_name")
        refuse_unannounced_breaking_change(registry, again, again.output_port("nations"), PORT)


def test_a_port_published_before_contracts_were_recorded_is_not_refused(fresh_home):
    registry = load_registry()
    manifest = registry.products["geography.nations"]
    ports.publish(PORT, nations(n_name=["A"], n_extra=["x"]))  # no stamp: nothing known to compare with
    changed = with_contract(manifest, "nations", drop="n_comment")
    refuse_unannounced_breaking_change(registry, changed, changed.output_port("nations"), PORT)


# --- one consistent product version ----------------------------------------------------------------

ORDERS = "sales.orders"


def test_a_partial_publish_leaves_the_product_version_at_the_last_complete_run(fresh_home, capsys):
    manifest = load_registry().products[ORDERS]
    names = [p.name for p in manifest.output_ports]
    assert names == ["orders", "order_lines"]
    complete = {name: publish_as(manifest, name, "run-1") for name in names}
    # run-2 publishes orders, then is killed before order_lines: the ports now come from different runs
    partial = publish_as(manifest, "orders", "run-2")
    assert ports.resolve_version(f"{ORDERS}.orders").snapshot_id == partial.snapshot_id
    version = ports.product_version(ORDERS, names)
    assert version.run_id == "run-1"
    assert {p: v.snapshot_id for p, v in version.ports.items()} == \
        {f"{ORDERS}.{n}": complete[n].snapshot_id for n in names}

    assert cli.main(["read", f"{ORDERS}.orders", "--consistent", "--format", "json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row[ports.PROCESSING_TIME_COLUMN] == str(complete["orders"].processing_time)
    assert cli.main(["read", f"{ORDERS}.orders", "--consistent"]) == 0
    assert f"processing time {complete['orders'].processing_time.isoformat()}" in capsys.readouterr().out

    finished = publish_as(manifest, "order_lines", "run-2")  # run-2 completes: the product moves on
    version = ports.product_version(ORDERS, names)
    assert version.run_id == "run-2" and version.processing_time == finished.processing_time
    assert version.ports[f"{ORDERS}.orders"].snapshot_id == partial.snapshot_id


def test_a_product_no_run_published_completely_has_no_consistent_version(fresh_home, capsys):
    manifest = load_registry().products[ORDERS]
    publish_as(manifest, "orders", "run-1")
    publish_as(manifest, "order_lines", "run-2")
    with pytest.raises(ports.InconsistentProductError, match="no run has published every output port of sales.orders"):
        ports.product_version(ORDERS, ["orders", "order_lines"])
    assert cli.main(["read", f"{ORDERS}.orders", "--consistent"]) == 2
    assert "mesh read: no run has published every output port" in capsys.readouterr().err
    assert cli.main(["read", f"{ORDERS}.orders", "--consistent", "--as-of", "2026-01-01T00:00:00"]) == 2
    assert "not both" in capsys.readouterr().err
