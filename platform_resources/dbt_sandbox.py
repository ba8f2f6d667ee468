"""A dbt-duckdb plugin: a domain's dbt run can open no file but the ones the platform gave it.

The input ports a domain declared are views over their Iceberg data files; those files, the domain's own DuckDB
and its temporary folder are the only paths DuckDB may open. The operational systems its ingestion views read are
attached read-only before that. Every other file (another domain's Parquet, the access log, /etc/passwd) and every
further attach, copy or extension install fails with DuckDB's permission error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

from dbt.adapters.duckdb.plugins import BasePlugin
from duckdb import DuckDBPyConnection

from platform_resources import operational
from platform_resources.sql_sandbox import lock_down

READABLE_FILES = "MESH_DBT_READABLE_FILES"  # a JSON list, set by the platform for one dbt invocation
DOMAIN = "MESH_DBT_DOMAIN"


def environment(domain: str, readable_files: Iterable[str], operational_systems: Iterable[str] = ()) -> dict[str, str]:
    """What the dbt process of one domain needs in its environment."""
    return {DOMAIN: domain, READABLE_FILES: json.dumps(sorted(readable_files)),
            operational.SYSTEMS: json.dumps(sorted(operational_systems))}


class Plugin(BasePlugin):
    def configure_connection(self, conn: DuckDBPyConnection) -> None:
        operational.attach(conn, json.loads(os.environ.get(operational.SYSTEMS) or "[]"))
        lock_down(conn, json.loads(os.environ.get(READABLE_FILES) or "[]"))
