"""The Dagster resource through which the mesh's assets emit OpenLineage events."""

from dagster import AssetExecutionContext, ConfigurableResource

from platform_resources.governance.engine import evaluate
from platform_resources.lineage import naming
from platform_resources.lineage.facets import job_facets, port_static_facets
from platform_resources.lineage.runs import DagsterRun, JobRun, register_dataset
from platform_resources.manifest import Manifest
from platform_resources.registry import Registry


class LineageResource(ConfigurableResource):
    """Emits from inside the generated assets: one job per output port, per dbt model, per ingestion asset and per
    input port load (the domain's and the products' runs are the executor's: platform_resources.lineage.executor)."""

    domain: str  # the code location's domain: its jobs' namespace

    def dagster_run(self, context: AssetExecutionContext) -> DagsterRun:
        return DagsterRun(self.domain, context.run.job_name, context.run.run_id)

    def job_run(self, context: AssetExecutionContext, job_name: str, facets: dict,
                product_id: str | None = None) -> JobRun:
        return JobRun(self.dagster_run(context), job_name, facets, product_id)

    def port_run(self, context: AssetExecutionContext, manifest: Manifest, port_name: str) -> JobRun:
        port = manifest.output_port(port_name)
        facets = job_facets(manifest, f"Publishes port {manifest.id}.{port_name}: {port.description}",
                            integration="DAGSTER", job_type="PUBLISH")
        return self.job_run(context, naming.port_job(f"{manifest.id}.{port_name}"), facets, manifest.id)


def register_ports(registry: Registry, domains: list[str] | None = None) -> int:
    """Self-registration: a static DatasetEvent per output port, so lineage knows products before their first run."""
    report = evaluate(registry)
    count = 0
    for manifest in registry.products.values():
        if domains and manifest.domain not in domains:
            continue
        for port in manifest.output_ports:
            port_id = f"{manifest.id}.{port.name}"
            register_dataset(*naming.port_dataset(port_id), port_static_facets(manifest, port, port_id, report))
            count += 1
    return count
