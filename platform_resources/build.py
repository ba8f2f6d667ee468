"""build_domain: a domain's manifests + dbt project + Python assets -> dagster.Definitions (the component's work)."""

import functools
import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetObservation,
    AssetsDefinition,
    AssetSelection,
    AssetSpec,
    AutomationConditionSensorDefinition,
    BackfillPolicy,
    DefaultSensorStatus,
    Definitions,
    Failure,
    MetadataValue,
    define_asset_job,
)
from dagster_dbt import DbtCliInvocation, DbtCliResource, dbt_assets

from platform_resources import dbt, dbt_prepare, dbt_sandbox, operational
from platform_resources.asset_metadata import display_path, model_metadata, with_model_metadata
from platform_resources.domain_job import DOMAIN_JOB_SUFFIX, NOT_PUBLISHED
from platform_resources.dbt import keep_parse_state, models_not_feeding, prune_invocations
from platform_resources.governance.asset_graph import graph_of_assets
from platform_resources.governance.engine import PolicyReport, evaluate
from platform_resources.home import mesh_home
from platform_resources.ingestion import ingestion_assets
from platform_resources.inputs import load_input_ports
from platform_resources.lineage.dbt_models import emit_model_runs
from platform_resources.lineage.executor import DomainJobs, lineage_executor
from platform_resources.lineage.input_loads import emit_input_loads
from platform_resources.lineage.resource import LineageResource
from platform_resources.lineage.runs import DagsterRun
from platform_resources.manifest import Manifest, OutputPort
from platform_resources.partitions import (PartitionWindow, dbt_vars, partitioned_port, partitions_def, same_partitions,
                                          window_of_run)
from platform_resources.port_asset import port_asset
from platform_resources.redaction import redact_values, redacted_dbt_events
from platform_resources.registry import Domain, Registry, domain_registry

AUTOMATION_INTERVAL_SECONDS = 30


def build_domain(domain: Domain, registry: Registry | None = None, *,
                 assets: Sequence[AssetsDefinition] = ()) -> Definitions:
    """The Definitions of one domain's code location, generated from its product manifests and dbt project.

    Loading reads YAML manifests, the registry store and the prepared dbt manifest.json only: no dbt parse,
    no domain database, no network. `registry` defaults to this domain's folder plus the registry store.
    """
    registry = registry or domain_registry(domain)
    name = domain.name
    products = registry.products_of(name)
    dbt_manifest = dbt_prepare.load_manifest_json(domain) if dbt_prepare.missing_project(domain) is None else None
    relations = dbt.model_relations(dbt_manifest) if dbt_manifest else {}
    partitioning = DomainPartitioning.of(products)
    models = _dbt_steps(domain, registry, dbt_manifest, partitioning) if dbt_manifest else []
    upstream = [*ingestion_assets(name, products), *models, *assets]
    graph = graph_of_assets(upstream)
    for manifest in products:
        for port in manifest.output_ports:
            graph[AssetKey([manifest.domain, manifest.product, port.name])] = {dbt.internal_key(name, port.dbt_model)}
    report = evaluate(registry, asset_graphs={name: graph})  # static policies, on the real asset graph

    def current_policies() -> PolicyReport:
        """Evaluated again at publish: a waiver may have expired since the code location loaded."""
        return evaluate(registry, asset_graphs={name: graph})

    port_assets = [port_asset(registry, m, port, relations, report, current_policies,
                              partitioning.definition if partitioning.covers(port) else None)
                   for m in products for port in m.output_ports]
    # A dormant or retired product's ports are not in the domain's job: `mesh run` leaves them alone; nor is a port
    # partitioned unlike the domain's others (a job has one partitioning; MESH-PART-001 blocks its product).
    resting = [AssetKey([m.domain, m.product, port.name]) for m in products for port in m.output_ports
               if not m.processed or (port.partitioning and not partitioning.covers(port))]
    return Definitions(
        assets=[*upstream, *port_assets, *broken_manifest_specs(registry, name), *upstream_port_specs(registry, name)],
        jobs=[define_asset_job(f"{name}{DOMAIN_JOB_SUFFIX}", selection=AssetSelection.all() - AssetSelection.assets(*resting),
                               description=f"Publish every data product of {name}, as `mesh run` does.")],
        sensors=[automation_sensor(name)],
        resources={"lineage": LineageResource(domain=name), **({"dbt": dbt.dbt_resource(domain)} if dbt_manifest else {})},
        # One domain DuckDB file takes one writer at a time: run a domain's steps one after another (in process),
        # inside the lineage runs of the domain and its products.
        executor=lineage_executor(DomainJobs(name, products, {a.op.name: ".".join(a.key.path) for a in port_assets})),
    )


