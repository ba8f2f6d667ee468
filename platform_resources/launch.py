"""Launching the domains' runs from `mesh run` itself, through Dagster's workspace and instance as the webserver does.

`mesh run` uses this for a location with its own Python executable or its own code server (grpc_server); the runs
of the others are executed in workers forked from a preloaded process (platform_resources.run_workers).

Each domain's code location is loaded once, when its turn comes, in a `WorkspaceProcessContext` over its workspace
entry (in a thread: the other domains' runs are watched meanwhile); its run is then created from the location's remote job (origin, snapshots and execution plan from the
code server) and handed to the instance with `submit_run`, exactly as `dagster job launch` does. The instance's run
launcher starts the run worker from the location's code server.

A local location's code server is started here rather than by Dagster's registry of managed servers, for two
reasons only: its own session (Ctrl-C reaches `mesh run`, which stops exactly what it started) and its output in
the domain's log. It is the same `dagster api grpc` command with the same heartbeat, and the run's origin is the
location's managed origin, as `dagster job launch` and the webserver give it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from dagster import DagsterInstance
from dagster import __version__ as dagster_version
from dagster._core.definitions.selector import JobSubsetSelector
from dagster._core.errors import DagsterUserCodeUnreachableError
from dagster._core.origin import get_python_environment_entry_point
from dagster._core.remote_origin import (CodeLocationOrigin, ManagedGrpcPythonEnvCodeLocationOrigin,
                                         RemoteJobOrigin, RemoteRepositoryOrigin)
from dagster._core.remote_representation.code_location import CodeLocation
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.remote_representation.grpc_server_registry import GrpcServerEndpoint, GrpcServerRegistry
from dagster._core.workspace.context import (
    WEBSERVER_GRPC_SERVER_HEARTBEAT_TTL,
    WorkspaceProcessContext,
    WorkspaceRequestContext,
)
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster._grpc.client import DagsterGrpcClient
from dagster._grpc.constants import GrpcServerCommand
from dagster._serdes import serialize_value
from dagster._utils.error import SerializableErrorInfo
from dagster._utils.merger import merge_dicts
from dagster._utils.tags import normalize_tags

from platform_resources.dagster_fixes import plan_unpartitioned_entities_once

STOP_SECONDS = 10  # how long a code server may take to exit once asked to


class NotLaunched(Exception):
    """Why a domain's run could not be created: the user's root cause, for the summary."""


class _CodeServers(GrpcServerRegistry):
    """Dagster's registry of managed code servers, but each server started by the mesh: in a session of its own and
    printing to its domain's log. Servers start as their locations load, several at once (Dagster's registry
    starts one at a time under its lock)."""

    def __init__(self, instance: DagsterInstance, folder: Path, cwd: Path, log_of: Callable[[str], Path]):
        super().__init__(instance_ref=instance.get_ref(), server_command=GrpcServerCommand.API_GRPC,
                         heartbeat_ttl=WEBSERVER_GRPC_SERVER_HEARTBEAT_TTL,
                         startup_timeout=instance.code_server_process_startup_timeout,
                         wait_for_processes_on_shutdown=False)
        self._folder, self._cwd, self._log_of = folder, cwd, log_of
        self._processes: dict[str, tuple[subprocess.Popen, GrpcServerEndpoint]] = {}
        self._guard = threading.Lock()

    def get_grpc_endpoint(self, code_location_origin: ManagedGrpcPythonEnvCodeLocationOrigin) -> GrpcServerEndpoint:
        name = code_location_origin.location_name
        with self._guard:
            if name not in self._processes:
                self._processes[name] = self._start(code_location_origin)
        process, endpoint = self._processes[name]
        self._wait_until_up(name, process, endpoint)
        return endpoint

    reload_grpc_endpoint = get_grpc_endpoint

    def _start(self, origin: ManagedGrpcPythonEnvCodeLocationOrigin) -> tuple[subprocess.Popen, GrpcServerEndpoint]:
        target = origin.loadable_target_origin
        socket = str(self._folder / f"{origin.location_name}.sock")
        # What Dagster's registry runs (dagster._grpc.server.open_server_process), with the mesh's session and log.
        command = [*get_python_environment_entry_point(target.executable_path or sys.executable),
                   *GrpcServerCommand.API_GRPC.server_command, "--socket", socket, "--heartbeat",
                   "--heartbeat-timeout", str(self._heartbeat_ttl), "--log-level", self._log_level,
                   *(["--use-python-environment-entry-point"] if target.executable_path else []),
                   "--inject-env-vars-from-instance", "--instance-ref", serialize_value(self.instance_ref),
                   "--location-name", origin.location_name, *target.get_cli_args()]
        with self._log_of(origin.location_name).open("w") as log:
            process = subprocess.Popen(command, cwd=self._cwd, stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        return process, GrpcServerEndpoint(host="localhost", port=None, socket=socket)

    def _wait_until_up(self, name: str, process: subprocess.Popen, endpoint: GrpcServerEndpoint) -> None:
        client = DagsterGrpcClient(socket=endpoint.socket, host=endpoint.host)
        deadline = time.monotonic() + self._startup_timeout
        while True:
            try:
                client.ping("")
                return
            except DagsterUserCodeUnreachableError:
                pass
            if process.poll() is not None:
                raise NotLaunched(f"the code server of {name} exited with code {process.returncode} while starting")
            if time.monotonic() > deadline:
                raise NotLaunched(f"the code server of {name} did not answer within {self._startup_timeout} s "
                                  "(code_servers: local_startup_timeout in dagster.yaml)")
            time.sleep(0.1)

    def stop(self, name: str) -> None:
        """Ask the location's server to exit once its runs are over (the run launcher's runs are its children)."""
        with self._guard:
            started = self._processes.get(name)
        if started and started[0].poll() is None:
            with contextlib.suppress(Exception):  # already gone: nothing to stop
                started[1].create_client().shutdown_server()

    def __exit__(self, exception_type, exception_value, traceback) -> None:
        super().__exit__(exception_type, exception_value, traceback)  # its clean-up thread; it started nothing
        for name in list(self._processes):
            self.stop(name)
        for process, _ in self._processes.values():
            try:
                process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def root_cause(error: SerializableErrorInfo) -> str:
    """The innermost exception of a load error: the user's, not Dagster's wrappers around it."""
    while True:
        inner = error.cause or error.context
        if inner is None:
            return error.message.strip().splitlines()[-1] if error.message.strip() else error.cls_name or "error"
        error = inner


class Launcher:
    """The domains' code locations, loaded in the background (`load`), and their runs, created and submitted (`launch`).

    Use it as a context manager: leaving it closes every location and stops the code servers it started."""

    def __init__(self, instance: DagsterInstance, folder: Path, cwd: Path, log_of: Callable[[str], Path],
                 loaders: int = 2):
        self._instance = instance
        self._servers = _CodeServers(instance, folder, cwd, log_of)
        self._loading = ThreadPoolExecutor(max(1, loaders), thread_name_prefix="mesh-load")
        self._launching = ThreadPoolExecutor(4, thread_name_prefix="mesh-launch")
        self._locations: dict[str, Future[WorkspaceProcessContext]] = {}
        self._stopping = threading.Event()
        self._log_of = log_of
        # Dagster warns of a location that failed to load on stderr; mesh run says it in the domain's line and log.
        warnings.filterwarnings("ignore", message="Error loading repository location", category=UserWarning)

    def __enter__(self) -> Launcher:
        return self

    def __exit__(self, exception_type, exception_value, traceback) -> None:
        self._stopping.set()
        self._launching.shutdown(wait=True, cancel_futures=True)
        self._loading.shutdown(wait=True, cancel_futures=True)
        for future in self._locations.values():
            if future.done() and not future.cancelled() and future.exception() is None:
                with contextlib.suppress(Exception):
                    future.result().__exit__(None, None, None)
        self._servers.__exit__(exception_type, exception_value, traceback)

    def load(self, domain: str, spec: Path, prepare: Callable[[], None] = lambda: None) -> None:
        """Start loading the domain's location (its one-entry workspace file `spec`) in the background, once:
        `prepare` first (what the location reads at load)."""
        if domain not in self._locations:
            self._locations[domain] = self._loading.submit(self._load, spec, prepare)

    def _load(self, spec: Path, prepare: Callable[[], None]) -> WorkspaceProcessContext:
        if self._stopping.is_set():
            raise NotLaunched("mesh run was interrupted before the location loaded")
        prepare()
        return WorkspaceProcessContext(self._instance, WorkspaceFileTarget(paths=[str(spec)]),
                                       version=dagster_version, grpc_server_registry=self._servers)

    def launch(self, domain: str, job_name: str, run_id: str, tags: Mapping[str, str]) -> Future[None]:
        """Create the domain's run once its location is loaded and submit it to the instance. The future's
        exception says why it was not launched."""
        return self._launching.submit(self._launch, domain, job_name, run_id, dict(tags))

    def _launch(self, domain: str, job_name: str, run_id: str, tags: dict[str, str]) -> None:
        context = self._locations[domain].result()
        workspace = context.create_request_context()
        error = workspace.get_code_location_error(domain)
        if error:
            with self._log_of(domain).open("a") as log:
                log.write(f"\nThe code location {domain} failed to load:\n{error.to_string()}")
            raise NotLaunched(root_cause(error))
        if self._stopping.is_set():
            raise NotLaunched("mesh run was interrupted before the run was created")
        _submit(self._instance, workspace, domain, job_name, run_id, tags)

    def close(self, domain: str) -> None:
        """The domain's run is over: its location and code server are no longer needed."""
        future = self._locations.get(domain)
        if future is not None and future.done() and future.exception() is None:
            with contextlib.suppress(Exception):
                future.result().__exit__(None, None, None)
        self._servers.stop(domain)

    def stop(self) -> None:
        """Ctrl-C: no further location loads and no further runs submitted."""
        self._stopping.set()


