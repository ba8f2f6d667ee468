"""A consumer receives its upstream ports into its own DuckDB, through the policy-enforcing reader."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb

from platform_resources.access import check_read_access, read_port
from platform_resources.dbt import input_schema
from platform_resources.home import domain_duckdb_path
from platform_resources.registry import Registry


@dataclass(frozen=True)
class LoadedPort:
    port_id: str
    consumer: str
    schema: str
    table: str
    rows: int
    processing_time: datetime


def load_input_ports(registry: Registry, domain: str) -> list[LoadedPort]:
    """Copy every upstream port a product of `domain` declares into the domain's DuckDB, read as that product.

    The tables land in schema <up_domain>_<up_product>, named after the port, where dbt sees them as sources.
    """
    requests = sorted({(p.source, m.id) for m in registry.products_of(domain) for p in m.input_ports if p.source})
    loaded: list[LoadedPort] = []
    done: set[str] = set()
    path = domain_duckdb_path(domain)
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(path)) as con:
        for port_id, consumer in requests:
            check_read_access(registry, port_id, consumer)  # every declared reader is checked, even for a shared copy
            if port_id in done:
                continue
            data, version = read_port(registry, port_id, consumer=consumer)
            up_domain, up_product, port = port_id.split(".")
            schema = input_schema(f"{up_domain}.{up_product}")
            con.execute(f'create schema if not exists "{schema}"')
            con.register("incoming", data)
            con.execute(f'create or replace table "{schema}"."{port}" as select * from incoming')
            con.unregister("incoming")
            loaded.append(LoadedPort(port_id, consumer, schema, port, data.num_rows, version.processing_time))
            done.add(port_id)
    return loaded
