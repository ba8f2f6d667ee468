"""`mesh run`: materialize every data product of every domain, domain by domain in dependency order.

Runs are recorded in the mesh's Dagster instance, so `dagster dev` shows them.
"""

from __future__ import annotations

import contextlib
import graphlib
import importlib
import multiprocessing
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone

from dagster import AssetKey, DagsterEvent, DagsterEventType, DagsterInstance, Definitions
from dagster._utils.error import SerializableErrorInfo

from platform_resources import dbt
from platform_resources.build import DOMAIN_JOB_SUFFIX
from platform_resources.home import mesh_home, operational_dir, prepare_home
from platform_resources.lineage.delivery import FlushResult, delivery
from platform_resources.lineage.resource import register_ports
from platform_resources.registry import Registry, RegistryError, load_registry, mesh_registry

# The full event log is in the Dagster instance; failures reach the console through the summary.
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@dataclass
class PortOutcome:
    port_id: str
    rows: int | None = None
    processing_time: float | None = None  # unix seconds, as Dagster's timestamp metadata holds it
    checks_passed: int = 0
    checks_failed: int = 0
    error: str | None = None


@dataclass
class MeshRunSummary:
    scale: float
    ports: dict[str, PortOutcome] = field(default_factory=dict)
    failed_domains: dict[str, str] = field(default_factory=dict)
    run_ids: dict[str, str] = field(default_factory=dict)
    lineage: FlushResult | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed_domains and all(p.error is None and p.rows is not None for p in self.ports.values())


def load_definitions(registry: Registry, domain: str) -> Definitions:
    return importlib.import_module(registry.domains[domain].module).defs


def run_domain(registry: Registry, domain: str, instance: DagsterInstance, tags: dict[str, str],
               summary: MeshRunSummary) -> None:
    port_ids = {f"{m.id}.{p.name}" for m in registry.products_of(domain) for p in m.output_ports}
    for port_id in sorted(port_ids):
        summary.ports[port_id] = PortOutcome(port_id)
    defs = load_definitions(registry, domain)
    job = defs.resolve_job_def(f"{domain}{DOMAIN_JOB_SUFFIX}")
    # dbt writes its own log to stdout; keep it in a file so the console shows the summary.
    log_file = mesh_home() / "logs" / f"{domain}.log"
    with log_file.open("w") as log, contextlib.redirect_stdout(log):
        result = job.execute_in_process(instance=instance, raise_on_error=False, tags={**tags, "mesh/domain": domain},
                                        run_config=QUIET_CONSOLE)
    summary.run_ids[domain] = result.run_id
    for event in result.all_events:
        _record(event, domain, summary)
    for port_id in port_ids:  # a blocked product's port is skipped: say why
        outcome = summary.ports[port_id]
        key = AssetKey(port_id.split("."))
        blocked = defs.resolve_assets_def(key).metadata_by_key[key].get("mesh/blocked")
        if outcome.rows is None and outcome.error is None and blocked:
            outcome.error = f"blocked by policy: {blocked}"
    if not result.success and domain not in summary.failed_domains and not any(
            summary.ports[p].error for p in port_ids):
        summary.failed_domains[domain] = "run failed; see the run in Dagster"


def _root_cause(error: SerializableErrorInfo) -> str:
    """The user's exception, not Dagster's wrapper around it."""
    while error.cause and error.cls_name == "DagsterExecutionStepExecutionError":
        error = error.cause
    return error.message.strip()


def _record(event: DagsterEvent, domain: str, summary: MeshRunSummary) -> None:
    """Fold one Dagster event of a domain's run into the summary."""
    if event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
        outcome = summary.ports.get(".".join(event.asset_key.path))
        if outcome:
            metadata = event.step_materialization_data.materialization.metadata
            outcome.rows = metadata["dagster/row_count"].value
            outcome.processing_time = metadata["mesh/processing_time"].value
    elif event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
        evaluation = event.event_specific_data
        outcome = summary.ports.get(".".join(evaluation.asset_key.path))
        if outcome:
            outcome.checks_passed += evaluation.passed
            outcome.checks_failed += not evaluation.passed
    elif event.event_type == DagsterEventType.STEP_FAILURE:
        user_error = event.step_failure_data.user_failure_data
        message = (user_error.description if user_error else None) or _root_cause(event.step_failure_data.error)
        step_port = (event.step_key or "").replace("__", ".")  # port asset steps are named domain__product__port
        if step_port in summary.ports:
            summary.ports[step_port].error = message
        else:
            summary.failed_domains[domain] = f"step {event.step_key} failed: {message.splitlines()[0]}"


