"""A team that runs openlineage-dbt (`dbt-ol build`) on a consumer domain's dbt project gets lineage that joins
the platform's: its models read the relations the platform's input port loads write, so both emitters' events form
one graph from the operational tables to the domain's ports."""

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from platform_resources import dbt_sandbox, operational
from platform_resources.inputs import load_input_ports
from platform_resources.lineage import naming
from platform_resources.lineage.delivery import events_file
from platform_resources.registry import published_registry

REPO_ROOT = Path(__file__).resolve().parent.parent
DOMAIN = "finance"
Dataset = tuple[str, str]


def read_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def dbt_ol_events(mesh_run, tmp_path_factory) -> list[dict]:
    """`dbt-ol build` on finance's dbt project, on the DuckDB the mesh built it in, as the mesh runs dbt: the
    platform's profile, the domain's sandbox with the input ports loaded (through the access policy) for this run."""
    work = tmp_path_factory.mktemp("dbt_ol")
    inputs = load_input_ports(published_registry(), DOMAIN)
    assert inputs.loaded and not inputs.unavailable
    bin_dir = Path(sys.executable).parent
    env = {key: value for key, value in os.environ.items() if not key.startswith("OPENLINEAGE")}
    env.update(dbt_sandbox.environment(DOMAIN, (f for p in inputs.loaded for f in p.files)))
    env.update({"PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",  # dbt-ol runs `dbt` from the PATH
                "OPENLINEAGE_NAMESPACE": naming.job_namespace(DOMAIN),  # the platform's job namespace of the domain
                "OPENLINEAGE__TRANSPORT__TYPE": "file",
                "OPENLINEAGE__TRANSPORT__LOG_FILE_PATH": str(work / "events.jsonl"),
                "OPENLINEAGE__TRANSPORT__APPEND": "true"})
    result = subprocess.run(
        [str(bin_dir / "dbt-ol"), "build", "--project-dir", str(REPO_ROOT / "dbt_projects" / DOMAIN),
         "--profiles-dir", str(REPO_ROOT / "platform_resources" / "dbt_profile"), "--profile", "mesh",
         "--target-path", str(work / "target"), "--log-path", str(work / "logs")],
        cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return read_events(work / "events.jsonl")


def upstream_graph(events: list[dict]) -> dict[Dataset, set[Dataset]]:
    """dataset -> the datasets the jobs that wrote it read."""
    graph: dict[Dataset, set[Dataset]] = defaultdict(set)
    for e in events:
        if e.get("eventType") == "COMPLETE":
            for output in e["outputs"]:
                graph[(output["namespace"], output["name"])] |= {(i["namespace"], i["name"]) for i in e["inputs"]}
    return graph


def reached(graph: dict[Dataset, set[Dataset]], start: Dataset) -> set[Dataset]:
    seen, frontier = set(), [start]
    while frontier:
        for parent in graph.get(frontier.pop(), set()) - seen:
            seen.add(parent)
            frontier.append(parent)
    return seen


def operational_tables_upstream(product_id: str) -> set[Dataset]:
    """The operational tables a product depends on, through every upstream product (from the manifests)."""
    registry = published_registry()
    tables, stack, seen = set(), [product_id], set()
    while stack:
        manifest = registry.products[stack.pop()]
        for port in manifest.input_ports:
            if port.operational:
                system, table = port.operational.split(".")
                tables.add(naming.duckdb_dataset(str(operational.database(system)), "main", table))
            elif port.source and (producer := port.source.rsplit(".", 1)[0]) not in seen:
                seen.add(producer)
                stack.append(producer)
    return tables


def test_dbt_ol_names_the_models_and_their_inputs_as_the_platform_does(dbt_ol_events):
    ours = read_events(events_file())
    load_outputs = {(o["namespace"], o["name"]) for e in ours if e.get("eventType") == "COMPLETE"
                    and e["job"]["name"].startswith(f"{DOMAIN}.inputs.") for o in e["outputs"]}
    model_outputs = {(o["namespace"], o["name"]) for e in ours if e.get("eventType") == "COMPLETE"
                     and e["job"]["name"].startswith(f"{DOMAIN}.internal.") for o in e["outputs"]}
    theirs = [e for e in dbt_ol_events if e.get("eventType") == "COMPLETE" and e["outputs"]]
    assert {(o["namespace"], o["name"]) for e in theirs for o in e["outputs"]} == model_outputs
    inputs = {(i["namespace"], i["name"]) for e in theirs for i in e["inputs"]}
    assert inputs <= load_outputs | model_outputs and inputs & load_outputs
    assert ("duckdb://" + str(Path(os.environ["MESH_HOME"]) / "domains" / "finance.duckdb"),
            "finance.sales_orders.order_lines") in inputs
    # The same data source on both emitters' outputs.
    sources = {o["facets"]["dataSource"]["name"] for e in theirs for o in e["outputs"]}
    assert sources == {o["facets"]["dataSource"]["name"] for e in ours if e.get("eventType") == "COMPLETE"
                       and e["job"]["name"].startswith(f"{DOMAIN}.internal.") for o in e["outputs"]}


def test_dbt_ol_and_the_platform_form_one_graph_from_the_operational_tables_to_the_ports(dbt_ol_events):
    ours = read_events(events_file())
    # Without the platform's own events for finance's models, dbt-ol's are the only way through them.
    without_our_models = [e for e in ours if not e.get("job", {}).get("name", "").startswith(f"{DOMAIN}.internal.")]
    graph = upstream_graph(without_our_models + dbt_ol_events)
    registry = published_registry()
    reached_tables = {}
    for manifest in registry.products_of(DOMAIN):
        for port in manifest.output_ports:
            upstream = reached(graph, naming.port_dataset(f"{manifest.id}.{port.name}"))
            for source in (p.source for p in manifest.input_ports if p.source):
                assert naming.port_dataset(source) in upstream, (manifest.id, source)
            # Down to operational tables, and only to those of the products upstream (a port may need fewer).
            reached_tables[port.name] = {name for ns, name in upstream if ns.endswith(".duckdb") and "/operational/" in ns}
            expected = {name for _, name in operational_tables_upstream(manifest.id)}
            found = reached_tables[port.name]
            assert found and found <= expected, (manifest.id, found)
    assert "order_db.main.lineitem" in reached_tables["pricing_summary"]  # TPC-H Q1 reads the order lines
    assert {"crm_db.main.customer", "reference_db.main.nation"} <= reached_tables["returned_items"]
    # ... and without dbt-ol's events the graph is cut at finance's models: the join is theirs.
    cut = upstream_graph(without_our_models)
    assert not operational_tables_upstream("finance.pricing_summary") & reached(
        cut, naming.port_dataset("finance.pricing_summary.pricing_summary"))
