"""What an interrupted run leaves behind, cleaned up: runs that stay STARTED, data files no snapshot references.

`mesh run` does both at its start, under the mesh lock; `mesh cleanup` does them on demand.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

from filelock import FileLock, Timeout

from platform_resources.home import mesh_home

ORPHAN_GRACE_SECONDS = 3600  # a publish in progress has written its files but not committed them yet
BATCH_TAG = "mesh/batch"  # every run `mesh run` launches carries it
STARTING_GRACE_SECONDS = 600  # a run younger than this may still be starting its worker


_HELD: set[Path] = set()  # the mesh homes whose run lock this process holds


@contextmanager
def mesh_lock(log) -> Iterator[None]:
    """One `mesh run` at a time on a mesh home: a second one waits, and says for whom. Within the lock, taking it
    again in the same process holds it already (`mesh run` takes it before generating, run_mesh again)."""
    path = mesh_home() / "run.lock"
    if path in _HELD:
        yield
        return
    holder = mesh_home() / "run.lock.holder"
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        who = holder.read_text().strip() if holder.exists() else "another mesh run"
        log(f"waiting: {who} is running on this mesh home ({mesh_home()}); Ctrl-C to stop waiting")
        lock.acquire()
    _HELD.add(path)
    try:
        holder.write_text(f"mesh run (pid {os.getpid()}, started {datetime.now(UTC).isoformat(timespec='seconds')})")
        yield
    finally:
        _HELD.discard(path)
        holder.unlink(missing_ok=True)
        lock.release()


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process of that number
    return True


def fail_abandoned_runs(instance) -> list[str]:
    """Runs a killed `mesh run` launched that no process runs any more: marked failed, so they stop showing as
    STARTED in Dagster. Call it holding the mesh lock (no other `mesh run` is launching); daemon runs are not touched."""
    from dagster import DagsterEventType, DagsterRunStatus, RunsFilter

    unfinished = [DagsterRunStatus.STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.NOT_STARTED,
                  DagsterRunStatus.CANCELING]
    failed = []
    for record in instance.get_run_records(RunsFilter(statuses=unfinished)):
        run = record.dagster_run
        if BATCH_TAG not in run.tags:
            continue
        if run.status in (DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING) and \
                time.time() - record.create_timestamp.timestamp() < STARTING_GRACE_SECONDS:
            continue  # a run being launched now (a re-execution from the UI, say) has no worker pid yet
        starts = instance.all_logs(run.run_id, of_type={DagsterEventType.RUN_START, DagsterEventType.ENGINE_EVENT})
        if any(_alive(entry.dagster_event.pid) for entry in starts if entry.dagster_event):
            continue
        instance.report_run_failed(run, "the mesh run that launched this run was killed, and no process runs it "
                                        "any more; its ports kept serving their previous versions")
        failed.append(run.run_id)
    return failed


@dataclass
class OrphanSweep:
    removed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # tables whose files are not local


def remove_orphan_files(older_than_seconds: float = ORPHAN_GRACE_SECONDS) -> OrphanSweep:
    """Delete the data files under each port table that no retained snapshot references (a publish killed before
    its commit wrote them), once they are older than `older_than_seconds`."""
    from platform_resources import ports

    sweep = OrphanSweep()
    catalog = ports.catalog()
    cutoff = time.time() - older_than_seconds
    for (namespace,) in catalog.list_namespaces():
        for identifier in catalog.list_tables(namespace):
            table = catalog.load_table(identifier)
            location = urlparse(table.location())
            if location.scheme not in ("", "file"):
                sweep.skipped.append(".".join(identifier))
                continue
            referenced = {urlparse(path).path for path in ports.referenced_files(table)}
            stale = {str(file) for file in Path(location.path, "data").rglob("*")
                     if file.is_file() and str(file) not in referenced and file.stat().st_mtime < cutoff}
            sweep.removed += ports.delete_local_files(table, stale)
    return sweep
