"""The forkserver that `mesh run`'s run workers are forked from (platform_resources.run_workers).

Standard library only: `mesh run` starts it before importing Dagster itself, so the forkserver's imports and the
command's own overlap on two cores instead of following each other.
"""

from __future__ import annotations

import gc
import multiprocessing
import multiprocessing.forkserver
import threading

# What every run worker needs, imported once by the forkserver: Dagster's execution, dagster-dbt, the platform, and
# what they import only when they first need it (the SQL dialect the policies parse with, dbt's build task, the
# Iceberg SQL catalog).
PRELOAD = ["platform_resources.build", "platform_resources.port_asset", "platform_resources.run_workers",
           "dagster._core.remote_representation.code_location", "dagster._grpc.impl",
           "dagster._core.storage.base_storage", "dbt.cli.main", "dbt.task.build", "dbt.adapters.duckdb", "dbt.adapters.factory", "sqlglot.dialects.duckdb",
           "pyiceberg.catalog.sql", "platform_resources.dbt_warm"]


def start_forkserver() -> None:
    """Start the forkserver in the background (again: no-op): it imports PRELOAD (forkserver_preload) while this
    process does other work, and the first fork waits for it. It keeps the umask and environment it starts with:
    prepare the mesh home first."""
    # The forkserver is the process's; so is its preload.
    multiprocessing.set_forkserver_preload(["platform_resources.forkserver_preload"])
    threading.Thread(target=multiprocessing.forkserver.ensure_running, name="mesh-forkserver", daemon=True).start()


def collect_from_here() -> None:
    """After imports made with the garbage collector off (the forkserver's preload, the `mesh` command): what was
    imported is frozen, so no collection scans it again, and collections resume for what comes next."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()
