"""A domain's operational systems, attached read-only to the DuckDB connections that read its ingested tables.

Ingestion exposes an operational table in the domain's DuckDB as a view over the system's own database file, read
in place: no copy of millions of order lines. A view cannot carry its ATTACH, so every connection that reads one
(the domain's dbt run, a port's staged result) attaches the systems the domain's manifests declare, before it
switches external access off. Only the domain's own connections attach them: no other domain's DuckDB can see them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import duckdb

from platform_resources.home import operational_dir
from platform_resources.sql_sandbox import identifier, literal

SYSTEMS = "MESH_DBT_OPERATIONAL_SYSTEMS"  # a JSON list, set by the platform for one dbt invocation


def database(system: str) -> Path:
    """The operational system's DuckDB file."""
    return operational_dir() / f"{system}.duckdb"


def catalog(system: str) -> str:
    """The name a domain's connections attach the system as, and its ingestion views select from."""
    return f"operational_{system}"


def systems_read(products: Iterable) -> list[str]:
    """The operational systems the products' input ports read (`operational: <system>.<table>`)."""
    return sorted({p.operational.split(".")[0] for m in products for p in m.input_ports if p.operational})


def attach(con: duckdb.DuckDBPyConnection, systems: Iterable[str]) -> None:
    """Attach each system that exists read-only under its catalog name (once per database instance). A missing one
    has failed its ingestion already, and nothing that reads it runs."""
    for system in systems:
        path = database(system)
        if path.exists():
            con.execute(f"attach if not exists {literal(str(path))} as {identifier(catalog(system))} (read_only)")
