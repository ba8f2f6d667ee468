"""Runs of local code locations, each executed in a worker process forked from one process that imported Dagster,
dagster-dbt and the platform once.

Launched through a code server, a domain's run costs two fresh Python processes (the server and the run worker it
spawns), each importing Dagster, dagster-dbt and pyiceberg and loading the location: about 3 s of CPU each, twice
per domain. Here a forkserver (Python's multiprocessing) imports them once; each run gets a fork of it, which loads
the domain's code location in process, creates the run with the location's workspace origin (as the webserver and
`dagster job launch` create it: the job's page lists it and the UI can re-execute it) and executes it as Dagster's
run worker (`dagster api execute_run`) does. One process per run still: a domain's environment variables, its
dbt sandbox and a crash stay its own.

Locations with their own Python executable or served by a code server of their own (grpc_server) are launched
through their code server (platform_resources.launch).
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from dagster import DagsterInstance

from platform_resources.dbt_fork import release_adapters
from platform_resources.event_log_files import kept_open
from platform_resources.launch import NotLaunched, create_run, root_cause

STOP_SECONDS = 10  # how long an interrupted run may take to end before its worker is killed


def is_local(entry: Mapping[str, Any]) -> bool:
    """A workspace entry whose location this Python environment loads (not a grpc_server, no executable of its own)."""
    kind, target = next(iter(entry.items()))
    return kind in ("python_module", "python_file", "python_package") and not target.get("executable_path")


class RunWorkers:
    """The run workers forked from the forkserver (platform_resources.forkserver.start_forkserver first, for its
    preload). Leaving the context waits for the workers (and kills those still running after STOP_SECONDS)."""

    def __init__(self, instance: DagsterInstance, cwd: Path, log_of: Callable[[str], Path]):
        self._instance_ref = instance.get_ref()
        self._cwd = cwd
        self._log_of = log_of
        self._context = multiprocessing.get_context("forkserver")
        self._workers: dict[str, multiprocessing.process.BaseProcess] = {}
        self._stopping = threading.Event()
        self.ended = threading.Event()  # set as a run's execution ends: the next domain need not wait for a poll

    def __enter__(self) -> RunWorkers:
        return self

    def __exit__(self, *exc_info) -> None:
        self._stopping.set()
        for worker in self._workers.values():
            worker.join(STOP_SECONDS)
            if worker.is_alive():
                worker.kill()
                worker.join()

    def launch(self, domain: str, spec: Path, job_name: str, run_id: str, tags: Mapping[str, str],
               prepare: Callable[[], None]) -> Future[None]:
        """Prepare the domain (in a thread of this process), fork its worker, and resolve once the worker created
        the run; the future's exception says why there is no run."""
        future: Future[None] = Future()
        threading.Thread(target=self._launch, name=f"mesh-launch-{domain}", daemon=True,
                         args=(future, domain, spec, job_name, run_id, dict(tags), prepare)).start()
        return future

    def _launch(self, future: Future[None], *args) -> None:
        try:
            self._start_and_watch(future, *args)
        finally:
            self.ended.set()  # the run ended, or it was never launched: either way the launch loop looks now

    def _start_and_watch(self, future: Future[None], domain: str, spec: Path, job_name: str, run_id: str,
                         tags: dict[str, str], prepare: Callable[[], None]) -> None:
        try:
            if self._stopping.is_set():
                raise NotLaunched("mesh run was interrupted before the location loaded")
            prepare()
            receiver, sender = self._context.Pipe(duplex=False)
            # A fork has the forkserver's environment and folder: it gets this process's, as a spawned worker would.
            worker = self._context.Process(target=execute, name=f"mesh-run-{domain}", args=(
                str(spec), domain, job_name, run_id, tags, self._instance_ref, dict(os.environ), str(self._cwd),
                str(self._log_of(domain)), sender))
            worker.start()
            self._workers[run_id] = worker
            sender.close()
            answer = receiver.recv()
        except EOFError:  # the worker is gone without a word
            worker.join()
            answer = f"its run worker exited with code {worker.exitcode} before creating the run"
        except BaseException as exc:  # noqa: BLE001 (the future carries it to the summary)
            future.set_exception(exc)
            return
        if answer:
            future.set_exception(NotLaunched(answer))
            return
        future.set_result(None)
        with contextlib.suppress(EOFError, OSError):
            receiver.recv()  # the worker closes its end once the run's execution is over (or it exits)
        receiver.close()

    def stop(self) -> None:
        """Ctrl-C: no further runs."""
        self._stopping.set()

    def terminate(self, instance: DagsterInstance, run_id: str) -> None:
        """Cancel a started run as Dagster's run launcher does: the run is canceling, its worker is interrupted."""
        instance.report_run_canceling(instance.get_run_by_id(run_id), message="mesh run was interrupted")
        worker = self._workers.get(run_id)
        if worker and worker.is_alive():
            os.kill(worker.pid, signal.SIGINT)


def execute(spec: str, domain: str, job_name: str, run_id: str, tags: dict[str, str], instance_ref: Any,
            environment: dict[str, str], cwd: str, log_path: str, created: multiprocessing.connection.Connection) -> None:
    """The run worker: load the location, create the run, say so (None, or why not), execute it."""
    gc.freeze()  # what the forkserver imported: never scanned by this worker's collections (nor copied by them)
    os.environ.clear()
    os.environ.update(environment)
    os.chdir(cwd)  # module working directories are relative to the workspace's folder
    with open(log_path, "w") as log:  # this run's log: the domain's previous one is replaced
        os.dup2(log.fileno(), sys.stdout.fileno())
        os.dup2(log.fileno(), sys.stderr.fileno())
    from dagster._core.events import DagsterEvent, DagsterEventType, EngineEventData
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.remote_representation.code_location import InProcessCodeLocation
    from dagster._core.workspace.load_target import WorkspaceFileTarget
    from dagster._grpc.impl import core_execute_run
    from dagster._utils.error import serializable_error_info_from_exc_info
    from dagster._utils.hosted_user_process import recon_job_from_origin
    from dagster._utils.interrupts import capture_interrupts

    with capture_interrupts(), DagsterInstance.from_ref(instance_ref) as instance, kept_open(instance):
        try:
            origin = WorkspaceFileTarget(paths=[spec]).create_origins()[0]
            location = InProcessCodeLocation(InProcessCodeLocationOrigin(
                origin.loadable_target_origin, location_name=domain), instance=instance)
            run = create_run(instance, location, origin, job_name, run_id, tags)
        except Exception:  # noqa: BLE001 (the user's code location: its error goes to the log and the summary)
            error = serializable_error_info_from_exc_info(sys.exc_info())
            print(f"\nThe code location {domain} failed to load:\n{error.to_string()}", flush=True)
            created.send(root_cause(error))
            return
        # STARTING, as the instance's launch_run reports it before the run launcher starts the worker: from here
        # on, mesh run cancels the run (a run not started yet it would only mark canceled).
        instance.report_dagster_event(DagsterEvent(DagsterEventType.PIPELINE_STARTING.value, job_name=job_name),
                                      run_id=run_id)
        created.send(None)
        instance.report_engine_event(f"Started process for run (pid: {os.getpid()}).", run,
                                     EngineEventData.in_process(os.getpid()))
        # What `dagster api execute_run` runs; interrupted, it has recorded how the run ended before raising.
        try:
            with contextlib.suppress(KeyboardInterrupt):
                for _ in core_execute_run(recon_job_from_origin(run.job_code_origin), run, instance,
                                          inject_env_vars=True):
                    pass
        finally:
            created.close()  # mesh run reads how the run ended now, not at its next poll
            release_adapters()
