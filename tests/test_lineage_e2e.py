"""The OpenLineage events of a full sample-mesh run: valid, Marquez-ready, and describing the mesh graph."""

import json
from collections import defaultdict
from pathlib import Path

import pytest
from openlineage_spec import NEEDS_SPEC, marquez_jobs, marquez_problems, validate_event

from platform_resources.lineage.delivery import events_file
from platform_resources.lineage.facets import MESH_FACET_SCHEMA
from platform_resources.registry import mesh_registry

CUSTOM_SCHEMAS = {MESH_FACET_SCHEMA: Path(__file__).resolve().parent.parent /
                  "platform_resources/lineage/schemas/facets/1-0-0/MeshDataProductDatasetFacet.json"}


def _root_run(event: dict) -> str | None:
    facets = event.get("run", {}).get("facets", {})
    return facets.get("parent", {}).get("root", {}).get("run", {}).get("runId") or event.get("run", {}).get("runId")


@pytest.fixture(scope="module")
def events(mesh_run) -> list[dict]:
    """The events of the session's mesh run (other tests run domains again in the same home), and the static
    dataset events."""
    runs = set(mesh_run.run_ids.values())
    every = [json.loads(line) for line in events_file().read_text().splitlines()]
    return [e for e in every if "run" not in e or _root_run(e) in runs]


@pytest.fixture(scope="module")
def completes(events) -> list[dict]:
    return [e for e in events if e.get("eventType") == "COMPLETE"]


def port_of(dataset: dict) -> str | None:
    return dataset.get("facets", {}).get("mesh_dataProduct", {}).get("portId")


@NEEDS_SPEC
def test_every_event_validates_against_the_openlineage_spec(events):
    assert len(events) > 100
    problems = {i: p for i, e in enumerate(events) if (p := validate_event(e, CUSTOM_SCHEMAS))}
    assert not problems, list(problems.items())[:3]


def test_every_event_meets_marquez_rules(events):
    problems = {i: p for i, e in enumerate(events) if (p := marquez_problems(e))}
    assert not problems, list(problems.items())[:3]


def test_ports_register_themselves_before_their_first_run(events):
    registry = mesh_registry()
    registered = [e for e in events if "dataset" in e]
    assert {port_of(e["dataset"]) for e in registered} == set(registry.port_ids())
    first_run_event = next(i for i, e in enumerate(events) if "run" in e)
    assert all(events.index(e) < first_run_event for e in registered[:len(registry.port_ids())])
    assert {"schema", "documentation", "ownership", "symlinks"} <= set(registered[0]["dataset"]["facets"])


def test_one_job_per_port_dbt_model_and_ingestion_with_start_and_end(events, completes):
    registry = mesh_registry()
    names = {(e["job"]["namespace"], e["job"]["name"]) for e in completes}
    for manifest in registry.products.values():
        assert (f"mesh.{manifest.domain}", manifest.id) in names  # the product's run
        for port in manifest.output_ports:
            assert (f"mesh.{manifest.domain}", f"{manifest.id}.{port.name}") in names
    assert {("mesh.finance", "finance"), ("mesh.sales", "sales")} <= names  # the domains' (Dagster) runs
    assert ("mesh.finance", "finance.internal.pricing_summary") in names
    assert ("mesh.sales", "sales.internal.order_db.lineitem") in names
    assert ("mesh.finance", "finance.inputs.sales.orders.order_lines") in names
    starts = {e["run"]["runId"] for e in events if e.get("eventType") == "START"}
    assert {e["run"]["runId"] for e in completes} <= starts
    for e in completes:  # the Dagster run is the root of every run, for the way back; the domain's run is it
        root = e["run"]["facets"]["parent"]["root"]["run"]["runId"] if "parent" in e["run"]["facets"] else None
        assert root or e["job"]["name"] == e["job"]["namespace"].removeprefix("mesh.")


def test_the_lineage_graph_equals_the_mesh_graph_of_the_manifests(completes):
    """dataset -> job -> dataset edges, walked back from each port to the nearest upstream ports."""
    upstream = defaultdict(set)
    port_ids = {}
    for e in completes:
        for output in e["outputs"]:
            key = (output["namespace"], output["name"])
            upstream[key] |= {(i["namespace"], i["name"]) for i in e["inputs"]}
            if port_of(output):
                port_ids[key] = port_of(output)

    def upstream_ports(dataset, seen) -> set[str]:
        found = set()
        for parent in upstream[dataset] - seen:
            seen.add(parent)
            found |= {port_ids[parent]} if parent in port_ids else upstream_ports(parent, seen)
        return found

    observed = defaultdict(set)
    for dataset, port_id in port_ids.items():
        observed[port_id.rsplit(".", 1)[0]] |= upstream_ports(dataset, set())
    registry = mesh_registry()
    declared = {m.id: {p.source for p in m.input_ports if p.source} for m in registry.products.values()}
    assert dict(observed) == declared
    assert "crm.customers.customer_contacts" in observed["finance.returned_items"]