def automation_sensor(domain: str) -> AutomationConditionSensorDefinition:
    """The domain's declarative automation, on by default: with the daemon running, a product updates when its
    upstream ports update (no central orchestrator). Dagster's own default sensor would start switched off."""
    return AutomationConditionSensorDefinition(
        f"{domain}_automation", target=AssetSelection.all(), default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=AUTOMATION_INTERVAL_SECONDS,
        description=f"Updates {domain}'s products when the ports they read publish a new version.")


def upstream_port_specs(registry: Registry, domain: str) -> list[AssetSpec]:
    """The other domains' ports this domain reads, as external assets in the producer's group with the producer as
    owner: the consumer's graph shows the cross-domain edge, and no unnamed `default` group of copies appears."""
    specs = {}
    for manifest in registry.products_of(domain):
        for input_port in manifest.input_ports:
            if not input_port.source or input_port.source in specs:
                continue
            up_domain, up_product, up_port = input_port.source.split(".")
            producer = registry.products.get(f"{up_domain}.{up_product}")
            if up_domain == domain or producer is None:
                continue  # the domain's own port is its own asset; an unknown one is a registry finding
            specs[input_port.source] = AssetSpec(
                key=AssetKey([up_domain, up_product, up_port]), group_name=up_domain, owners=producer.owner.dagster_owners,
                kinds={"iceberg"}, description=f"Output port of {producer.id}, published by the {up_domain} code location "
                                               f"and read here as an input port.",
                metadata={"mesh/port_id": input_port.source, "mesh/published_by": up_domain},
                # Dagster maps the consumer's partitions onto the producer's (TimeWindowPartitionMapping by default).
                partitions_def=partitions_def(port.partitioning) if (port := producer.output_port(up_port)) and
                port.partitioning else None)
    return list(specs.values())


def broken_manifest_specs(registry: Registry, domain: str) -> list[AssetSpec]:
    """A broken manifest shows in the UI where its product would be, with every error and its fix."""
    specs = []
    for product_id, errors in sorted(registry.broken.items()):
        if registry.location_of(product_id) != domain:
            continue
        listing = "\n".join(f"- `{e.file}:{e.line}` field `{e.field}`: {e.problem}. Fix: {e.fix}" for e in errors.errors)
        specs.append(AssetSpec(
            key=AssetKey(product_id.split(".")), group_name=domain, kinds={"yaml"},
            description=f"**Broken manifest**: this product does not load and publishes nothing until its "
                        f"manifest is fixed.\n\n{listing}",
            tags={"mesh/compliance": "blocked"},
            metadata={"mesh/blocked": f"the manifest is broken ({len(errors.errors)} errors)",
                      "mesh/manifest": MetadataValue.path(display_path(errors.errors[0].file))}))
    return specs


@dataclass(frozen=True)
class DomainPartitioning:
    """The one partitioning of a domain's partitioned ports (a Dagster job has one). A port partitioned otherwise is
    left out of the job, and MESH-PART-001 blocks its product."""

    port: OutputPort | None = None  # the port whose partitioning it is

    @classmethod
    def of(cls, products: list[Manifest]) -> "DomainPartitioning":
        return cls(partitioned_port(products))

    @functools.cached_property
    def definition(self):
        return partitions_def(self.port.partitioning) if self.port else None

    def covers(self, port: OutputPort) -> bool:
        return self.port is not None and port.partitioning is not None and \
            same_partitions(port.partitioning, self.port.partitioning)


