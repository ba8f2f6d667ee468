"""`mesh run`: materialize every data product of the workspace's domains, domain by domain in dependency order.

Each domain's job `<domain>_all_products` runs as a run of the Dagster instance with the domain's code location as
origin, as the webserver and `dagster job launch` create it: the job's page lists it and the UI can re-execute it.
A local location's run worker is forked from a preloaded forkserver (platform_resources.run_workers); a location
with its own Python or code server is launched through that server (platform_resources.launch). The summary is
read back from the run's event log.
"""

from __future__ import annotations

import contextlib
import functools
import graphlib
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import yaml
from dagster import AssetKey, DagsterEvent, DagsterEventType, DagsterInstance, DagsterRunStatus

from platform_resources import dbt_prepare
from platform_resources.domain_job import DOMAIN_JOB_SUFFIX, NOT_PUBLISHED
from platform_resources.forkserver import start_forkserver
from platform_resources.governance.validate import location_failure
from platform_resources.home import mesh_home, operational_dir, prepare_home, workspace_file
from platform_resources.launch import Launcher, NotLaunched
from platform_resources.lineage.delivery import FlushResult, delivery
from platform_resources.lineage.resource import register_ports
from platform_resources.partitions import plan_ranges_in_one_event, run_tags
from platform_resources.maintenance import BATCH_TAG, fail_abandoned_runs, mesh_lock, remove_orphan_files
from platform_resources.redaction import redact_values
from platform_resources.registry import Registry, RegistryError, published_registry
from platform_resources.run_workers import RunWorkers, is_local

_PREPARING = threading.Lock()
POLL_SECONDS = 0.5
QUEUED_HINT_SECONDS = 30  # a run queued this long waits for a daemon that is not running
STOP_SECONDS = 10  # how long a stopped mesh run waits for a launch still creating its run
BIN = Path(sys.executable).parent  # dagster's commands of this environment


@dataclass
class PortOutcome:
    port_id: str
    rows: int | None = None
    processing_time: float | None = None  # unix seconds, as Dagster's timestamp metadata holds it
    checks_passed: int = 0
    checks_failed: int = 0
    error: str | None = None
    note: str | None = None  # why the run leaves the port alone on purpose (a dormant or retired product)
    partitions: str | None = None  # the partitions a partitioned port published ("1995-03-01..1995-05-01 (3 partitions)")
    total_rows: int | None = None  # what a partitioned port serves after publishing them


@dataclass
class MeshRunSummary:
    scale: float
    ports: dict[str, PortOutcome] = field(default_factory=dict)
    failed_domains: dict[str, str] = field(default_factory=dict)
    run_ids: dict[str, str] = field(default_factory=dict)
    lineage: FlushResult | None = None
    seconds: float = 0.0
    broken: dict[str, str] = field(default_factory=dict)  # product id -> its manifest's first error (file:line)

    @property
    def ok(self) -> bool:
        return not self.failed_domains and not self.broken and all(
            p.error is None and (p.rows is not None or p.note is not None) for p in self.ports.values())


class ErrorInfo(Protocol):
    """The part of Dagster's serializable error info the summary reads."""

    message: str
    cls_name: str | None
    cause: ErrorInfo | None


@dataclass
class _Launch:
    """One domain's run: its launch (the location loaded, the run created and submitted), then the run itself."""

    domain: str
    run_id: str
    future: Future[None]  # its exception says why the run was not launched
    started: float
    stop: Callable[[], None]  # no further launches (Ctrl-C)
    terminate: Callable[[str], None]  # cancel the run of this id
    launched: bool = False  # the run was handed to the run launcher
    queued_hint: bool = False
    cursor: str | None = None  # how far its progress lines have read the run's event log


def domain_log(domain: str) -> Path:
    """What the domain's code server and run print (dbt's output too), and why its location did not load; the
    event log has the rest."""
    return mesh_home() / "logs" / f"{domain}.log"


