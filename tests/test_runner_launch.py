"""`mesh run` launches the domains' runs from its own process: a location that does not load is its domain's error
only, and Ctrl-C stops the runs and every code server it started."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from dagster import DagsterInstance, DagsterRunStatus

from platform_resources.maintenance import BATCH_TAG
from platform_resources.runner import domain_log, run_mesh
from workspaces import copy_sample_mesh

BROKEN = "the definitions of crm are broken on purpose"


def test_a_location_that_fails_to_load_fails_its_domain_only_and_says_why(fresh_home, tmp_path, monkeypatch):
    workspace = copy_sample_mesh(tmp_path / "mesh")
    definitions = tmp_path / "mesh/mesh_code_locations/crm/crm_domain/definitions.py"
    definitions.write_text(f"raise ValueError({BROKEN!r})\n" + definitions.read_text())
    monkeypatch.setenv("MESH_WORKSPACE", str(workspace))
    lines: list[str] = []
    summary = run_mesh(0.01, domains=["geography", "crm"], log=lines.append)

    assert summary.failed_domains == {"crm": f"not launched: ValueError: {BROKEN}"}
    assert "crm" not in summary.run_ids
    assert summary.ports["geography.nations.nations"].rows == 25  # the other domain ran
    assert any(line.split()[:1] == ["crm"] and "NOT LAUNCHED" in line and str(domain_log("crm")) in line
               for line in lines), lines
    assert f"ValueError: {BROKEN}" in domain_log("crm").read_text()  # the whole traceback is in the domain's log


def _processes_of(home: Path) -> list[int]:
    """The processes whose environment names this mesh home: the code servers and run workers of its mesh run."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                environment = (proc / "environ").read_bytes().split(b"\0")
            except OSError:  # gone, or not ours
                continue
            if f"MESH_HOME={home}".encode() in environment:
                found.append(int(proc.name))
    return found


def test_ctrl_c_cancels_the_runs_and_stops_every_process_mesh_run_started(fresh_home):
    script = ("from platform_resources.runner import run_mesh\n"
              "run_mesh(0.01, domains=['geography', 'crm'], log=lambda line: print(line, flush=True))\n")
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    seen = []
    for line in process.stdout:  # interrupted as soon as a run is launched: a sample run takes only seconds
        seen.append(line)
        if "started" in line:
            break
    assert process.poll() is None, "".join(seen)
    process.send_signal(signal.SIGINT)
    output = "".join(seen) + process.communicate(timeout=120)[0]
    assert "KeyboardInterrupt" in output, output[-3000:]

    deadline = time.monotonic() + 30  # the code servers exit once their runs are over
    while _processes_of(fresh_home) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _processes_of(fresh_home)
    instance = DagsterInstance.get()
    try:
        runs = [run for run in instance.get_runs() if BATCH_TAG in run.tags]
        statuses = [(run.job_name, run.status) for run in runs]
        assert runs and all(run.is_finished for run in runs), statuses
        # Interrupted at its launch, a run did not succeed: canceled, or failed when its worker was stopped
        # before it could report the cancellation (which one depends on timing).
        assert any(run.status in (DagsterRunStatus.CANCELED, DagsterRunStatus.FAILURE) for run in runs), statuses
    finally:
        instance.dispose()


def test_domains_that_more_domains_wait_on_launch_first_and_upstreams_before_their_dependents():
    from platform_resources.runner import _launch_order

    graph = {"geography": set(), "crm": set(), "sales": set(), "supply": set(),
             "finance": {"sales", "geography", "supply", "crm"}, "marketing": {"sales", "crm"}}
    order = _launch_order(graph)
    assert order[:2] == ["crm", "sales"]  # finance and marketing wait on both
    assert all(order.index(up) < order.index(d) for d, ups in graph.items() for up in ups)


def test_a_run_that_ends_starts_the_next_domain_without_waiting_for_a_poll(fresh_home):
    # Polls an hour apart: only the run worker's word that its run ended moves mesh run on, one domain at a time.
    script = ("from platform_resources import runner\n"
              "runner.POLL_SECONDS = 3600\n"
              "summary = runner.run_mesh(0.01, domains=['geography', 'crm'], workers=1, log=lambda line: None)\n"
              "print(summary.ok, summary.ports['crm.customers.customers'].rows)\n")
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        output = process.communicate(timeout=600)[0]
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise AssertionError("mesh run waited for a poll after a run ended") from None
    assert output.strip().splitlines()[-1] == "True 1500", output[-3000:]
