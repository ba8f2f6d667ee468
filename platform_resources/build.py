"""build_domain: a domain's manifests + dbt project + Python assets -> dagster.Definitions."""

import logging
import os
from collections.abc import Iterator, Sequence

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSelection,
    Definitions,
    define_asset_job,
    in_process_executor,
)
from dagster_dbt import DbtCliInvocation, DbtCliResource, dbt_assets

from platform_resources import dbt
from platform_resources.dbt import dbt_models_only_feeding
from platform_resources.governance.asset_graph import graph_of_assets
from platform_resources.governance.engine import PolicyReport, evaluate
from platform_resources.home import mesh_home
from platform_resources.ingestion import ingestion_assets
from platform_resources.inputs import load_input_ports
from platform_resources.lineage.dbt_models import emit_model_runs
from platform_resources.lineage.resource import LineageResource
from platform_resources.lineage.runs import DagsterRun
from platform_resources.port_asset import port_asset
from platform_resources.registry import Registry, mesh_registry

DOMAIN_JOB_SUFFIX = "_all_products"


def build_domain(domain: str, *, assets: Sequence[AssetsDefinition] = (), registry: Registry | None = None) -> Definitions:
    """The Definitions of one domain's code location, generated from its product manifests.

    Loading reads YAML manifests and the prepared dbt manifest.json only: no dbt parse, database or network.
    """
    registry = registry or mesh_registry()
    products = registry.products_of(domain)
    dbt_manifest = dbt.load_manifest_json(domain)
    relations = dbt.model_relations(dbt_manifest)
    upstream = [*ingestion_assets(domain, products), _dbt_models(domain, registry, dbt_manifest), *assets]
    graph = graph_of_assets(upstream)
    for manifest in products:
        for port in manifest.output_ports:
            graph[AssetKey([manifest.domain, manifest.product, port.name])] = {dbt.internal_key(domain, port.dbt_model)}
    report = evaluate(registry, asset_graphs={domain: graph})  # static policies, on the real asset graph

    def current_policies() -> PolicyReport:
        """Evaluated again at publish: a waiver may have expired since the code location loaded."""
        return evaluate(registry, asset_graphs={domain: graph})

    port_assets = [port_asset(registry, m, port, relations, report, current_policies)
                   for m in products for port in m.output_ports]
    return Definitions(
        assets=[*upstream, *port_assets],
        jobs=[define_asset_job(f"{domain}{DOMAIN_JOB_SUFFIX}", selection=AssetSelection.all(),
                               description=f"Publish every data product of {domain}, as `mesh run` does.")],
        resources={"dbt": dbt.dbt_resource(domain), "lineage": LineageResource()},
        # One domain DuckDB file takes one writer at a time: run a domain's steps one after another.
        executor=in_process_executor,
    )


def _dbt_models(domain: str, registry: Registry, dbt_manifest: dict) -> AssetsDefinition:
    products = registry.products_of(domain)
    translator = dbt.MeshDbtTranslator(domain, products)

    @dbt_assets(manifest=dbt_manifest, dagster_dbt_translator=translator, name=f"{domain}_dbt_models")
    def _models(context: AssetExecutionContext, dbt: DbtCliResource, lineage: LineageResource) -> Iterator:
        os.environ["MESH_HOME"] = str(mesh_home())  # profiles.yml locates the domain's DuckDB through it
        inputs = load_input_ports(registry, domain)
        for loaded in inputs.loaded:
            context.log.info(f"input port {loaded.port_id} -> {loaded.relation}: {loaded.rows} rows "
                             f"(processing time {loaded.processing_time.isoformat()}, read as {loaded.consumer})")
        for product_id, why in inputs.unavailable.items():
            context.log.warning(f"{product_id} gets no inputs and will not publish: {why}")
        # Models that only feed products without their inputs do not run; the domain's other products do.
        skipped = dbt_models_only_feeding(
            dbt_manifest, {p.dbt_model for m in products if m.id in inputs.unavailable for p in m.output_ports},
            {p.dbt_model for m in products if m.id not in inputs.unavailable for p in m.output_ports})
        invocation = dbt.cli(["build", *(["--exclude", " ".join(skipped)] if skipped else [])], context=context)
        try:
            yield from invocation.stream()
        finally:
            _emit_model_lineage(lineage.dagster_run(context, domain), domain, registry, translator, invocation)

    return _models


def _emit_model_lineage(dagster_run: DagsterRun, domain: str, registry: Registry, translator: dbt.MeshDbtTranslator,
                        invocation: DbtCliInvocation) -> None:
    try:
        emit_model_runs(dagster_run, domain, registry.products_of(domain), translator,
                        invocation.get_artifact("manifest.json"), invocation.get_artifact("run_results.json"))
    except Exception as exc:  # lineage never fails a data run
        logging.getLogger(__name__).warning("no lineage for the dbt models of %s: %s", domain, exc)
