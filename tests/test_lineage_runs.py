"""The domain's and the products' lineage runs, reported by the domain's executor around a real Dagster run."""

import json

import pytest
from dagster import AssetSelection, DagsterInstance, Definitions, asset, define_asset_job, execute_job, reconstructable

from platform_resources.lineage.executor import DomainJobs, lineage_executor
from platform_resources.registry import mesh_registry

PORTS = {"crm__customers__customers": "crm.customers.customers",
         "crm__customers__customer_contacts": "crm.customers.customer_contacts"}


@asset(key=["crm", "customers", "customers"])
def customers() -> None:
    pass


@asset(key=["crm", "customers", "customer_contacts"])
def customer_contacts() -> None:
    raise RuntimeError("a blocking check failed")


@asset(key=["crm", "internal", "crm_db", "customer"])
def ingestion() -> None:
    pass


def crm_job():
    """Two ports of crm.customers, one of them failing, and an ingestion asset: run with the domain's executor."""
    jobs = DomainJobs("crm", [mesh_registry().products["crm.customers"]], PORTS)
    definitions = Definitions(assets=[customers, customer_contacts, ingestion], executor=lineage_executor(jobs),
                              jobs=[define_asset_job("crm_all_products", selection=AssetSelection.all())])
    return definitions.resolve_job_def("crm_all_products")


@pytest.fixture
def events(fresh_home, tmp_path, monkeypatch) -> list[dict]:
    for name in ("OPENLINEAGE_URL", "OPENLINEAGE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no openlineage.yml: events go to the mesh home's file
    with DagsterInstance.ephemeral() as instance:
        result = execute_job(reconstructable(crm_job), instance=instance, raise_on_error=False)
        assert not result.success
        run_id = result.run_id
    events = [json.loads(line) for line in (fresh_home / "lineage" / "events.jsonl").read_text().splitlines()]
    assert events[0]["run"]["runId"] == run_id  # the domain's run is the Dagster run
    return events


def test_the_domain_and_product_runs_start_first_and_end_last_and_fail_with_what_did_not_publish(events):
    assert [(e["eventType"], e["job"]["name"]) for e in events] == [
        ("START", "crm"), ("START", "crm.customers"), ("FAIL", "crm.customers"), ("FAIL", "crm")]
    product, domain = events[2], events[3]
    assert product["run"]["facets"]["errorMessage"]["message"] == \
        "not published: crm.customers.customer_contacts (failed)"
    assert domain["run"]["facets"]["errorMessage"]["message"] == "failed steps: crm__customers__customer_contacts"
    parent = product["run"]["facets"]["parent"]["job"]
    assert (parent["namespace"], parent["name"]) == ("mesh.crm", "crm")
    assert product["run"]["facets"]["parent"]["run"]["runId"] == domain["run"]["runId"]
    for e in (product, domain):
        job_type = e["job"]["facets"]["jobType"]
        assert (job_type["processingType"], job_type["integration"]) == ("BATCH", "DAGSTER") and job_type["jobType"]
    assert [o["name"] for o in product["job"]["facets"]["ownership"]["owners"]]  # the product's owners
