"""OpenLineage runs of the input port loads: each reads the producer's Iceberg table and writes the relation the
consumer's dbt models read, the relation openlineage-dbt names as their input. So the graph of a domain's dbt
project, from either emitter, joins the producer's port."""

from openlineage.client.facet_v2 import dataset_version_dataset

from platform_resources.home import domain_duckdb_path
from platform_resources.inputs import LoadedPort
from platform_resources.lineage import naming
from platform_resources.lineage.duckdb_schema import relation_columns
from platform_resources.lineage.facets import duckdb_facets, identity_lineage, job_facets
from platform_resources.lineage.runs import DagsterRun, JobRun


def emit_input_loads(dagster_run: DagsterRun, domain: str, loaded: list[LoadedPort], team_owners: list[str]) -> None:
    """A START and a COMPLETE per input port loaded into the domain's DuckDB, timed as the load was."""
    if not loaded:
        return
    columns = relation_columns(domain_duckdb_path(domain))
    for port in loaded:
        schema, table = (part.strip('"') for part in port.relation.split("."))
        relation = naming.domain_table(domain, schema, table)
        source = naming.port_dataset(port.port_id)
        own = columns.get(relation[1].lower(), {})
        facets = job_facets(None, f"Loads input port {port.port_id} (read as {port.consumer}) into {domain}'s "
                            f"DuckDB as {schema}.{table}, where dbt reads it.", integration="DAGSTER",
                            job_type="INPUT_LOAD", team_owners=team_owners)
        run = JobRun(dagster_run, naming.input_load_job(domain, port.port_id), facets)
        version = {} if port.snapshot_id is None else {
            "version": dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=str(port.snapshot_id))}
        run.start([(*source, {})], [(*relation, {})], when=port.started)
        run.complete([(*source, version)],
                     [(*relation, {**duckdb_facets(relation[0], own), **identity_lineage(source, list(own))})],
                     when=port.finished)
