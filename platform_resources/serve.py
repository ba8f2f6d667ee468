"""`mesh serve`: each domain as its own code server, as in a deployment, and a workspace of grpc_server entries.

Every local domain gets a `dagster code-server` process (what its image runs in production, see deploy/); the
webserver, the daemon and `mesh run` reach them through `.mesh/workspace.grpc.yaml`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from platform_resources.home import mesh_home, prepare_home
from platform_resources.registry import Domain, published_registry

DAGSTER = Path(sys.executable).parent / "dagster"
START_TIMEOUT_SECONDS = 120


@dataclass(frozen=True)
class CodeServer:
    domain: str
    port: int
    process: subprocess.Popen


def grpc_workspace_file() -> Path:
    return mesh_home() / "workspace.grpc.yaml"


def _start(domain: Domain, host: str, port: int, log) -> subprocess.Popen:
    if domain.module is None:
        raise ValueError(f"domain '{domain.name}' has no local code location to serve; its own deployment serves it")
    command = [str(DAGSTER), "code-server", "start", "-h", host, "-p", str(port), "-m", domain.module,
               "-d", str(domain.working_directory), "--location-name", domain.name]
    # Its own session: Ctrl-C in the terminal reaches us, and we stop the servers we started, by PID. SIGINT is
    # restored: started from a script with `&` it is ignored, and Dagster's servers then ignore SIGTERM too.
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _healthy(host: str, port: int) -> bool:
    check = subprocess.run([str(DAGSTER), "api", "grpc-health-check", "-h", host, "-p", str(port)],
                           capture_output=True, text=True)
    return check.returncode == 0


def stop(servers: list[CodeServer]) -> None:
    for server in servers:
        if server.process.poll() is None:
            os.killpg(server.process.pid, signal.SIGTERM)
    for server in servers:
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()


@contextlib.contextmanager
def serving(domains: list[str] | None = None, host: str = "127.0.0.1", first_port: int = 4000) -> Iterator[Path]:
    """Publish and prepare the local domains, start one code server each, and yield their grpc workspace file."""
    from platform_resources import dbt_prepare

    prepare_home()
    registry = published_registry()
    dbt_prepare.prepare(registry, domains)
    selected = [d for name, d in registry.domains.items() if d.is_local and (not domains or name in domains)]
    unknown = sorted(set(domains or []) - {d.name for d in selected})
    if unknown:
        raise ValueError(f"no local code location for {unknown}; the workspace has {sorted(registry.domains)}")
    servers: list[CodeServer] = []
    logs = mesh_home() / "logs"
    try:
        for offset, domain in enumerate(selected):
            log = (logs / f"{domain.name}.code-server.log").open("w")
            servers.append(CodeServer(domain.name, first_port + offset, _start(domain, host, first_port + offset, log)))
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        for server in servers:
            while not _healthy(host, server.port):
                if server.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the code server of {server.domain} did not start; see "
                                       f"{logs / (server.domain + '.code-server.log')}")
                time.sleep(0.5)
        workspace = grpc_workspace_file()
        workspace.write_text("# Written by `mesh serve`: one code server per domain.\n" + yaml.safe_dump({"load_from": [
            {"grpc_server": {"host": host, "port": s.port, "location_name": s.domain}} for s in servers]}, sort_keys=False))
        yield workspace
    finally:
        stop(servers)


def _serve(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a plain `kill` stops the code servers too
    with serving(args.domain, args.host, args.port) as workspace:
        print(f"{len(yaml.safe_load(workspace.read_text())['load_from'])} code servers up; workspace: {workspace}")
        print(f"  the UI on them:   dagster dev -w {workspace}   (or dagster-webserver -w ... and dagster-daemon run -w ...)")
        print(f"  the mesh on them: MESH_WORKSPACE={workspace} mesh run")
        print("Ctrl-C stops them.")
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


def add_command(commands: argparse._SubParsersAction, help: str) -> None:
    parser = commands.add_parser("serve", help=help)
    parser.add_argument("--domain", action="append", help="only this domain (repeatable)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4000, help="port of the first domain; the others follow (default 4000)")
    parser.set_defaults(handler=_serve)
