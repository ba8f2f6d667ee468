"""A dbt-duckdb plugin: a domain's dbt run can open no file but the ones the platform gave it.

The input ports a domain declared are views over their Iceberg data files; those files, the domain's own DuckDB
and its temporary folder are the only paths DuckDB may open. Every other file (another domain's Parquet, the
access log, /etc/passwd) and every attach, copy or extension install fails with DuckDB's permission error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

from dbt.adapters.duckdb.plugins import BasePlugin
from duckdb import DuckDBPyConnection

from platform_resources.sql_sandbox import literal

READABLE_FILES = "MESH_DBT_READABLE_FILES"  # a JSON list, set by the platform for one dbt invocation
DOMAIN = "MESH_DBT_DOMAIN"


def environment(domain: str, readable_files: Iterable[str]) -> dict[str, str]:
    """What the dbt process of one domain needs in its environment."""
    return {DOMAIN: domain, READABLE_FILES: json.dumps(sorted(readable_files))}


def _literal_list(paths: list[str]) -> str:
    return "[" + ", ".join(map(literal, paths)) + "]"


def lock_down(conn: DuckDBPyConnection, readable_files: list[str]) -> None:
    """Allow only `readable_files` (and the database's own files), then switch external access off for good."""
    temp = conn.execute("select current_setting('temp_directory')").fetchone()[0]
    if readable_files:
        conn.execute(f"set allowed_paths = {_literal_list(readable_files)}")
    if temp:
        conn.execute(f"set allowed_directories = {_literal_list([temp])}")
    conn.execute("set enable_external_access = false")
    conn.execute("set lock_configuration = true")  # no model can loosen any of it again


class Plugin(BasePlugin):
    def configure_connection(self, conn: DuckDBPyConnection) -> None:
        lock_down(conn, json.loads(os.environ.get(READABLE_FILES) or "[]"))
