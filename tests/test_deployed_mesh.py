"""The mesh as it is deployed: one code server per domain, and the Dagster daemon instead of a central runner.

`mesh serve` starts a `dagster code-server` per domain and writes a grpc_server workspace; `mesh run` launches
through it. Then the daemon alone (declarative automation, each domain's sensor on by default) carries a new
crm version to finance and marketing: no `mesh run` for them.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance

from platform_resources import ports
from platform_resources.runner import format_summary, run_mesh
from platform_resources.serve import serving

PROPAGATION_TIMEOUT_SECONDS = 420
DAEMON = Path(sys.executable).parent / "dagster-daemon"


def crm_consumers(registry) -> list[str]:
    """The finance and marketing ports whose products read a crm port."""
    return sorted(f"{m.id}.{p.name}" for m in registry.products.values() if m.domain in ("finance", "marketing")
                  and any(i.source and i.source.startswith("crm.") for i in m.input_ports) for p in m.output_ports)


@pytest.fixture(scope="module")
def code_servers(mesh_run):
    with serving(first_port=4300) as workspace:
        yield workspace


@pytest.fixture
def through_code_servers(code_servers, monkeypatch):
    monkeypatch.setenv("MESH_WORKSPACE", str(code_servers))
    return code_servers


def test_mesh_run_launches_every_domain_through_its_own_code_server(through_code_servers):
    summary = run_mesh(0.01, log=lambda *_: None)
    assert summary.ok, format_summary(summary)
    assert len(summary.ports) == 18 and set(summary.run_ids) == {"geography", "crm", "sales", "supply", "finance",
                                                                 "marketing"}
    instance = DagsterInstance.get()
    for domain, run_id in summary.run_ids.items():
        origin = instance.get_run_by_id(run_id).remote_job_origin.repository_origin.code_location_origin
        assert (origin.location_name, type(origin).__name__) == (domain, "GrpcServerCodeLocationOrigin")
        assert origin.port in range(4300, 4306)


def test_the_daemon_carries_a_new_crm_version_to_its_consumers_without_mesh_run(through_code_servers, capsys):
    from platform_resources.registry import load_registry

    consumers = crm_consumers(load_registry())
    assert len(consumers) == 5  # finance: returned_items, shipping_priority, local_supplier_volume; marketing: both
    log = (through_code_servers.parent / "logs" / "dagster-daemon.log").open("w")
    daemon = subprocess.Popen([str(DAEMON), "run", "-w", str(through_code_servers)], stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        crm = run_mesh(0.01, domains=["crm"], log=lambda *_: None)
        assert crm.ok, format_summary(crm)
        published = max(ports.resolve_version(p).processing_time for p in crm.ports)
        started = time.monotonic()
        waiting = set(consumers)
        while waiting and time.monotonic() - started < PROPAGATION_TIMEOUT_SECONDS:
            waiting = {p for p in waiting if ports.resolve_version(p).processing_time <= published}
            time.sleep(2)
        seconds = time.monotonic() - started
        assert not waiting, f"after {seconds:.0f} s the daemon had not republished {sorted(waiting)}"
        with capsys.disabled():
            print(f"\n  the daemon republished {len(consumers)} consumer ports of crm {seconds:.0f} s after crm "
                  f"published ({published.isoformat()})")
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)
