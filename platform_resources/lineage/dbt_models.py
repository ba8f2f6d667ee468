"""OpenLineage runs of a domain's dbt models, read from the artifacts of the dbt invocation that built them."""

import logging
from collections.abc import Mapping
from typing import Any

from openlineage.client.facet_v2 import sql_job

from platform_resources.dbt import MeshDbtTranslator
from platform_resources.home import domain_duckdb_path
from platform_resources.lineage import naming
from platform_resources.lineage.column_lineage import column_lineage
from platform_resources.lineage.duckdb_schema import relation_columns
from platform_resources.lineage.facets import column_lineage as column_lineage_facet
from platform_resources.lineage.facets import duckdb_facets, job_facets
from platform_resources.lineage.runs import DagsterRun, JobRun

log = logging.getLogger(__name__)
Dataset = tuple[str, str]


def _unquoted(relation: str) -> str:
    return ".".join(part.strip('"') for part in relation.split(".")).lower()


def _dataset_of(unique_id: str, dbt_manifest: Mapping[str, Any], domain: str) -> tuple[str, Dataset] | None:
    """(relation, dataset) of a model or source a model depends on: the relation in the domain's DuckDB, as
    openlineage-dbt names it. An input port's relation is written by its load job, which reads the producer's
    Iceberg table, so the cross-domain edge joins through it."""
    node = dbt_manifest["nodes"].get(unique_id) or dbt_manifest["sources"].get(unique_id)
    if node is None or not node.get("relation_name"):
        return None
    return node["relation_name"], naming.relation_dataset(domain, node["relation_name"])


def emit_model_runs(dagster_run: DagsterRun, domain: str, translator: MeshDbtTranslator,
                    dbt_manifest: Mapping[str, Any], run_results: Mapping[str, Any]) -> int:
    """A START and a COMPLETE (or FAIL) per model dbt ran, timed as dbt timed it, each a child of the domain's
    run (a model may serve several products). Returns the number of models."""
    columns = relation_columns(domain_duckdb_path(domain))
    emitted = 0
    for result in run_results["results"]:
        node = dbt_manifest["nodes"].get(result["unique_id"])
        if node is None or node["resource_type"] != "model" or result["status"] == "skipped":
            continue
        inputs = dict(filter(None, (_dataset_of(d, dbt_manifest, domain) for d in node["depends_on"]["nodes"])))
        output = naming.relation_dataset(domain, node["relation_name"])
        facets = job_facets(None, node.get("description") or f"dbt model {node['name']}", integration="DBT",
                            job_type="MODEL", team_owners=translator.owners)
        if node.get("compiled_code"):
            facets["sql"] = sql_job.SQLJobFacet(query=node["compiled_code"], dialect="duckdb")
        run = JobRun(dagster_run, naming.model_job(domain, node["name"]), facets)
        timing = {t["name"]: t for t in result.get("timing", [])}
        started = timing.get("compile", timing.get("execute", {})).get("started_at")
        finished = timing.get("execute", {}).get("completed_at")
        input_datasets = [(*dataset, {}) for dataset in inputs.values()]
        run.start(input_datasets, [(*output, {})], when=started)
        if result["status"] != "success":
            run.fail(result.get("message") or f"dbt status {result['status']}", input_datasets, [(*output, {})], when=finished)
        else:
            run.complete(input_datasets, [(*output, _output_facets(node, output, columns, inputs))], when=finished)
        emitted += 1
    return emitted


def _output_facets(node: Mapping[str, Any], output: Dataset, columns: dict[str, dict[str, str]],
                   inputs: dict[str, Dataset]) -> dict:
    own = columns.get(_unquoted(node["relation_name"]), {})
    descriptions = {name: column.get("description") for name, column in node.get("columns", {}).items()}
    facets = duckdb_facets(output[0], own, descriptions)
    if node.get("compiled_code") and inputs:
        datasets = {_unquoted(relation): dataset for relation, dataset in inputs.items()}
        schema = {relation: columns.get(_unquoted(relation), {}) for relation in inputs}
        traced = column_lineage(node["compiled_code"], schema)
        fields = {column: [(*datasets[table.lower()], source) for table, source in sources if table.lower() in datasets]
                  for column, sources in traced.items()}
        facets["columnLineage"] = column_lineage_facet({c: f for c, f in fields.items() if f})
    return facets