# --- the workspace --------------------------------------------------------------------------------------------
def workspace_entries(workspace: Path) -> dict[str, dict[str, Any]]:
    """Each code location of workspace.yaml by its location_name, as a `load_from` item that loads the same way
    from a workspace file elsewhere.

    Dagster reads python_file paths relative to the workspace file (rebased here) and module working directories
    relative to the current directory (the launch runs in the workspace's folder).
    """
    try:
        document = yaml.safe_load(workspace.read_text()) if workspace.exists() else None
    except yaml.YAMLError:
        document = None  # the registry reports the broken workspace file, with its line; nothing is launched
    entries: dict[str, dict[str, Any]] = {}
    for entry in (document if isinstance(document, dict) else {}).get("load_from") or []:
        for kind, target in (entry or {}).items():
            if not isinstance(target, dict) or not isinstance(target.get("location_name"), str):
                continue
            if kind == "python_file":
                paths = {key: str(workspace.parent / target[key]) for key in ("relative_path", "working_directory")
                         if isinstance(target.get(key), str)}
                target = {**target, **paths}
                target.setdefault("working_directory", str(workspace.parent))
            entries[target["location_name"]] = {kind: target}
    return entries


def _write_workspace(path: Path, entries: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"load_from": entries}, sort_keys=False))
    return path


# --- launching and watching runs ------------------------------------------------------------------------------
class _Unprepared(NotLaunched):
    """The domain's dbt project could not be prepared: the message is the summary's, as it is."""


def _launch_error(exc: BaseException) -> str:
    if isinstance(exc, _Unprepared):
        return str(exc)
    why = str(exc) if isinstance(exc, NotLaunched) else f"{type(exc).__name__}: {exc}"
    return f"not launched: {why.strip().splitlines()[0] if why.strip() else type(exc).__name__}"


def _poll(launch: _Launch, instance: DagsterInstance, log: Callable[[str], None]) -> DagsterRunStatus | str | None:
    """The finished run's status, the launch error, or None while the launch or the run is still going."""
    if not launch.launched:
        if not launch.future.done():
            return None
        if launch.future.exception() is not None:
            return _launch_error(launch.future.exception())
        launch.launched = True
    run = instance.get_run_by_id(launch.run_id)
    if run is None:
        return "the launch ended without creating its run"
    _progress(launch, instance, log)
    if run.status == DagsterRunStatus.QUEUED and not launch.queued_hint and \
            time.perf_counter() - launch.started > QUEUED_HINT_SECONDS:
        launch.queued_hint = True
        log(f"  {launch.domain:<12} run {launch.run_id} is queued: this instance's run coordinator waits for "
            "`dagster-daemon run` (the mesh's own dagster.yaml launches runs at once)")
    return run.status if run.is_finished else None


# Small events only: a partitioned port's run has one materialization per partition (and its dbt models as many),
# each a few KB of metadata; the one a line needs is looked up by its port.
_PROGRESS_EVENTS = {DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE}


def _progress(launch: _Launch, instance: DagsterInstance, log: Callable[[str], None]) -> None:
    """A line per step as it starts, per port as it publishes, per step that fails: read from the run's event log
    as it grows."""
    records = instance.get_records_for_run(launch.run_id, cursor=launch.cursor, of_type=_PROGRESS_EVENTS)
    launch.cursor = records.cursor
    for record in records.records:
        event = record.event_log_entry.dagster_event
        name = _step_name(event.step_key or "")
        if event.event_type == DagsterEventType.STEP_START:
            log(f"  {launch.domain:<12} {name}  started")
            continue
        port = _port_of_step(event.step_key or "")
        published = port and _materialization(instance, port, launch.run_id)
        if published:  # a step can fail after its port published
            rows = published.metadata.get("dagster/row_count")
            log(f"  {launch.domain:<12} {'.'.join(port.path)}  published" + (f" {rows.value:,} rows" if rows else ""))
        if event.event_type == DagsterEventType.STEP_FAILURE:
            log(f"  {launch.domain:<12} {name}  failed")


def _port_of_step(step_key: str) -> AssetKey | None:
    """The port a step publishes (its asset key): port steps are named domain__product__port."""
    parts = step_key.split("__")
    return AssetKey(parts) if len(parts) == 3 and parts[1] != "internal" else None


