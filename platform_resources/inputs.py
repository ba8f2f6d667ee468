"""A consumer receives its upstream ports into its own DuckDB, through the policy-enforcing reader."""

from dataclasses import dataclass
from datetime import datetime

import duckdb

from platform_resources import ports
from platform_resources.access import check_read_access
from platform_resources.dbt import input_schema
from platform_resources.home import domain_duckdb_path
from platform_resources.registry import Registry


@dataclass(frozen=True)
class LoadedPort:
    port_id: str
    consumer: str
    relation: str
    rows: int
    processing_time: datetime


def load_input_ports(registry: Registry, domain: str) -> list[LoadedPort]:
    """Give the domain's DuckDB every upstream port its products declare, as schema <up_domain>_<up_product>,
    relation named after the port, where dbt sees them as sources.

    Every declared reader passes the access policy first. The relation pins the version being served now:
    a view over that Iceberg snapshot's Parquet files when they are local (no copy), else a copied table.
    """
    requests = sorted({(p.source, m.id) for m in registry.products_of(domain) for p in m.input_ports if p.source})
    for port_id, consumer in requests:
        check_read_access(registry, port_id, consumer)
    path = domain_duckdb_path(domain)
    path.parent.mkdir(parents=True, exist_ok=True)
    loaded: dict[str, LoadedPort] = {}
    with duckdb.connect(str(path)) as con:
        for port_id, consumer in requests:
            if port_id not in loaded:
                loaded[port_id] = _load(con, port_id, consumer)
    return list(loaded.values())


def _load(con: duckdb.DuckDBPyConnection, port_id: str, consumer: str) -> LoadedPort:
    up_domain, up_product, port = port_id.split(".")
    schema = input_schema(f"{up_domain}.{up_product}")
    relation = f'"{schema}"."{port}"'
    version = ports.resolve_version(port_id)
    con.execute(f'create schema if not exists "{schema}"')
    existing = con.execute("select table_type from information_schema.tables where table_schema = ? and table_name = ?",
                           [schema, port]).fetchone()
    if existing:
        con.execute(f"drop {'view' if existing[0] == 'VIEW' else 'table'} {relation}")
    files = ports.local_data_files(port_id, version)
    if files:
        file_list = ", ".join(f"'{f}'" for f in files)
        con.execute(f"create view {relation} as select * from read_parquet([{file_list}])")
    else:
        data = ports.scan_version(port_id, version)
        con.register("incoming", data)
        con.execute(f"create table {relation} as select * from incoming")
        con.unregister("incoming")
    rows = con.execute(f"select count(*) from {relation}").fetchone()[0]
    return LoadedPort(port_id, consumer, relation, rows, version.processing_time)
