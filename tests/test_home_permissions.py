"""The mesh home is private to its owner: folders 0700, files 0600, whatever creates them; an open home is closed."""

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from platform_resources import access_log, ports
from platform_resources.home import PRIVATE_UMASK, prepare_home
from platform_resources.lineage.outbox import Outbox


@pytest.fixture(autouse=True)
def restore_umask():
    """prepare_home sets the process umask; give the test session back the one it had."""
    before = os.umask(0o022)
    os.umask(before)
    yield
    os.umask(before)


def open_to_others(home: Path) -> list[str]:
    """Every path under home (home included) that the group or other users may read, write or enter."""
    found = []
    for path in [home, *home.rglob("*")]:
        if not path.is_symlink() and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            found.append(f"{path.relative_to(home.parent)} {stat.filemode(path.stat().st_mode)}")
    return found


def test_what_the_mesh_creates_in_a_new_home_is_private(fresh_home):
    os.umask(0o022)  # a usual login umask: files would be 0644, folders 0755
    prepare_home()
    ports.publish("geography.nations.nations", pa.table({"n_nationkey": pa.array([0], pa.int32()),
                                                         "n_name": ["ALGERIA"]}))
    access_log.record("bi.revenue", "geography.nations.nations", True, None, "read")
    box = Outbox(fresh_home / "lineage" / "outbox")
    with box.locked():
        box.append({"eventType": "COMPLETE"})
    assert (fresh_home / "iceberg").is_dir() and access_log.log_file().exists() and box.pending()
    assert open_to_others(fresh_home) == []
    assert stat.S_IMODE(fresh_home.stat().st_mode) == 0o700
    assert stat.S_IMODE(access_log.log_file().stat().st_mode) == 0o600
    assert stat.S_IMODE(box.pending()[0].stat().st_mode) == 0o600


def test_the_mesh_processes_run_with_a_private_umask(fresh_home):
    prepare_home()
    current = os.umask(0)
    os.umask(current)
    assert current == PRIVATE_UMASK
    child = subprocess.run([sys.executable, "-c", "import os; print(oct(os.umask(0)))"], capture_output=True, text=True)
    assert child.stdout.strip() == oct(PRIVATE_UMASK)  # dbt, run workers and code servers inherit it


def test_a_world_readable_home_is_made_private_once_and_said_so(fresh_home, caplog):
    os.umask(0o022)
    (fresh_home / "domains").mkdir(parents=True)
    duckdb_file = fresh_home / "domains" / "crm.duckdb"
    duckdb_file.write_text("contacts")
    script = fresh_home / "logs" / "hook.sh"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    outside = fresh_home.parent / "outside.txt"
    outside.write_text("not the mesh's")
    outside.chmod(0o644)
    (fresh_home / "link").symlink_to(outside)
    for path in (fresh_home, fresh_home / "domains", fresh_home / "logs"):
        path.chmod(0o755)
    with caplog.at_level(logging.WARNING):
        prepare_home()
        prepare_home()
    assert open_to_others(fresh_home) == []
    assert stat.S_IMODE(duckdb_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(script.stat().st_mode) == 0o700  # the owner keeps what they had
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644  # a link out of the home is not followed
    said = [r.getMessage() for r in caplog.records if "made it private" in r.getMessage()]
    assert len(said) == 1 and str(fresh_home) in said[0]


def test_a_mesh_command_makes_an_open_home_private_and_tells_the_user(fresh_home):
    fresh_home.mkdir()
    (fresh_home / "access_log.sqlite").write_bytes(b"")
    (fresh_home / "access_log.sqlite").chmod(0o644)
    fresh_home.chmod(0o755)
    mesh = str(Path(sys.executable).parent / "mesh")
    first = subprocess.run([mesh, "access-log"], capture_output=True, text=True)
    again = subprocess.run([mesh, "access-log"], capture_output=True, text=True)
    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    assert "made it private" in first.stderr and "made it private" not in again.stderr
    assert open_to_others(fresh_home) == []


def test_without_the_umask_what_the_mesh_writes_itself_is_private_still(fresh_home):
    """A process the mesh did not start (a code server launched by Dagster itself) has the login umask."""
    prepare_home()
    os.umask(0o022)
    access_log.record(None, "geography.nations.nations", False, None, "denied")
    box = Outbox(fresh_home / "lineage" / "outbox")
    with box.locked():
        box.append({"eventType": "COMPLETE"})
        box.pause(1.0)
        box.quarantine(box.append({"eventType": "START"}), "refused")
    assert open_to_others(fresh_home) == []
