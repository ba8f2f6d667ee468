"""Where the mesh keeps its state: MESH_HOME, or .mesh/ at the repository root."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

_DAGSTER_YAML = """\
# Written by the mesh platform: one Dagster instance for `mesh run` and `dagster dev`.
telemetry:
  enabled: false
"""


def workspace_file() -> Path:
    """The workspace.yaml whose domains make the mesh: MESH_WORKSPACE, or the repository's."""
    return Path(os.environ.get("MESH_WORKSPACE") or REPO_ROOT / "workspace.yaml").resolve()


def mesh_home() -> Path:
    return Path(os.environ.get("MESH_HOME") or REPO_ROOT / ".mesh").resolve()


def domain_duckdb_path(domain: str) -> Path:
    """The domain's private DuckDB database (dbt's target). Nobody else opens it."""
    return mesh_home() / "domains" / f"{domain}.duckdb"


def operational_dir() -> Path:
    return mesh_home() / "operational"


def dagster_home() -> Path:
    return Path(os.environ.get("DAGSTER_HOME") or mesh_home() / "dagster").resolve()


def connect_store(file_name: str, create_table: str) -> sqlite3.Connection:
    """A SQLite file of the mesh home (metrics, access log), its table created on first use.

    The timeout lets parallel domain workers wait for each other's writes instead of failing.
    """
    path = mesh_home() / file_name
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=30)
    con.execute(create_table)
    return con


def prepare_home() -> Path:
    """Create the mesh home and its Dagster instance config; export the variables tools read."""
    home = mesh_home()
    for sub in ("domains", "operational", "iceberg", "logs"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    dagster = dagster_home()
    dagster.mkdir(parents=True, exist_ok=True)
    config = dagster / "dagster.yaml"
    if not config.exists():
        config.write_text(_DAGSTER_YAML)
    os.environ["MESH_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(dagster)
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    return home