def _dbt_steps(domain: Domain, registry: Registry, dbt_manifest: dict,
               partitioning: DomainPartitioning) -> list[AssetsDefinition]:
    """The domain's dbt models as one step, or two when some ports are partitioned: the models only partitioned
    ports need run a partition window at a time (with its dates as dbt vars), the others whole."""
    products = registry.products_of(domain.name)
    partitioned = dbt.models_only_feeding(
        dbt_manifest, {p.dbt_model for m in products for p in m.output_ports if partitioning.covers(p)},
        {p.dbt_model for m in products for p in m.output_ports if not partitioning.covers(p)})
    if not partitioned:
        return [_dbt_models(domain, registry, dbt_manifest)]
    return [_dbt_models(domain, registry, dbt_manifest, exclude=partitioned),
            _dbt_models(domain, registry, dbt_manifest, only=partitioned, partitioning=partitioning)]


def _dbt_models(domain: Domain, registry: Registry, dbt_manifest: dict, *, only: list[str] | None = None,
                exclude: list[str] | None = None, partitioning: DomainPartitioning | None = None) -> AssetsDefinition:
    products = registry.products_of(domain.name)
    translator = dbt.MeshDbtTranslator(domain.name, products)
    # The upstream ports this step's models read; one step for the whole domain loads every declared input.
    sources = dbt.sources_read(dbt_manifest, translator, only, exclude) if only or exclude else None

    @dbt_assets(manifest=dbt_manifest, dagster_dbt_translator=translator, pool=dbt.duckdb_pool(domain.name),
                name=f"{domain.name}_dbt_{'partitioned_' if partitioning else ''}models", project=dbt.project(domain),
                select=" ".join(only) if only else "fqn:*", exclude=" ".join(exclude) if exclude else None,
                partitions_def=partitioning.definition if partitioning else None,
                backfill_policy=BackfillPolicy.single_run() if partitioning else None)
    def _models(context: AssetExecutionContext, dbt: DbtCliResource, lineage: LineageResource) -> Iterator:
        os.environ["MESH_HOME"] = str(mesh_home())  # the platform's profile locates the domain's DuckDB through it
        window = window_of_run(context, partitioning.port) if partitioning else None
        inputs = load_input_ports(registry, domain.name, sources, window)
        _emit_input_lineage(lineage.dagster_run(context), domain.name, inputs.loaded, translator.owners)
        # The sandbox: dbt's DuckDB may open the files of the declared input ports and nothing else.
        os.environ.update(dbt_sandbox.environment(domain.name, (f for p in inputs.loaded for f in p.files),
                                                  operational.systems_read(products)))
        for loaded in inputs.loaded:
            context.log.info(f"input port {loaded.port_id} -> {loaded.relation}: {loaded.rows} rows "
                             f"(processing time {loaded.processing_time.isoformat()}, read as {loaded.consumer})")
        for product_id, why in inputs.unavailable.items():
            context.log.warning(f"{product_id} gets no inputs and will not publish: {why}")
        # Only the models of products that can publish run: not those of a product without its inputs, of a
        # broken manifest, or of a dormant or retired product; the domain's other products publish.
        skipped = models_not_feeding(
            dbt_manifest, {p.dbt_model for m in products if m.processed and m.id not in inputs.unavailable
                           for p in m.output_ports})
        # A failed model stops only what it feeds: the others' outputs stream, the failures are reported per port.
        if window is not None:
            context.log.info(f"dbt builds partitions {window.label}")
        invocation = dbt.cli(["build", *(["--exclude", " ".join(skipped)] if skipped else []), *_window_args(window)],
                             context=context, raise_on_error=False)
        try:
            # dbt's log lines can quote a row's value; each model's column schema and lineage join its event.
            yield from with_model_metadata(redacted_dbt_events(invocation), lambda: model_metadata(
                domain.name, invocation.get_artifact("manifest.json"), translator))
        finally:
            keep_parse_state(invocation, context.op.name)
            prune_invocations(invocation.target_path.parent, context.op.name)
            _emit_model_lineage(lineage.dagster_run(context), domain.name, registry, translator, invocation)
        if not invocation.is_successful():
            _report_failed_models(context, domain.name, products, invocation)

    return _models