def _materialization(instance: DagsterInstance, key: AssetKey, run_id: str):
    """The asset's latest materialization when this run made it (one per partition carry the same metadata)."""
    records = instance.fetch_materializations(key, limit=1).records
    return records[0].asset_materialization if records and records[0].run_id == run_id else None


def _step_name(step_key: str) -> str:
    """domain__product__port -> domain.product.port; the dbt step and ingestion steps by what they do."""
    if step_key.endswith("_dbt_models"):
        return "dbt build"
    if step_key.endswith("_dbt_partitioned_models"):
        return "dbt build (partitioned models)"
    parts = step_key.split("__")
    return f"ingest {'.'.join(parts[2:])}" if parts[1:2] == ["internal"] else ".".join(parts)


def _stop(launches: list[_Launch], instance: DagsterInstance) -> None:
    """Ctrl-C or an error: no further launches, then terminate the runs still going (the code servers, stopped
    after this, exit once their runs are over)."""
    for launch in launches:
        launch.stop()
    for launch in launches:
        with contextlib.suppress(Exception):  # a launch that failed or takes too long has no run to stop
            launch.future.result(STOP_SECONDS)
    for launch in launches:
        run = instance.get_run_by_id(launch.run_id)
        if run and run.status in (DagsterRunStatus.STARTING, DagsterRunStatus.STARTED):
            with contextlib.suppress(Exception):  # cleanup must not hide why mesh run stopped
                launch.terminate(launch.run_id)
    for launch in launches:
        run = instance.get_run_by_id(launch.run_id)
        if run and run.status in (DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED):
            with contextlib.suppress(Exception):
                instance.report_run_canceled(run, message="mesh run was interrupted before the run started")


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """SIGTERM stops mesh run the way Ctrl-C does; and a SIGINT ignored by the shell (`mesh run &` in a script) is
    restored, so the commands it starts do not inherit the ignore (Dagster maps SIGTERM onto SIGINT's handler)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    if previous[signal.SIGINT] == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _run_in_dependency_order(graph: dict[str, set[str]], start: Callable[[str], _Launch | str],
                             finish: Callable[[_Launch | None, str, DagsterRunStatus | str], None],
                             instance: DagsterInstance, workers: int, log: Callable[[str], None],
                             ended: threading.Event | None = None) -> None:
    """Launch each domain once the domains it reads from are done, `workers` runs at a time.

    `start` returns an error instead of a launch when the domain cannot be launched; `finish` gets each domain's
    launch (None if none), and its run's status or its error. Runs are polled every POLL_SECONDS, and at once when
    `ended` is set (a run's execution ended).
    """
    ended = ended or threading.Event()
    sorter = graphlib.TopologicalSorter(graph)
    sorter.prepare()
    ready: list[str] = []
    running: list[_Launch] = []
    rank = {domain: i for i, domain in enumerate(_launch_order(graph))}
    try:
        while sorter.is_active():
            ready = sorted(ready + list(sorter.get_ready()), key=rank.__getitem__)
            while ready and len(running) < workers:
                domain = ready.pop(0)
                launch = start(domain)
                if isinstance(launch, str):
                    sorter.done(domain)
                    finish(None, domain, launch)
                    continue
                running.append(launch)
                log(f"  {domain:<12} started  run {launch.run_id}")
            ended.clear()  # before polling: an end from here on wakes the wait below
            finished = False
            for launch in list(running):
                outcome = _poll(launch, instance, log)
                if outcome is not None:
                    running.remove(launch)
                    sorter.done(launch.domain)
                    finish(launch, launch.domain, outcome)
                    finished = True
            if running and not finished:  # a domain that finished may have made the next ones ready
                ended.wait(POLL_SECONDS)
    except BaseException:
        _stop(running, instance)
        raise


def _launch_order(graph: dict[str, set[str]]) -> list[str]:
    """The order domains launch in as they become ready (and are prepared in): those more domains wait on first, so
    the last domains start sooner; then dependency order."""
    waiting_on = _dependents(graph)
    return sorted(graphlib.TopologicalSorter(graph).static_order(), key=lambda d: -len(waiting_on[d]))


def _dependents(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Each domain's dependents, direct and indirect."""
    dependents = {domain: set() for domain in graph}
    for domain in reversed(list(graphlib.TopologicalSorter(graph).static_order())):  # dependents first
        for upstream in graph[domain]:
            dependents[upstream] |= {domain} | dependents[domain]
    return dependents


# --- the summary ------------------------------------------------------------------------------------------------
def _root_cause(error: ErrorInfo) -> str:
    """The user's exception, not Dagster's wrapper around it."""
    while error.cause and error.cls_name == "DagsterExecutionStepExecutionError":
        error = error.cause
    return redact_values(error.message.strip())  # DuckDB's and dbt's errors can quote a row's value


def _record_publish(materialization, outcome: PortOutcome) -> None:
    """Fold a port's materialization in its run into the summary."""
    metadata = materialization.metadata
    outcome.rows = metadata["dagster/row_count"].value
    outcome.processing_time = metadata["mesh/processing_time"].value
    if "mesh/partitions" in metadata:
        outcome.partitions = metadata["mesh/partitions"].value
        outcome.total_rows = metadata["mesh/total_rows"].value


# What the summary reads of a run besides its ports' materializations (_record_publish).
_SUMMARY_EVENTS = {DagsterEventType.ASSET_CHECK_EVALUATION, DagsterEventType.ASSET_OBSERVATION,
                   DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE}


def _record(event: DagsterEvent, domain: str, summary: MeshRunSummary) -> None:
    """Fold one Dagster event of a domain's run into the summary."""
    if event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
        evaluation = event.event_specific_data
        outcome = summary.ports.get(".".join(evaluation.asset_key.path))
        if outcome:
            outcome.checks_passed += evaluation.passed
            outcome.checks_failed += not evaluation.passed
    elif event.event_type == DagsterEventType.ASSET_OBSERVATION:  # a port whose dbt model did not build
        observation = event.event_specific_data.asset_observation
        outcome = summary.ports.get(".".join(observation.asset_key.path))
        if outcome and NOT_PUBLISHED in observation.metadata:
            outcome.error = redact_values(observation.metadata[NOT_PUBLISHED].value)
    elif event.event_type == DagsterEventType.STEP_FAILURE:
        user_error = event.step_failure_data.user_failure_data
        message = redact_values((user_error.description if user_error else None)
                                or _root_cause(event.step_failure_data.error))
        step_port = (event.step_key or "").replace("__", ".")  # port asset steps are named domain__product__port
        if step_port in summary.ports:
            summary.ports[step_port].error = message
        else:
            summary.failed_domains[domain] = f"step {event.step_key} failed: {message.splitlines()[0]}"


_BLOCKED_QUERY = """query Blocked($keys: [AssetKeyInput!]) {
  assetNodes(assetKeys: $keys) { assetKey { path } metadataEntries { label ... on TextMetadataEntry { text } } }
}"""


def _blocked_reasons(entries: list[dict[str, Any]], port_ids: list[str], folder: Path, cwd: Path) -> dict[str, str]:
    """`mesh/blocked` of these ports as their code locations declare it (one `dagster-graphql` over their locations).

    Only needed when a port published nothing and reported no error: its step was skipped.
    """
    spec = _write_workspace(folder / "blocked.yaml", entries)
    answer = folder / "blocked.json"
    variables = json.dumps({"keys": [{"path": port_id.split(".")} for port_id in port_ids]})
    subprocess.run([str(BIN / "dagster-graphql"), "-w", str(spec), "-t", _BLOCKED_QUERY, "-v", variables,
                    "-o", str(answer)], cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)
    if not answer.exists():
        return {}
    nodes = (json.loads(answer.read_text()).get("data") or {}).get("assetNodes") or []
    return {".".join(node["assetKey"]["path"]): entry["text"] for node in nodes for entry in node["metadataEntries"]
            if entry["label"] == "mesh/blocked" and entry.get("text")}


def _initialize_instance() -> DagsterInstance:
    """The Dagster instance, its storage created before the launches race to create it."""
    instance = DagsterInstance.get()
    instance.get_runs(limit=1)
    instance.get_latest_materialization_event(AssetKey(["mesh"]))
    return instance


@dataclass
class _Batch:
    """One `mesh run`: the domains it launches, and what their runs' event logs say."""

    registry: Registry
    summary: MeshRunSummary
    instance: DagsterInstance
    workspace: Path
    folder: Path  # where the one-location workspace files go
    tags: dict[str, str]
    log: Callable[[str], None]
    launcher: Launcher
    workers: RunWorkers
    entries: dict[str, dict[str, Any]] = field(init=False)
    statuses: dict[str, DagsterRunStatus] = field(default_factory=dict)
    run_errors: dict[str, str] = field(default_factory=dict)  # a failed run's own error (first failed step, or none)
    partition_tags: dict[str, dict[str, str]] = field(default_factory=dict)  # domain -> the partition range it runs
    prepared: dict[str, Future[None]] = field(default_factory=dict)  # domain -> its dbt project prepared

    def __post_init__(self) -> None:
        self.entries = workspace_entries(self.workspace)

    def ports_of(self, domain: str) -> list[str]:
        return [f"{m.id}.{p.name}" for m in self.registry.products_of(domain) for p in m.output_ports]

    def prepare_ahead(self, domains: list[str]) -> None:
        """Prepare the domains' dbt projects one after another in the background, in the order they will run: a
        domain's turn then finds its manifest parsed, unless it comes before the parse is done."""
        preparing = ThreadPoolExecutor(1, thread_name_prefix="mesh-prepare")
        self.prepared = {d: preparing.submit(self._prepare_now, d) for d in domains}
        preparing.shutdown(wait=False)

    def _prepare(self, domain: str) -> None:
        if domain in self.prepared:
            self.prepared[domain].result()
        else:
            self._prepare_now(domain)

    def _prepare_now(self, domain: str) -> None:
        """The code location loads the prepared dbt manifest, never parses. One dbt parse at a time (dbt's state is
        the process's)."""
        with _PREPARING:
            try:
                dbt_prepare.prepare(self.registry, [domain])
            except Exception as exc:  # a broken domain never stops the others
                raise _Unprepared(location_failure(self.registry, domain, exc)) from exc

    def start(self, domain: str) -> _Launch | str:
        if domain not in self.entries:
            return f"no code location named {domain} in {self.workspace} (an entry with location_name: {domain})"
        tags = {**self.tags, "mesh/domain": domain, **self.partition_tags.get(domain, {})}
        run_id, job_name = str(uuid.uuid4()), f"{domain}{DOMAIN_JOB_SUFFIX}"
        spec = _write_workspace(self.folder / f"{domain}.yaml", [self.entries[domain]])
        prepare = functools.partial(self._prepare, domain)
        # Its location loads when its turn comes, not ahead: loading ahead was no faster on 2 cores, which the
        # running domains keep busy.
        if is_local(self.entries[domain]):
            future = self.workers.launch(domain, spec, job_name, run_id, tags, prepare)
            return _Launch(domain, run_id, future, time.perf_counter(), self.workers.stop,
                           functools.partial(self.workers.terminate, self.instance))
        self.launcher.load(domain, spec, prepare)
        future = self.launcher.launch(domain, job_name, run_id, tags)
        return _Launch(domain, run_id, future, time.perf_counter(), self.launcher.stop,
                       self.instance.run_launcher.terminate)

    def finish(self, launch: _Launch | None, domain: str, outcome: DagsterRunStatus | str) -> None:
        run_id = launch.run_id if launch and self.instance.get_run_by_id(launch.run_id) else None
        if run_id:
            self.summary.run_ids[domain] = run_id
        if isinstance(outcome, DagsterRunStatus):
            self.statuses[domain] = outcome
            for port_id in self.ports_of(domain):
                if published := _materialization(self.instance, AssetKey(port_id.split(".")), run_id):
                    _record_publish(published, self.summary.ports[port_id])
            for entry in self.instance.get_records_for_run(run_id, of_type=_SUMMARY_EVENTS).records:
                event = entry.event_log_entry.dagster_event
                _record(event, domain, self.summary)
                if event.event_type == DagsterEventType.RUN_FAILURE and \
                        getattr(event.event_specific_data, "error", None):
                    self.run_errors[domain] = _root_cause(event.event_specific_data.error)
        else:
            self.summary.failed_domains[domain] = outcome
        if launch:
            self.launcher.close(domain)  # its code server exits: its run is over
        seconds = time.perf_counter() - launch.started if launch else 0.0
        status = outcome.value if isinstance(outcome, DagsterRunStatus) else "NOT LAUNCHED"
        where = "" if outcome == DagsterRunStatus.SUCCESS else f"  (log: {domain_log(domain)})"
        self.log(f"  {domain:<12} {seconds:6.1f} s  run {run_id or '-'}  {status}{where}")

    def explain_skipped(self) -> None:
        """A blocked product's port is skipped without an error of its own: say why."""
        silent = {d: [p for p in self.ports_of(d) if self.summary.ports[p].rows is None and
                      self.summary.ports[p].error is None and self.summary.ports[p].note is None] for d in self.statuses}
        silent = {d: ports for d, ports in silent.items() if ports}
        if not silent:
            return
        reasons = _blocked_reasons([self.entries[d] for d in silent], [p for ports in silent.values() for p in ports],
                                   self.folder, self.workspace.parent)
        for port_id, why in reasons.items():
            self.summary.ports[port_id].error = f"blocked by policy: {why}"

    def conclude(self) -> None:
        """A run that failed where no port says why is a failed domain."""
        for domain, status in self.statuses.items():
            if status != DagsterRunStatus.SUCCESS and domain not in self.summary.failed_domains and not any(
                    self.summary.ports[p].error for p in self.ports_of(domain)):
                why = self.run_errors.get(domain) or "see it in Dagster (`mesh dev`)"
                self.summary.failed_domains[domain] = f"run {self.summary.run_ids[domain]} {status.value}: {why}"


def _clean_up_after_killed_runs(instance: DagsterInstance, log: Callable[[str], None]) -> None:
    for run_id in fail_abandoned_runs(instance):
        log(f"marked run {run_id} failed: the mesh run that launched it was killed")
    sweep = remove_orphan_files()
    if sweep.removed:
        log(f"removed {len(sweep.removed)} data files that no publish committed (left by a killed run)")


def run_mesh(scale: float = 0.01, domains: list[str] | None = None, workers: int = 2, log=print,
             partitions: str | None = None) -> MeshRunSummary:
    """Materialize the selected domains (all of the workspace by default), independent domains `workers` at a time;
    partitioned ports publish every partition, or those `partitions` names (FROM..TO), in one run per domain.

    One `mesh run` at a time on a mesh home: a second one waits for the first."""
    prepare_home()
    with mesh_lock(log):
        return _run_mesh(scale, domains, workers, log, partitions)


def _run_mesh(scale: float, domains: list[str] | None, workers: int, log, partitions: str | None = None) -> MeshRunSummary:
    started = time.perf_counter()
    start_forkserver()  # its imports overlap with what comes before the first run
    plan_ranges_in_one_event()
    from operational_systems import tpch  # the sample mesh's simulated sources

    if tpch.ensure(operational_dir(), scale, log):
        log(f"generated the operational systems at TPC-H scale {scale}")
    registry = published_registry()  # code locations read the registry store: publish this checkout first
    register_ports(registry, domains)  # lineage knows every product before its first run
    graph = registry.domain_dependencies()
    unknown = sorted(set(domains or []) - set(graph))
    if unknown:
        raise RegistryError(f"unknown domains {unknown}; the workspace has {sorted(graph)}")
    # Domains known only from the registry store are run by their own workspaces.
    wanted = set(domains or [d for d, domain in registry.domains.items() if domain.is_local or domain.server])
    selected = {d: ups & wanted for d, ups in graph.items() if d in wanted}
    # Before anything runs: a range that names no partition of a domain is the user's to fix.
    partition_tags = {d: run_tags(registry.products_of(d), partitions) for d in selected}
    summary = MeshRunSummary(scale)
    summary.broken = {pid: str(errors.errors[0]) for d in selected for pid, errors in registry.broken_in(d).items()}
    for domain in registry.domain_order():  # the summary lists ports in dependency order
        summary.ports.update({f"{m.id}.{p.name}": PortOutcome(f"{m.id}.{p.name}", note=_not_processed(m))
                              for m in registry.products_of(domain) if domain in selected for p in m.output_ports})
    tags = {BATCH_TAG: uuid.uuid4().hex[:12], "mesh/scale": str(scale)}
    instance = _initialize_instance()
    try:
        _clean_up_after_killed_runs(instance, log)
        with tempfile.TemporaryDirectory(prefix="mesh-run-") as folder, _interruptible():
            workspace = workspace_file()
            with Launcher(instance, Path(folder), workspace.parent, domain_log, loaders=max(1, workers)) as launcher, \
                    RunWorkers(instance, workspace.parent, domain_log) as run_workers:
                batch = _Batch(registry, summary, instance, workspace, Path(folder), tags, log, launcher, run_workers)
                batch.partition_tags = partition_tags
                batch.prepare_ahead([d for d in _launch_order(selected) if d in batch.entries and
                                     is_local(batch.entries[d])])
                _run_in_dependency_order(selected, batch.start, batch.finish, instance, max(1, workers), log,
                                         run_workers.ended)
            batch.explain_skipped()
        batch.conclude()
    finally:
        instance.dispose()
    summary.lineage = delivery().flush(force=False)
    summary.seconds = time.perf_counter() - started
    return summary


def _not_processed(manifest) -> str | None:
    """The summary's note for a product the run leaves alone (its ports are not in the domain's job)."""
    if manifest.status == "dormant":
        return "dormant: not processed (the port keeps serving its last version)"
    if manifest.status == "retired":
        return "retired: not processed (the port serves nothing)"
    return None


def format_summary(summary: MeshRunSummary) -> str:
    header = f"{'port':<45} {'rows':>9}  {'checks':>7}  {'processing time':<32} status"
    lines = [header, "-" * len(header)]
    for outcome in summary.ports.values():
        status = "published" if outcome.rows is not None else outcome.note if outcome.note and not outcome.error \
            else f"NOT PUBLISHED: {outcome.error or 'skipped (upstream failed)'}"
        if outcome.rows is not None and outcome.partitions:
            served = f", {outcome.total_rows:,} rows served" if isinstance(outcome.total_rows, int) else ""
            status += f" partitions {outcome.partitions}{served}"
        checks = f"{outcome.checks_passed}/{outcome.checks_passed + outcome.checks_failed}"
        when = "-"
        if outcome.processing_time is not None:
            when = datetime.fromtimestamp(outcome.processing_time, UTC).isoformat()
        rows = "-" if outcome.rows is None else f"{outcome.rows:,}"
        lines.append(f"{outcome.port_id:<45} {rows:>9}  {checks:>7}  {when:<32} {status}")
    for product_id, error in summary.broken.items():
        lines.append(f"{product_id:<45} {'-':>9}  {'-':>7}  {'-':<32} NOT BUILT: broken manifest {error}")
    for domain, error in summary.failed_domains.items():
        lines.append(f"domain {domain} FAILED: {error}")
    products = {p.rsplit('.', 1)[0] for p in summary.ports}
    published = [p for p in summary.ports.values() if p.rows is not None]
    passed = sum(p.checks_passed for p in summary.ports.values())
    failed = sum(p.checks_failed for p in summary.ports.values())
    lines.append("")
    if summary.lineage and summary.lineage.pending:
        lines.append(f"lineage: {summary.lineage.pending} events wait in the outbox ({summary.lineage.error}); "
                     "they are sent with the next emission or `mesh lineage flush`")
    elif summary.lineage and summary.lineage.error:
        lines.append(f"lineage: {summary.lineage.error}")
    broken = f", {len(summary.broken)} broken manifests" if summary.broken else ""
    resting = sum(p.note is not None and p.rows is None for p in summary.ports.values())
    broken += f", {resting} ports not processed (dormant or retired)" if resting else ""
    lines.append(f"{len(products)} products{broken}, {len(published)}/{len(summary.ports)} ports published, "
                 f"{sum(p.rows for p in published):,} rows, checks {passed} passed / {failed} failed, "
                 f"scale {summary.scale}, {summary.seconds:.1f} s")
    return "\n".join(lines)