def test_column_lineage_of_a_finance_product_traces_back_to_source_aligned_columns(completes):
    sources = {}
    port_dataset = {}
    for e in completes:
        for output in e["outputs"]:
            if port_of(output):
                port_dataset[port_of(output)] = (output["namespace"], output["name"])
            for column, lineage in output["facets"].get("columnLineage", {}).get("fields", {}).items():
                sources[(output["namespace"], output["name"], column)] = [
                    (f["namespace"], f["name"], f["field"]) for f in lineage["inputFields"]]

    def roots(column) -> set:
        reached, frontier = set(), [column]
        while frontier:
            current = frontier.pop()
            reached.add(current)
            frontier.extend(s for s in sources.get(current, []) if s not in reached)
        return reached

    sum_qty = roots((*port_dataset["finance.pricing_summary.pricing_summary"], "sum_qty"))
    assert (*port_dataset["sales.orders.order_lines"], "l_quantity") in sum_qty
    revenue = roots((*port_dataset["finance.returned_items.returned_items"], "revenue"))
    assert {(*port_dataset["sales.orders.order_lines"], "l_extendedprice"),
            (*port_dataset["sales.orders.order_lines"], "l_discount")} <= revenue
    name = roots((*port_dataset["finance.returned_items.returned_items"], "c_name"))
    assert (*port_dataset["crm.customers.customer_contacts"], "c_name") in name
    # ... and on, inside crm, to the CRM system's table the source-aligned product ingested.
    assert any(ns.startswith("duckdb://") and n.endswith("crm_db.customer") and f == "c_name" for ns, n, f in name)
    # ... and to the column of the CRM system's own database, through the ingestion job.
    assert any(ns.endswith("/crm_db.duckdb") and n == "crm_db.main.customer" and f == "c_name" for ns, n, f in name)


def test_every_port_event_carries_the_products_policy_status_for_governance(events, completes):
    registered = [e["dataset"] for e in events if "dataset" in e]
    published = [o for e in completes for o in e["outputs"] if port_of(o)]
    for dataset in registered + published:
        compliance = dataset["facets"]["mesh_dataProduct"]["compliance"]
        assert compliance == {"status": "compliant", "findings": []}, port_of(dataset)


def test_marquez_stores_every_job_under_the_name_we_emit_and_creates_no_placeholder(events):
    """Marquez prefixes a child job with its parent's name unless the name starts with it (openlineage_spec)."""
    stored, placeholders = marquez_jobs(events)
    renamed = {(e["job"]["name"], name) for e, name in zip(events, stored) if name and name != e["job"]["name"]}
    assert not renamed, sorted(renamed)[:5]
    assert not placeholders, sorted(placeholders)
    assert any(e["job"]["name"] == "finance.pricing_summary.pricing_summary" and
               e["run"]["facets"]["parent"]["job"]["name"] == "finance.pricing_summary" for e in events if "job" in e)


def test_every_parent_run_reports_its_start_and_end_with_its_job_type_before_and_after_its_children(events):
    runs = defaultdict(list)
    for i, e in enumerate(events):
        if "run" in e:
            runs[e["run"]["runId"]].append((i, e))
    parents = {e["run"]["facets"]["parent"]["run"]["runId"] for e in events if "parent" in e.get("run", {}).get("facets", {})}
    assert len(parents) > 6
    for parent in parents:
        own = runs[parent]
        assert [e["eventType"] for _, e in own][0] == "START" and own[-1][1]["eventType"] in ("COMPLETE", "FAIL")
        job_type = own[0][1]["job"]["facets"]["jobType"]
        assert job_type["processingType"] == "BATCH" and job_type["integration"] == "DAGSTER" and job_type["jobType"]
        children = [i for i, e in enumerate(events) if e.get("run", {}).get("facets", {}).get("parent", {}).get(
            "run", {}).get("runId") == parent]
        assert own[0][0] < min(children) and own[-1][0] > max(children)
    domain_runs = [e for e in events if e.get("job", {}).get("name") == "finance"]
    root = domain_runs[0]["run"]["runId"]  # the Dagster run's id: the way back to Dagster
    assert {e["eventType"] for e in domain_runs} == {"START", "COMPLETE"} and "parent" not in domain_runs[0]["run"]["facets"]
    assert all(e["run"]["facets"]["parent"]["root"]["run"]["runId"] == root
               for e in events if e.get("job", {}).get("namespace") == "mesh.finance" and e["job"]["name"] != "finance")


def test_every_column_lineage_input_field_is_in_its_datasets_schema(events):
    """Marquez keeps column lineage only where the input dataset's stored schema has the column."""
    schemas = defaultdict(set)
    for e in events:
        for dataset in [*e.get("inputs", []), *e.get("outputs", []), *([e["dataset"]] if "dataset" in e else [])]:
            fields = dataset.get("facets", {}).get("schema", {}).get("fields", [])
            schemas[(dataset["namespace"], dataset["name"])] |= {f["name"] for f in fields}
    datasets = {key for e in events for side in ("inputs", "outputs") for key in
                ((d["namespace"], d["name"]) for d in e.get(side, []))}
    assert {d for d in datasets if not schemas[d]} == set()  # every dataset carries a schema at least once
    missing, traced = set(), 0
    for e in events:
        for output in e.get("outputs", []):
            for column, lineage in output.get("facets", {}).get("columnLineage", {}).get("fields", {}).items():
                for field in lineage["inputFields"]:
                    traced += 1
                    if field["field"] not in schemas[(field["namespace"], field["name"])]:
                        missing.add((output["name"], column, field["name"], field["field"]))
    assert traced > 100 and not missing, sorted(missing)[:5]


def test_checks_are_input_facets_of_the_staged_table_and_dbt_outputs_name_their_data_source(completes):
    publishes = [e for e in completes if any(port_of(o) for o in e["outputs"])]
    assert publishes and all(not o["facets"].get("dataQualityAssertions") for e in completes for o in e["outputs"])
    for e in publishes:
        [staged] = e["inputs"]
        assertions = staged["inputFacets"]["dataQualityAssertions"]["assertions"]
        assert {"contract_schema", "primary_key"} <= {a["assertion"] for a in assertions}
        assert all(a["success"] for a in assertions)
    models = [e for e in completes if e["job"]["facets"]["jobType"]["jobType"] == "MODEL"]
    assert models
    for e in models:
        [output] = e["outputs"]
        assert output["facets"]["dataSource"] == {**output["facets"]["dataSource"], "name": output["namespace"],
                                                  "uri": output["namespace"]}
