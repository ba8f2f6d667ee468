"""A staged result read where dbt left it: the same answers as the table in memory, written to Iceberg by DuckDB (or
from Arrow in chunks)."""

from dataclasses import replace
from datetime import date, datetime, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from pyiceberg.expressions import GreaterThanOrEqual

from platform_resources import ports, staged
from platform_resources.partitions import PartitionWindow
from platform_resources.staged import StagedRelation, StagedTable

PORT = "sales.orders.orders"


def orders(n: int = 1000) -> pa.Table:
    return pa.table({
        "o_orderkey": pa.array(range(n), pa.int64()),
        "o_orderdate": pa.array([date(1995, 1 + i % 3, 1 + i % 28) for i in range(n)], pa.date32()),
        "o_comment": [None if i % 10 == 0 else f"order {i}" for i in range(n)],
        "o_seen": pa.array([datetime(2020, 1, 1, i % 24, tzinfo=timezone.utc) for i in range(n)],
                           pa.timestamp("us", tz="UTC")),
    })


@pytest.fixture
def database(tmp_path, monkeypatch):
    """orders() as a table of a domain's DuckDB file, the way a dbt model leaves its result; read in batches of 50
    rows, so that a small target file size makes several chunks of these 1000 rows."""
    monkeypatch.setattr(staged, "BATCH_ROWS", 50)
    path = tmp_path / "sales.duckdb"
    with duckdb.connect(str(path)) as con:
        con.register("rows", orders())
        con.execute("create table orders as select * from rows")
    return path


@pytest.fixture
def relation(database):
    rows = StagedRelation(database, "main.orders")
    yield rows
    rows.close()


def test_a_relation_answers_as_its_table_in_memory(database):
    with duckdb.connect(str(database), read_only=True) as con:  # how a port's result was read before it was staged
        table = StagedTable(con.execute("select * from main.orders").to_arrow_table())
    relation = StagedRelation(database, "main.orders")
    assert relation.schema == table.schema and relation.num_rows == table.num_rows == 1000
    assert [relation.null_count(c) for c in relation.column_names] == [table.null_count(c) for c in table.column_names]
    assert relation.null_count("o_comment") == 100
    for column in ("o_orderdate", "o_seen"):
        assert relation.extremes(column) == table.extremes(column)
    assert relation.extremes("o_seen")[1] == datetime(2020, 1, 1, 23, tzinfo=timezone.utc)
    sql = "select count(*) from staged where o_orderdate >= ?"
    assert relation.query(sql, date(1995, 2, 1)) == table.query(sql, date(1995, 2, 1))
    relation.close()


def test_chunks_hold_every_row_once_in_the_order_asked(relation):
    chunks = list(relation.chunks(max_bytes=4096, order_by="o_orderdate"))
    assert len(chunks) > 3 and all(c.schema == relation.schema for c in chunks)
    dates = pa.concat_tables(chunks).column("o_orderdate").to_pylist()
    assert len(dates) == 1000 and dates == sorted(dates)
    assert sorted(pa.concat_tables(chunks).column("o_orderkey").to_pylist()) == list(range(1000))


def test_only_the_rows_of_the_window_are_staged(database, relation):
    # `relation` stays open meanwhile: two staged connections to one database coexist (same configuration).
    february = StagedRelation(database, "main.orders", "o_orderdate >= '1995-02-01' and "
                                                                        "o_orderdate < '1995-03-01'")
    assert february.num_rows == orders().filter(pa.compute.equal(pa.compute.month(orders()["o_orderdate"]), 2)).num_rows
    february.close()


def test_a_relation_is_written_by_duckdb_as_iceberg_writes_it_in_one_version(fresh_home, tmp_path):
    rows = 20_000  # DuckDB writes at least a vector of 2,048 rows per row group
    path = tmp_path / "sales.duckdb"
    with duckdb.connect(str(path)) as con:
        con.register("rows", orders(rows))
        con.execute("create table orders as select * from rows")
    relation = StagedRelation(path, "main.orders")
    ports.publish(PORT, orders(10))  # the port exists; its files and row groups may be small from now on
    ports.catalog().load_table(ports.table_identifier(PORT)).transaction().set_properties(
        {"write.target-file-size-bytes": "8192", "write.parquet.row-group-limit": "2048"}).commit_transaction()
    before = len(ports.versions(PORT))
    published = ports.publish(PORT, relation)
    assert published.rows == rows and len(ports.versions(PORT)) == before + 1
    version = ports.resolve_version(PORT)
    files = ports.local_data_files(PORT, version)
    assert len(files) > 3  # the table's target file size
    table = ports.catalog().load_table(ports.table_identifier(PORT))
    field_ids = {f.name: f.field_id for f in table.schema().fields}
    for file in files:
        footer = pq.read_metadata(file)
        assert footer.created_by.startswith("DuckDB") and footer.row_group(0).num_rows <= 2048
        assert {f.name: int(f.metadata[b"PARQUET:field_id"]) for f in footer.schema.to_arrow_schema()} == field_ids
    served = ports.scan_version(PORT, version).sort_by("o_orderkey")
    assert served.column("o_orderkey").to_pylist() == list(range(rows))
    assert set(served.column(ports.PROCESSING_TIME_COLUMN).to_pylist()) == {published.processing_time}
    assert served.column("o_comment").null_count == rows // 10
    assert served.column("o_seen").to_pylist() == orders(rows).column("o_seen").to_pylist()
    # DuckDB writes every column optional; what Iceberg requires is read as required.
    assert not served.schema.field(ports.PROCESSING_TIME_COLUMN).nullable
    # Iceberg's column statistics, read from DuckDB's footers, let a reader skip the files outside a filter.
    last = table.scan(row_filter=GreaterThanOrEqual("o_orderkey", rows - 100))
    assert len(list(last.plan_files())) < len(files) and last.to_arrow().num_rows == 100
    relation.close()
    assert not list(tmp_path.glob("sales.duckdb.tmp/publish-*"))  # the staged files were all taken