def _initialize_instance() -> None:
    """Create the Dagster instance's storage once, before worker processes race to create it."""
    instance = DagsterInstance.get()
    instance.get_runs(limit=1)
    instance.get_latest_materialization_event(AssetKey(["mesh"]))
    instance.dispose()


def _run_one(domain: str, tags: dict[str, str]) -> MeshRunSummary:
    """Prepare and run one domain; in a worker process when domains run in parallel."""
    started = time.perf_counter()
    summary = MeshRunSummary(float(tags["mesh/scale"]))
    try:
        dbt.prepare([domain])
        # The registry the code location was built from, so the ports counted are the ports it runs.
        run_domain(mesh_registry(), domain, DagsterInstance.get(), tags, summary)
    except Exception as exc:  # a broken domain never stops the others
        summary.failed_domains[domain] = f"{type(exc).__name__}: {exc}"
    summary.seconds = time.perf_counter() - started
    return summary


def _run_in_dependency_order(graph: dict[str, set[str]], tags: dict[str, str], workers: int) -> Iterator[tuple[str, MeshRunSummary]]:
    """Run each domain once the domains it reads from are done, `workers` at a time."""
    sorter = graphlib.TopologicalSorter(graph)
    if workers == 1:
        for domain in sorter.static_order():
            yield domain, _run_one(domain, tags)
        return
    sorter.prepare()
    # spawn, not fork: Dagster and DuckDB hold threads and locks a forked child must not inherit.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        running: dict[Future, str] = {}
        while sorter.is_active():
            for domain in sorter.get_ready():
                running[pool.submit(_run_one, domain, tags)] = domain
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                domain = running.pop(future)
                yield domain, future.result()
                sorter.done(domain)


def run_mesh(scale: float = 0.01, domains: list[str] | None = None, workers: int = 2, log=print) -> MeshRunSummary:
    """Materialize the selected domains (all by default), independent domains `workers` at a time."""
    started = time.perf_counter()
    prepare_home()
    from operational_systems import tpch  # the sample mesh's simulated sources

    if tpch.ensure(operational_dir(), scale):
        log(f"generated the operational systems at TPC-H scale {scale} in {operational_dir()}")
    registry = load_registry()
    register_ports(registry, domains)  # lineage knows every product before its first run
    graph = registry.domain_dependencies()
    unknown = sorted(set(domains or []) - set(graph))
    if unknown:
        raise RegistryError(f"unknown domains {unknown}; the workspace has {sorted(graph)}")
    selected = {d: ups & set(domains or graph) for d, ups in graph.items() if not domains or d in domains}
    summary = MeshRunSummary(scale)
    for domain in registry.domain_order():  # the summary lists ports in dependency order
        summary.ports.update({f"{m.id}.{p.name}": PortOutcome(f"{m.id}.{p.name}")
                              for m in registry.products_of(domain) if domain in selected for p in m.output_ports})
    tags = {"mesh/batch": uuid.uuid4().hex[:12], "mesh/scale": str(scale)}
    _initialize_instance()
    for domain, part in _run_in_dependency_order(selected, tags, max(1, workers)):
        summary.ports.update(part.ports)
        summary.failed_domains.update(part.failed_domains)
        summary.run_ids.update(part.run_ids)
        log(f"  {domain:<12} {part.seconds:6.1f} s  run {part.run_ids.get(domain, '-')}"
            f"  (log: {mesh_home() / 'logs' / (domain + '.log')})")
    summary.lineage = delivery().flush(force=False)
    summary.seconds = time.perf_counter() - started
    return summary


def format_summary(summary: MeshRunSummary) -> str:
    header = f"{'port':<45} {'rows':>9}  {'checks':>7}  {'processing time':<32} status"
    lines = [header, "-" * len(header)]
    for outcome in summary.ports.values():
        status = "published" if outcome.rows is not None else f"NOT PUBLISHED: {outcome.error or 'skipped (upstream failed)'}"
        checks = f"{outcome.checks_passed}/{outcome.checks_passed + outcome.checks_failed}"
        when = "-"
        if outcome.processing_time is not None:
            when = datetime.fromtimestamp(outcome.processing_time, timezone.utc).isoformat()
        rows = "-" if outcome.rows is None else f"{outcome.rows:,}"
        lines.append(f"{outcome.port_id:<45} {rows:>9}  {checks:>7}  {when:<32} {status}")
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
    lines.append(f"{len(products)} products, {len(published)}/{len(summary.ports)} ports published, "
                 f"{sum(p.rows for p in published):,} rows, checks {passed} passed / {failed} failed, "
                 f"scale {summary.scale}, {summary.seconds:.1f} s")
    return "\n".join(lines)
