"""After a killed run: one mesh run at a time, abandoned runs marked failed, uncommitted data files removed."""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
from dagster import DagsterEvent, DagsterEventType, DagsterInstance, DagsterRun, DagsterRunStatus

from platform_resources import maintenance, ports
from platform_resources.home import prepare_home

PORT = "geography.nations.nations"


def test_a_second_mesh_run_waits_and_says_for_whom(fresh_home):
    prepare_home()
    done = fresh_home / "first-run-done"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom pathlib import Path\nfrom platform_resources.maintenance import mesh_lock\n"
        f"with mesh_lock(print):\n    print('holding', flush=True)\n    time.sleep(3)\n    Path({str(done)!r}).touch()\n")],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "MESH_HOME": str(fresh_home)})
    assert holder.stdout.readline().strip() == "holding"
    said = []
    with maintenance.mesh_lock(said.append):
        assert done.exists()  # acquired only once the first run had finished its work and let go
    holder.wait()
    assert said == [said[0]] and f"mesh run (pid {holder.pid}," in said[0] and "waiting" in said[0]


def test_the_process_holding_the_lock_takes_it_again_at_once_and_keeps_it(fresh_home):
    prepare_home()
    inner_done = threading.Event()

    def take_twice() -> None:
        with maintenance.mesh_lock(print), maintenance.mesh_lock(print):  # `mesh run`, then run_mesh
            inner_done.set()

    taker = threading.Thread(target=take_twice, daemon=True)
    taker.start()
    assert inner_done.wait(30), "the second take waited for the lock its own process holds"
    taker.join(30)
    other = subprocess.run([sys.executable, "-c", "from platform_resources.maintenance import mesh_lock\n"
                            "with mesh_lock(print): print('taken')"], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "MESH_HOME": str(fresh_home)})
    assert other.stdout.strip() == "taken"  # released when the outer take ended


def test_runs_of_a_killed_mesh_run_are_marked_failed_and_live_ones_are_left(fresh_home):
    prepare_home()
    instance = DagsterInstance.get()
    try:
        abandoned = instance.add_run(DagsterRun("sales_all_products", status=DagsterRunStatus.STARTED,
                                                tags={maintenance.BATCH_TAG: "killed"}))
        live = instance.add_run(DagsterRun("crm_all_products", status=DagsterRunStatus.STARTED,
                                           tags={maintenance.BATCH_TAG: "running"}))
        # Its run worker started, in this (living) process.
        instance.report_dagster_event(DagsterEvent(DagsterEventType.RUN_START.value, "crm_all_products",
                                                   pid=os.getpid()), live.run_id)
        daemon_run = instance.add_run(DagsterRun("supply_all_products", status=DagsterRunStatus.STARTED))
        assert maintenance.fail_abandoned_runs(instance) == [abandoned.run_id]
        assert instance.get_run_by_id(abandoned.run_id).status == DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(live.run_id).status == DagsterRunStatus.STARTED
        assert instance.get_run_by_id(daemon_run.run_id).status == DagsterRunStatus.STARTED  # not the mesh's
    finally:
        instance.dispose()


def test_data_files_no_snapshot_references_are_removed_once_old_enough(fresh_home):
    prepare_home()
    published = ports.publish(PORT, pa.table({"n_nationkey": [1, 2], "n_name": ["A", "B"]}))
    data = Path(published.location.removeprefix("file://")) / "data"
    committed = sorted(data.iterdir())
    stray, fresh = data / "00000-killed-publish.parquet", data / "00000-publishing-now.parquet"
    for file in (stray, fresh):
        file.write_bytes(b"PAR1 a data file whose commit never came")
    an_hour_ago = time.time() - 2 * maintenance.ORPHAN_GRACE_SECONDS
    os.utime(stray, (an_hour_ago, an_hour_ago))
    sweep = maintenance.remove_orphan_files()
    assert sweep.removed == [str(stray)] and fresh.exists()
    assert sorted(p for p in data.iterdir() if p != fresh) == committed
    assert ports.scan_version(PORT, ports.resolve_version(PORT)).num_rows == 2
