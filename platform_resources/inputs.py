"""A consumer receives its upstream ports into its own DuckDB, through the policy-enforcing reader."""

from dataclasses import dataclass, replace
from datetime import datetime, timezone

import duckdb

from platform_resources import ports
from platform_resources.access import AccessDenied, Reader, open_port
from platform_resources.dbt_prepare import input_schema
from platform_resources.home import domain_duckdb_path
from platform_resources.partitions import PartitionWindow, sql_predicate
from platform_resources.registry import Registry
from platform_resources.sql_sandbox import literal


@dataclass(frozen=True)
class LoadedPort:
    port_id: str
    consumer: str
    relation: str
    rows: int
    processing_time: datetime
    files: tuple[str, ...]  # the Parquet files the relation is a view over; none when it is a copy
    snapshot_id: int | None = None  # the Iceberg snapshot loaded
    started: str | None = None  # when the load began and ended (ISO 8601), for its lineage run
    finished: str | None = None


@dataclass
class InputPorts:
    loaded: list[LoadedPort]
    unavailable: dict[str, str]  # product id -> why it gets no inputs (access denied, port never published)


def load_input_ports(registry: Registry, domain: str, only: set[str] | None = None,
                     window: PartitionWindow | None = None) -> InputPorts:
    """Give the domain's DuckDB every upstream port its products declare (`only` these port ids, when given), as
    schema <up_domain>_<up_product>, relation named after the port, where dbt sees them as sources.

    Every declared read passes the access policy (and goes to the access log). The relation pins the version
    being served now: a view over that Iceberg snapshot's Parquet files when they are local (no copy), else a
    copied table. A product whose input cannot be read gets none of its inputs; the others are not held up.
    With a partition `window` (a partitioned step), an upstream port partitioned by time too is read for the
    window's dates only: the files of those partitions, and their rows.
    """
    # A dormant or retired product processes nothing: it loads no inputs (and logs no reads).
    requests = sorted({(p.source, m.id) for m in registry.products_of(domain) if m.processed
                       for p in m.input_ports if p.source and (only is None or p.source in only)})
    versions: dict[tuple[str, str], ports.PortVersion] = {}
    unavailable: dict[str, str] = {}
    for port_id, consumer in requests:
        try:
            versions[port_id, consumer] = open_port(registry, port_id, Reader(consumer, f"input port of {consumer}"),
                                                    how=f"loaded into the DuckDB of {domain}")
        except (AccessDenied, LookupError) as exc:
            unavailable.setdefault(consumer, f"input {port_id}: {exc}")
    path = domain_duckdb_path(domain)
    path.parent.mkdir(parents=True, exist_ok=True)
    loaded: dict[str, LoadedPort] = {}
    with duckdb.connect(str(path)) as con:
        for (port_id, consumer), version in versions.items():
            if port_id not in loaded and consumer not in unavailable:
                loaded[port_id] = _load(con, port_id, consumer, version, _upstream_window(registry, port_id, window))
        _record_watermarks(con, list(loaded.values()))
    return InputPorts(list(loaded.values()), unavailable)


WATERMARKS = '"mesh_platform"."input_watermarks"'  # in the domain's DuckDB: what this run's models read


def _record_watermarks(con: duckdb.DuckDBPyConnection, loaded: list[LoadedPort]) -> None:
    """Which upstream version (processing time, snapshot) the models are built from, for the publish to record:
    the publish runs in a later step, and the upstream may have published again since the load."""
    con.execute('create schema if not exists "mesh_platform"')
    # A domain with partitioned ports loads its inputs in two steps: each records its own.
    con.execute(f"create table if not exists {WATERMARKS} (port_id varchar primary key, processing_time varchar, "
                "snapshot_id bigint)")
    for port in loaded:
        con.execute(f"insert or replace into {WATERMARKS} values (?, ?, ?)",
                    [port.port_id, port.processing_time.isoformat(), port.snapshot_id])


def consumed_watermarks(domain: str, source_ports: dict[str, str]) -> dict[str, dict]:
    """source_ports: input port name -> upstream port id. For each one the models were built from:
    {'port': upstream port id, 'processing_time': iso, 'snapshot_id': id}, as the last input load recorded it."""
    path = domain_duckdb_path(domain)
    if not path.exists() or not source_ports:
        return {}
    with duckdb.connect(str(path), read_only=True) as con:
        known = con.execute("select 1 from information_schema.tables where table_schema = 'mesh_platform' and "
                            "table_name = 'input_watermarks'").fetchone()
        rows = con.execute(f"select port_id, processing_time, snapshot_id from {WATERMARKS}").fetchall() if known else []
    loaded = {port_id: (when, snapshot) for port_id, when, snapshot in rows}
    return {name: {"port": port_id, "processing_time": loaded[port_id][0],
                   "snapshot_id": loaded[port_id][1]}
            for name, port_id in source_ports.items() if port_id in loaded}


def _upstream_window(registry: Registry, port_id: str, window: PartitionWindow | None) -> PartitionWindow | None:
    """The consumer's window on the upstream port's own partition column, when both are partitioned by time (a
    monthly consumer of a daily port reads the month's days); None reads the whole port."""
    if window is None or window.whole or window.by == "value":
        return None
    producer = registry.products.get(port_id.rsplit(".", 1)[0])
    port = producer.output_port(port_id.rsplit(".", 1)[1]) if producer else None
    if port is None or port.partitioning is None or port.partitioning.by == "value":
        return None
    return replace(window, column=port.partition_column, by=port.partitioning.by)


def _load(con: duckdb.DuckDBPyConnection, port_id: str, consumer: str, version: ports.PortVersion,
          window: PartitionWindow | None = None) -> LoadedPort:
    started = datetime.now(timezone.utc).isoformat()
    up_domain, up_product, port = port_id.split(".")
    schema = input_schema(f"{up_domain}.{up_product}")
    relation = f'"{schema}"."{port}"'
    con.execute(f'create schema if not exists "{schema}"')
    existing = con.execute("select table_type from information_schema.tables where table_schema = ? and table_name = ?",
                           [schema, port]).fetchone()
    if existing:
        con.execute(f"drop {'view' if existing[0] == 'VIEW' else 'table'} {relation}")
    files = ports.local_data_files(port_id, version, window)
    if files:
        file_list = ", ".join(literal(f) for f in files)
        rows = f" where {sql_predicate(window)}" if window else ""
        # Not hive partitioning: a partitioned table's folders (o_orderdate_month=1995-03/) are no column of the port.
        con.execute(f"create view {relation} as select * from read_parquet([{file_list}], hive_partitioning = false)"
                    f"{rows}")
    else:
        data = ports.scan_version(port_id, version, window=window)
        con.register("incoming", data)
        con.execute(f"create table {relation} as select * from incoming")
        con.unregister("incoming")
    rows = con.execute(f"select count(*) from {relation}").fetchone()[0]
    return LoadedPort(port_id, consumer, relation, rows, version.processing_time, tuple(files or ()),
                      version.snapshot_id, started, datetime.now(timezone.utc).isoformat())