def _window_args(window: PartitionWindow | None) -> list[str]:
    """The partition window as dbt vars, as dagster-dbt documents partitioned dbt models; every partition of the
    port at once rebuilds incremental models from scratch."""
    if window is None:
        return []
    return ["--vars", json.dumps(dbt_vars(window)), *(["--full-refresh"] if window.whole else [])]


def _report_failed_models(context: AssetExecutionContext, domain: str, products: list,
                          invocation: DbtCliInvocation) -> None:
    """Say, on each port whose model did not build, which model or test failed and how (the run summary and the
    port's page in Dagster show it). When dbt ran nothing at all (a project that does not parse), the step fails."""
    try:
        results = invocation.get_artifact("run_results.json")["results"]
        run_manifest = invocation.get_artifact("manifest.json")
    except Exception:  # noqa: BLE001 (dbt stopped before running anything: no artifacts)
        results = []
    failed = {r["unique_id"]: _first_line(redact_values(r.get("message") or "")) for r in results
              if r["status"] in ("error", "fail")}
    if not failed:
        error = redact_values(str(invocation.get_error() or ""))
        errors = _first_line(error.split("Errors parsed from dbt logs:", 1)[-1]) if "Errors parsed" in error else \
            "see the dbt output in this step's logs"
        raise Failure(description=f"dbt could not build the models of {domain}: {errors}")
    status = {r["unique_id"]: r["status"] for r in results}
    for manifest in products:
        for port in manifest.output_ports:
            node_id = f"model.{run_manifest['metadata'].get('project_name', domain)}.{port.dbt_model}"
            if status.get(node_id, "success") == "success":  # built, or not in this build (excluded)
                continue
            causes = _failed_upstream(node_id, run_manifest, failed)
            why = "; ".join(f"{cause.split('.', 2)[-1]} failed: {failed[cause]}" for cause in causes) or "dbt skipped it"
            message = f"port {manifest.id}.{port.name} is not published: dbt {why}"
            context.log.error(message)
            context.log_event(AssetObservation(asset_key=AssetKey([manifest.domain, manifest.product, port.name]),
                                               metadata={NOT_PUBLISHED: message}))


def _failed_upstream(node_id: str, run_manifest: dict, failed: dict[str, str]) -> list[str]:
    """The failed models and tests on the way to `node_id` (itself included)."""
    seen, stack = set(), [node_id]
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack += run_manifest["parent_map"].get(node, [])
    tests = [t for t in failed if t.startswith("test.") and set(run_manifest["parent_map"].get(t, [])) & seen]
    return sorted({n for n in failed if n in seen} | set(tests))


def _first_line(message: str | None) -> str:
    lines = [line.strip() for line in (message or "").splitlines() if line.strip()]
    return " ".join(lines[:3])[:500] or "no message"


def _emit_model_lineage(dagster_run: DagsterRun, domain: str, registry: Registry, translator: dbt.MeshDbtTranslator,
                        invocation: DbtCliInvocation) -> None:
    _never_failing("dbt models", domain, lambda: emit_model_runs(
        dagster_run, domain, translator, invocation.get_artifact("manifest.json"),
        invocation.get_artifact("run_results.json")))


def _emit_input_lineage(dagster_run: DagsterRun, domain: str, loaded: list, team_owners: list[str]) -> None:
    _never_failing("input port loads", domain, lambda: emit_input_loads(dagster_run, domain, loaded, team_owners))


def _never_failing(what: str, domain: str, emit: Callable[[], None]) -> None:
    try:
        emit()
    except Exception as exc:  # lineage never fails a data run
        logging.getLogger(__name__).warning("no lineage for the %s of %s: %s", what, domain, exc)
