"""How Marquez would store our jobs (tests/openlineage_spec.py replays its rules), on events the platform emits."""

import json

from openlineage_spec import marquez_job_name, marquez_jobs

from platform_resources.lineage import naming
from platform_resources.lineage.runs import DagsterRun, JobRun, domain_run, product_run

DAGSTER_RUN = "5f0c7a3e-0d7e-4b7e-9a39-2b1d8c1f6a10"


def run_event(run_id: str, name: str, parent: tuple[str, str] | None = None, namespace: str = "mesh.finance") -> dict:
    facets = {"parent": {"run": {"runId": parent[0]}, "job": {"namespace": namespace, "name": parent[1]}}} if parent else {}
    return {"eventType": "START", "run": {"runId": run_id, "facets": facets}, "job": {"namespace": namespace, "name": name}}


def test_a_child_is_stored_under_its_parents_name_unless_it_starts_with_it_and_a_dot():
    assert marquez_job_name("internal.pricing_summary", "pricing_summary") == "pricing_summary.internal.pricing_summary"
    assert marquez_job_name("internal.order_db.orders", "sales_all_products") == \
        "sales_all_products.internal.order_db.orders"
    assert marquez_job_name("finance.pricing_summary.pricing_summary", "finance.pricing_summary") == \
        "finance.pricing_summary.pricing_summary"
    assert marquez_job_name("finance.pricing_summaryx", "finance.pricing_summary") == \
        "finance.pricing_summary.finance.pricing_summaryx"  # a prefix, but not followed by a dot
    assert marquez_job_name("finance", None) == "finance"


def test_a_parent_without_events_of_its_own_becomes_a_placeholder_job():
    events = [run_event("c1", "finance.internal.m", ("p1", "finance"))]
    names, placeholders = marquez_jobs(events)
    assert names == ["finance.internal.m"] and placeholders == {("mesh.finance", "finance")}
    # Once the parent reports its run first, its job is the parent's: no placeholder.
    names, placeholders = marquez_jobs([run_event("p1", "finance"), *events])
    assert names == ["finance", "finance.internal.m"] and placeholders == set()
    # A grandchild must name its parent by the parent's stored (full) name: the run p2 is stored as a run of
    # finance.product, so a facet naming `product` gets a placeholder job `product` instead.
    chain = [run_event("p1", "finance"), run_event("p2", "product", ("p1", "finance")),
             run_event("c2", "product.port", ("p2", "product"))]
    names, placeholders = marquez_jobs(chain)
    assert names == ["finance", "finance.product", "product.port"] and placeholders == {("mesh.finance", "product")}
    chain[1]["job"]["name"], chain[2]["run"]["facets"]["parent"]["job"]["name"] = "finance.product", "finance.product"
    chain[2]["job"]["name"] = "finance.product.port"
    assert marquez_jobs(chain) == (["finance", "finance.product", "finance.product.port"], set())


def test_the_jobs_the_platform_emits_are_stored_as_named(fresh_home, tmp_path, monkeypatch):
    for name in ("OPENLINEAGE_URL", "OPENLINEAGE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no openlineage.yml: events go to the mesh home's file
    dagster = DagsterRun("finance", "__ASSET_JOB", DAGSTER_RUN)
    domain, product = domain_run(dagster, {}), product_run(dagster, "finance.pricing_summary", {})
    children = [JobRun(dagster, naming.model_job("finance", "pricing_summary"), {}),
                JobRun(dagster, naming.ingestion_job("finance", "order_db", "orders"), {}),
                JobRun(dagster, naming.input_load_job("finance", "sales.orders.order_lines"), {}),
                JobRun(dagster, naming.port_job("finance.pricing_summary.pricing_summary"), {}, "finance.pricing_summary")]
    domain.start()
    product.start()
    for child in children:
        child.start()
        child.complete()
    product.complete()
    domain.complete()
    events = [json.loads(line) for line in (fresh_home / "lineage" / "events.jsonl").read_text().splitlines()]
    names, placeholders = marquez_jobs(events)
    assert names == [e["job"]["name"] for e in events] and placeholders == set()
    assert set(names) == {"finance", "finance.pricing_summary", "finance.internal.pricing_summary",
                          "finance.internal.order_db.orders", "finance.inputs.sales.orders.order_lines",
                          "finance.pricing_summary.pricing_summary"}
    # The domain's run is the Dagster run (the way back to Dagster), whatever Dagster job ran it.
    assert events[0]["run"]["runId"] == DAGSTER_RUN and "parent" not in events[0]["run"]["facets"]
    assert {e["run"]["facets"]["parent"]["root"]["run"]["runId"] for e in events[1:-1]} == {DAGSTER_RUN}
