"""OpenLineage runs of a domain's dbt models, read from the artifacts of the dbt invocation that built them."""

import functools
import logging
from collections.abc import Mapping
from typing import Any

import duckdb
from openlineage.client.facet_v2 import schema_dataset, sql_job

from platform_resources.dbt import MeshDbtTranslator
from platform_resources.home import domain_duckdb_path
from platform_resources.lineage import naming
from platform_resources.lineage.column_lineage import column_lineage
from platform_resources.lineage.facets import column_lineage as column_lineage_facet
from platform_resources.lineage.facets import job_facets
from platform_resources.lineage.runs import DagsterRun, JobRun
from platform_resources.manifest import Manifest

log = logging.getLogger(__name__)
Dataset = tuple[str, str]


def _unquoted(relation: str) -> str:
    return ".".join(part.strip('"') for part in relation.split(".")).lower()


def _dataset_of(unique_id: str, dbt_manifest: Mapping[str, Any], translator: MeshDbtTranslator,
                domain: str) -> tuple[str, Dataset] | None:
    """(relation, dataset) of a model or source a model depends on. Input ports are named as their producer
    names them, so the cross-domain edge joins in the lineage backend."""
    node = dbt_manifest["nodes"].get(unique_id) or dbt_manifest["sources"].get(unique_id)
    if node is None or not node.get("relation_name"):
        return None
    if node["resource_type"] == "source":
        key = translator.get_asset_key(node)
        if key.path[1] != "internal":  # an upstream product's output port
            return node["relation_name"], naming.port_dataset(".".join(key.path))
    return node["relation_name"], naming.relation_dataset(domain, node["relation_name"])


def _product_of_models(dbt_manifest: Mapping[str, Any], products: list[Manifest]) -> dict[str, str]:
    """Model unique id -> the one product it serves (models shared by several products belong to none)."""
    by_name = {n["name"]: uid for uid, n in dbt_manifest["nodes"].items() if n["resource_type"] == "model"}
    served: dict[str, set[str]] = {}
    for manifest in products:
        stack = [by_name[p.dbt_model] for p in manifest.output_ports if p.dbt_model in by_name]
        while stack:
            uid = stack.pop()
            if manifest.id not in served.setdefault(uid, set()):
                served[uid].add(manifest.id)
                stack.extend(d for d in dbt_manifest["nodes"][uid]["depends_on"]["nodes"] if d in dbt_manifest["nodes"])
    return {uid: next(iter(ids)) for uid, ids in served.items() if len(ids) == 1}


def _columns(domain: str) -> dict[str, dict[str, str]]:
    """relation (db.schema.table, lower case) -> {column: type}, for every table and view of the domain's DuckDB."""
    with duckdb.connect(str(domain_duckdb_path(domain)), read_only=True) as con:
        rows = con.execute("select table_catalog, table_schema, table_name, column_name, data_type "
                           "from information_schema.columns order by ordinal_position").fetchall()
    columns: dict[str, dict[str, str]] = {}
    for catalog, schema, table, column, kind in rows:
        columns.setdefault(f"{catalog}.{schema}.{table}".lower(), {})[column] = kind
    return columns


def emit_model_runs(dagster_run: DagsterRun, domain: str, products: list[Manifest], translator: MeshDbtTranslator,
                    dbt_manifest: Mapping[str, Any], run_results: Mapping[str, Any]) -> int:
    """A START and a COMPLETE (or FAIL) per model dbt ran, timed as dbt timed it. Returns the number of models."""
    columns = _columns(domain)
    product_of = _product_of_models(dbt_manifest, products)
    # A port read by several models is looked up in the catalog once.
    dataset_of = functools.cache(lambda unique_id: _dataset_of(unique_id, dbt_manifest, translator, domain))
    emitted = 0
    for result in run_results["results"]:
        node = dbt_manifest["nodes"].get(result["unique_id"])
        if node is None or node["resource_type"] != "model" or result["status"] == "skipped":
            continue
        inputs = dict(filter(None, (dataset_of(d) for d in node["depends_on"]["nodes"])))
        output = naming.relation_dataset(domain, node["relation_name"])
        facets = job_facets(None, node.get("description") or f"dbt model {node['name']}", integration="DBT",
                            job_type="MODEL", team_owners=translator.owners)
        if node.get("compiled_code"):
            facets["sql"] = sql_job.SQLJobFacet(query=node["compiled_code"], dialect="duckdb")
        run = JobRun(dagster_run, f"internal.{node['name']}", facets, product_of.get(result["unique_id"]))
        timing = {t["name"]: t for t in result.get("timing", [])}
        started = timing.get("compile", timing.get("execute", {})).get("started_at")
        finished = timing.get("execute", {}).get("completed_at")
        input_datasets = [(*dataset, {}) for dataset in inputs.values()]
        run.start(input_datasets, [(*output, {})], when=started)
        if result["status"] != "success":
            run.fail(result.get("message") or f"dbt status {result['status']}", input_datasets, [(*output, {})], when=finished)
        else:
            run.complete(input_datasets, [(*output, _output_facets(node, columns, inputs))], when=finished)
        emitted += 1
    return emitted


def _output_facets(node: Mapping[str, Any], columns: dict[str, dict[str, str]], inputs: dict[str, Dataset]) -> dict:
    own = columns.get(_unquoted(node["relation_name"]), {})
    facets: dict = {"schema": schema_dataset.SchemaDatasetFacet(fields=[
        schema_dataset.SchemaDatasetFacetFields(name=name, type=kind,
                                                description=node.get("columns", {}).get(name, {}).get("description") or None)
        for name, kind in own.items()])}
    if node.get("compiled_code") and inputs:
        datasets = {_unquoted(relation): dataset for relation, dataset in inputs.items()}
        schema = {relation: columns.get(_unquoted(relation), {}) for relation in inputs}
        traced = column_lineage(node["compiled_code"], schema)
        fields = {column: [(*datasets[table.lower()], source) for table, source in sources if table.lower() in datasets]
                  for column, sources in traced.items()}
        facets["columnLineage"] = column_lineage_facet({c: f for c, f in fields.items() if f})
    return facets