def test_a_relation_without_rows_publishes_no_data_file(fresh_home, database):
    empty = StagedRelation(database, "main.orders", "false")
    published = ports.publish(PORT, empty)
    empty.close()
    assert published.rows == 0 and ports.local_data_files(PORT, ports.resolve_version(PORT)) == []
    assert ports.scan_version(PORT, ports.resolve_version(PORT)).num_rows == 0


def test_columns_duckdb_cannot_write_as_iceberg_are_written_from_arrow(fresh_home, tmp_path):
    path = tmp_path / "sales.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("create table blobs as select range as o_orderkey, 'x'::blob as o_payload from range(10)")
    rows = StagedRelation(path, "main.blobs")
    ports.publish(PORT, rows)
    rows.close()
    files = ports.local_data_files(PORT, ports.resolve_version(PORT))
    assert files and all(pq.read_metadata(f).created_by.startswith("parquet-cpp-arrow") for f in files)
    assert ports.scan_version(PORT, ports.resolve_version(PORT)).column("o_payload").to_pylist() == [b"x"] * 10


MONTHS = PartitionWindow("o_orderdate", "month", ("1995-01-01", "1995-02-01", "1995-03-01"),
                         date(1995, 1, 1), date(1995, 4, 1), whole=True)


def test_a_partitioned_relation_is_written_by_duckdb_a_file_per_partition(fresh_home, relation):
    ports.publish(PORT, orders(10), window=MONTHS)
    ports.publish(PORT, relation, window=MONTHS)
    version = ports.resolve_version(PORT)
    files = ports.local_data_files(PORT, version)
    assert sorted(Path(f).parent.name for f in files) == [f"o_orderdate_month=1995-0{m}" for m in (1, 2, 3)]
    assert all(pq.read_metadata(f).created_by.startswith("DuckDB") for f in files)
    table = ports.catalog().load_table(ports.table_identifier(PORT))
    for task in table.scan().plan_files():  # each file's partition is the month of every row in it
        month = task.file.partition[0]
        dates = pq.read_table(task.file.file_path.removeprefix("file://")).column("o_orderdate").to_pylist()
        assert {(d.year - 1970) * 12 + d.month - 1 for d in dates} == {month}
    assert sorted(ports.scan_version(PORT, version).column("o_orderkey").to_pylist()) == list(range(1000))
    february = ports.scan_version(PORT, version, window=replace(MONTHS, keys=("1995-02-01",), start=date(1995, 2, 1),
                                                                end=date(1995, 3, 1), whole=False))
    assert february.num_rows == orders().filter(pc.equal(pc.month(orders()["o_orderdate"]), 2)).num_rows


def test_a_partitioned_relation_written_from_arrow_goes_partition_after_partition(fresh_home, database):
    with duckdb.connect(str(database)) as con:  # a blob column: DuckDB does not write it as Iceberg
        con.execute("create table with_payload as select *, 'x'::blob as o_payload from orders")
    relation = StagedRelation(database, "main.with_payload")
    ports.publish(PORT, orders(10).append_column("o_payload", pa.array([b"x"] * 10)), window=MONTHS)
    ports.catalog().load_table(ports.table_identifier(PORT)).transaction() \
        .set_properties({"write.target-file-size-bytes": "8192"}).commit_transaction()
    ports.publish(PORT, relation, window=MONTHS)
    relation.close()
    version = ports.resolve_version(PORT)
    # Written in the partitions' order: each month's files come one after the other (file names count the writes).
    files = sorted(ports.local_data_files(PORT, version), key=lambda f: int(Path(f).name.split("-")[1]))
    months = [Path(f).parent.name for f in files]
    assert len(files) > 3 and months == sorted(months) and len(set(months)) == 3
    assert sorted(ports.scan_version(PORT, version).column("o_orderkey").to_pylist()) == list(range(1000))
