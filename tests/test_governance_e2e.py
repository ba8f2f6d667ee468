"""Governance end to end: an error finding in one product blocks it and its consumers, and nothing else."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance
from workspaces import copy_sample_mesh

from platform_resources import access_log, ports
from platform_resources.build import build_domain
from platform_resources.governance.engine import evaluate
from platform_resources.registry import load_registry
from platform_resources.runner import format_summary, run_mesh

BLOCKED = {  # supply.suppliers gets an unknown owner team; finance reads it in two products
    "supply.suppliers.suppliers": "MESH-OWN-001",
    "supply.suppliers.supplier_contacts": "MESH-OWN-001",
    "finance.local_supplier_volume.local_supplier_volume": "upstream product supply.suppliers is blocked",
    "finance.top_supplier.top_supplier": "upstream product supply.suppliers is blocked",
}


@pytest.fixture
def workspace_with_unknown_owner(tmp_path, monkeypatch, fresh_home) -> Path:
    """The sample mesh's manifests, with supply.suppliers owned by a team governance does not know."""
    workspace = copy_sample_mesh(tmp_path)
    manifest = tmp_path / "mesh_code_locations/supply/products/suppliers.yaml"
    manifest.write_text(manifest.read_text().replace("team: supply", "team: procurement"))
    monkeypatch.setenv("MESH_WORKSPACE", str(workspace))
    return manifest


def test_an_error_finding_blocks_its_product_and_consumers_and_the_rest_of_the_mesh_publishes(
        workspace_with_unknown_owner, fresh_home, prepared_dbt):
    summary = run_mesh(0.01, workers=2, log=lambda *_: None)
    text = format_summary(summary)
    assert not summary.ok and not summary.failed_domains, text
    for port_id, outcome in summary.ports.items():
        if port_id in BLOCKED:
            assert outcome.rows is None and BLOCKED[port_id] in outcome.error, text
            assert "blocked by policy" in outcome.error
            with pytest.raises(LookupError):
                ports.resolve_version(port_id)  # nothing was ever published
        else:
            assert outcome.rows and outcome.error is None, text
    assert len(summary.ports) - len(BLOCKED) == 14

    # Nothing of the blocked product was ever served; every read is in the access log with the version it got.
    log = access_log.entries()
    assert not [e for e in log if e.port_id.startswith("supply.suppliers.")]
    contacts = [e for e in log if e.port_id == "crm.customers.customer_contacts"]
    assert {e.consumer for e in contacts} == {"finance.returned_items", "marketing.large_volume_customers"}
    published = ports.resolve_version("crm.customers.customer_contacts").processing_time.isoformat()
    assert all(e.allowed and e.processing_time == published for e in contacts)

    # The findings are on the asset in Dagster, and the supply run failed (its other products published).
    assert DagsterInstance.get().get_run_by_id(summary.run_ids["supply"]).status.value == "FAILURE"
    supply = build_domain((registry := load_registry()).domains["supply"], registry)
    metadata = supply.resolve_asset_graph().get(AssetKey(["supply", "suppliers", "suppliers"])).metadata
    assert "MESH-OWN-001" in metadata["mesh/policy_findings"].value and "procurement" in metadata["mesh/blocked"]
    # Governance sees it in lineage too: the failed publish names the finding.
    events = [json.loads(line) for line in (fresh_home / "lineage" / "events.jsonl").read_text().splitlines()]
    fail = next(e for e in events if e.get("eventType") == "FAIL" and e["job"]["name"] == "supply.suppliers.suppliers")
    compliance = fail["outputs"][0]["facets"]["mesh_dataProduct"]["compliance"]
    assert compliance["status"] == "blocked" and compliance["findings"][0]["policy"] == "MESH-OWN-001"


def test_mesh_validate_reports_the_finding_with_file_and_line_and_fails(workspace_with_unknown_owner, prepared_dbt):
    mesh = str(Path(sys.executable).parent / "mesh")
    result = subprocess.run([mesh, "validate"], capture_output=True, text=True)
    assert result.returncode == 1, result.stdout + result.stderr
    line = next(i for i, text in enumerate(workspace_with_unknown_owner.read_text().splitlines(), 1)
                if "team: procurement" in text)
    assert f"{workspace_with_unknown_owner}:{line}: error MESH-OWN-001" in result.stdout
    assert "supply: 3 products, 1 errors" in result.stdout
    assert "finance.top_supplier: upstream product supply.suppliers is blocked" in result.stdout
    as_json = json.loads(subprocess.run([mesh, "validate", "--format", "json"], capture_output=True, text=True).stdout)
    assert not as_json["ok"] and as_json["domains"]["supply"]["errors"][0]["line"] == line
    assert set(as_json["blocked"]) == {"supply.suppliers", "finance.local_supplier_volume", "finance.top_supplier"}


def test_a_dbt_model_reading_a_restricted_port_for_a_product_without_access_is_caught_on_the_asset_graph(
        tmp_path, prepared_dbt):
    """The manifests alone look fine: pricing_summary holds the approved request, but returned_items' model reads it."""
    workspace = copy_sample_mesh(tmp_path)
    products = tmp_path / "mesh_code_locations"
    returned = products / "finance/products/returned_items.yaml"
    request = ('  - name: customer_contacts\n    from: crm.customers.customer_contacts\n'
               '    access_request: {reason: "Collections contact customers who returned items (TPC-H Q10)."}\n')
    returned.write_text(returned.read_text().replace(request, ""))
    pricing = products / "finance/products/pricing_summary.yaml"
    pricing.write_text(pricing.read_text().replace("input_ports:\n", "input_ports:\n" + request))
    crm = products / "crm/products/customers.yaml"
    crm.write_text(crm.read_text().replace("consumer: finance.returned_items", "consumer: finance.pricing_summary"))
    registry = load_registry(workspace)
    assert not [f for f in evaluate(registry).findings if f.product == "finance.returned_items"]  # manifests only
    graph = build_domain(registry.domains["finance"], registry).resolve_asset_graph()
    node = graph.get(AssetKey(["finance", "returned_items", "returned_items"]))
    assert node.tags["mesh/compliance"] == "blocked"
    assert "MESH-ACC-002" in node.metadata["mesh/blocked"]
    assert "asset finance/internal/returned_items reads restricted port crm.customers.customer_contacts" in \
        node.metadata["mesh/blocked"]
    assert graph.get(AssetKey(["finance", "pricing_summary", "pricing_summary"])).tags["mesh/compliance"] == "compliant"