def _submit(instance: DagsterInstance, workspace: WorkspaceRequestContext, location: str, job_name: str,
            run_id: str, tags: dict[str, str]) -> None:
    """`dagster job launch` (dagster._cli.job.execute_launch_command and _create_run), for one job of one location."""
    create_run(instance, workspace.get_code_location(location), None, job_name, run_id, tags)
    instance.submit_run(run_id, workspace)


def create_run(instance: DagsterInstance, code_location: CodeLocation, origin: CodeLocationOrigin | None,
               job_name: str, run_id: str, tags: Mapping[str, str]) -> DagsterRun:
    """The run of a job of a loaded location, as `dagster job launch` creates it; `origin` (the location's workspace
    origin) is the run's, for a location loaded in process."""
    plan_unpartitioned_entities_once()
    repository = next(iter(code_location.get_repositories().values()))
    selector = JobSubsetSelector(location_name=code_location.name, repository_name=repository.name,
                                 job_name=job_name, op_selection=None)
    remote_job = code_location.get_job(selector)
    plan = code_location.get_execution_plan(remote_job, {}, step_keys_to_execute=None, known_state=None,
                                            instance=instance).execution_plan_snapshot
    remote_origin = remote_job.get_remote_origin() if origin is None else RemoteJobOrigin(
        repository_origin=RemoteRepositoryOrigin(code_location_origin=origin, repository_name=repository.name),
        job_name=job_name)
    return instance.create_run(
        job_name=job_name, run_id=run_id, run_config={}, resolved_op_selection=remote_job.resolved_op_selection,
        step_keys_to_execute=plan.step_keys_to_execute, op_selection=None, status=None, root_run_id=None,
        parent_run_id=None, tags=normalize_tags(merge_dicts(remote_job.tags, dict(tags))),
        job_snapshot=remote_job.job_snapshot, execution_plan_snapshot=plan,
        parent_job_snapshot=remote_job.parent_job_snapshot, remote_job_origin=remote_origin,
        job_code_origin=remote_job.get_python_origin(), asset_selection=None, asset_check_selection=None,
        asset_graph=repository.asset_graph)
