"""Where the mesh keeps its state: MESH_HOME, or .mesh/ at the repository root.

The home is private to its owner (folders 0700, files 0600): it holds every port's data, classified columns
included, and the access log. The mesh's processes run with umask 077, so what they and their tools (dbt,
DuckDB, pyiceberg, Dagster) create is private too; a home found readable by others is made private once.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

REPO_ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")
PRIVATE_UMASK = 0o077  # nothing the mesh creates is readable or writable by the group or other users
_SHARED_BITS = stat.S_IRWXG | stat.S_IRWXO

_DAGSTER_YAML = """\
# Written by the mesh platform: one Dagster instance for `mesh run` and `dagster dev`.
telemetry:
  enabled: false
# `mesh run` and the UI launch runs at once; the default (queued) coordinator would wait for a daemon.
run_coordinator:
  module: dagster.core.run_coordinator
  class: DefaultRunCoordinator
# One step at a time in each domain's DuckDB pool (platform_resources.dbt.duckdb_pool): runs of one domain
# started by `mesh run` and by the daemon's automation take turns on its single-writer file.
concurrency:
  pools:
    default_limit: 1
"""


# MESH_POSTGRES_URL set: the instance's runs, event logs and schedules live in that PostgreSQL database. The URL
# stays in the environment (read when the instance loads), never in the file.
_POSTGRES_STORAGE_YAML = """\
storage:
  postgres:
    postgres_url:
      env: MESH_POSTGRES_URL
"""

POSTGRES_URL_VARIABLE = "MESH_POSTGRES_URL"


def postgres_url() -> str | None:
    """MESH_POSTGRES_URL, postgresql+psycopg2://user:password@host:5432/db: one PostgreSQL database for the Dagster
    storage, and by default for the Iceberg catalog and the registry store too. None: SQLite in the mesh home."""
    url = os.environ.get(POSTGRES_URL_VARIABLE) or None
    if url and not url.startswith("postgresql+psycopg2://"):
        # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg (version 3), which the platform does not install.
        scheme = url.split("://", 1)[0]
        raise ValueError(f"{POSTGRES_URL_VARIABLE} must name the psycopg2 driver: write postgresql+psycopg2://... "
                         f"instead of {scheme}://...")
    return url


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
    private_folder(path.parent)
    new = not path.exists()
    con = sqlite3.connect(path, timeout=30)
    if new:
        path.chmod(0o600)  # its journal and WAL files take the database file's mode
    con.execute(create_table)
    return con


def private_folder(folder: Path) -> Path:
    """Create `folder` (and missing parents) readable by its owner only."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    for created in missing:
        created.chmod(0o700)
    return folder


def make_private(home: Path) -> list[str] | None:
    """Take the group's and other users' access off everything under `home`; None when the home was private.

    Only when the home folder itself is open: a private home folder protects whatever it holds, so the walk
    runs once, not at every command. The home folder goes last: a walk cut short is done again next time.
    Returns the paths that could not be changed (another owner, a read-only mount), with why."""
    if not home.is_dir() or not home.stat().st_mode & _SHARED_BITS:
        return None
    failed = []
    for folder, subfolders, files in os.walk(home, topdown=False):
        for name in (*subfolders, *files):
            failed += _take_shared_bits_off(os.path.join(folder, name))
    return failed + _take_shared_bits_off(str(home))


def _take_shared_bits_off(path: str) -> list[str]:
    if os.path.islink(path):  # chmod would follow the link out of the home
        return []
    try:
        mode = os.stat(path).st_mode
        if mode & _SHARED_BITS:
            os.chmod(path, stat.S_IMODE(mode) & ~_SHARED_BITS)
    except FileNotFoundError:  # removed meanwhile by another process of the mesh
        pass
    except OSError as exc:
        return [f"{path} ({exc.strerror})"]
    return []


def prepare_home() -> Path:
    """Create the mesh home (private) and its Dagster instance config; export the variables tools read."""
    os.umask(PRIVATE_UMASK)  # inherited by every process the mesh starts: run workers, code servers, dbt
    home = mesh_home()
    failed = make_private(home)
    if failed is not None:
        log = logging.getLogger(__name__)
        log.warning("the mesh home %s was readable by other users; made it private (folders 0700, files 0600)", home)
        if failed:
            log.warning("%d paths of the mesh home could not be made private, change them by hand: %s",
                        len(failed), "; ".join(failed[:5]))
    for sub in ("domains", "operational", "iceberg", "logs"):
        private_folder(home / sub)
    dagster = dagster_home()
    private_folder(dagster)
    config = dagster / "dagster.yaml"
    wanted = _DAGSTER_YAML + (_POSTGRES_STORAGE_YAML if postgres_url() else "")
    # A config the mesh wrote follows MESH_POSTGRES_URL (set or unset); one written by hand is left alone.
    if not config.exists() or (config.read_text().startswith(_DAGSTER_YAML.splitlines()[0]) and config.read_text() != wanted):
        config.write_text(wanted)
    os.environ["MESH_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(dagster)
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    return home


def create_tolerating_others(create: Callable[[], T], attempts: int = 5) -> T:
    """Run `create` (open a store, creating its tables when missing), again when another process created them first.

    Two domains that open a fresh PostgreSQL store at once both find a table missing and both create it; the loser
    fails (duplicate table, or duplicate pg_type row). The tables exist then, so the next attempt opens them.
    """
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(1, attempts):
        try:
            return create()
        except (IntegrityError, ProgrammingError):
            time.sleep(0.1 * attempt)
    return create()
