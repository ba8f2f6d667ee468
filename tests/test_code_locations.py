"""Every code location of workspace.yaml loads, with the asset graph the manifests promise."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import AssetKey

from platform_resources.governance.runtime import checks_of
from platform_resources.governance.validate import load_definitions
from platform_resources.registry import component_config, load_registry

REPO_ROOT = Path(__file__).resolve().parent.parent
SOURCE_DOMAINS = {"geography", "crm", "sales", "supply"}


@pytest.fixture(scope="module")
def registry():
    return load_registry()


@pytest.fixture(scope="module")
def graphs(registry, prepared_dbt):
    """Each domain's resolved asset graph, loaded the way Dagster loads the code location."""
    return {d: load_definitions(registry.domains[d]).resolve_asset_graph() for d in registry.domains}


def port_keys(registry, domain):
    return {AssetKey([m.domain, m.product, p.name]) for m in registry.products_of(domain) for p in m.output_ports}


def test_dagster_loads_every_code_location_without_touching_storage(tmp_path, prepared_dbt):
    env = {**os.environ, "MESH_HOME": str(tmp_path / "untouched"), "DAGSTER_HOME": str(tmp_path / "dagster")}
    (tmp_path / "dagster").mkdir()
    (tmp_path / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    dagster = Path(sys.executable).parent / "dagster"
    result = subprocess.run([str(dagster), "definitions", "validate", "-w", "workspace.yaml"], cwd=REPO_ROOT,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    for domain in ("geography", "crm", "sales", "supply", "finance", "marketing"):
        assert f"Validation successful for code location {domain}" in result.stdout + result.stderr
    # No database, catalog or file was opened or created while the locations loaded.
    assert not (tmp_path / "untouched").exists()


def test_a_domain_is_the_platform_component_and_a_few_lines_of_python(registry):
    for name, domain in registry.domains.items():
        definitions = (domain.working_directory / Path(*domain.module.split("."))).with_suffix(".py")
        lines = definitions.read_text().strip().splitlines()
        assert len(lines) <= 10 and "load_from_defs_folder" in "".join(lines)
        assert component_config(domain.folder) == {"domain": name, "manifests": "products",
                                                   "dbt_project": f"../../dbt_projects/{name}"}


def test_output_ports_carry_the_manifest(registry, graphs):
    for domain, graph in graphs.items():
        keys = port_keys(registry, domain)
        assert keys <= set(graph.materializable_asset_keys)
        for manifest in registry.products_of(domain):
            for port in manifest.output_ports:
                node = graph.get(AssetKey([domain, manifest.product, port.name]))
                assert node.group_name == domain
                assert set(node.owners) == {f"team:{manifest.owner.team}", manifest.owner.email}
                assert node.kinds == {"iceberg"}
                assert node.tags["mesh/archetype"] == manifest.archetype and node.tags["mesh/visibility"] == port.visibility
                schema = node.metadata["dagster/column_schema"]
                assert [(c.name, c.type, c.description) for c in schema.columns] == \
                       [(c.name, c.type, c.description) for c in port.contract.columns]
                assert node.metadata["mesh/product_id"] == manifest.id
                assert node.metadata["mesh/contract_version"] == manifest.version
                assert node.metadata["dagster/table_name"] == f"mesh.{domain}.{manifest.product}__{port.name}"
                checks = {k.name: graph.get_check_spec(k).blocking for k in node.check_keys}
                declared_slos = {f"slo_{name}" for name, slo in port.slos if slo is not None}
                runtime = {c.name: c.blocking for c in checks_of(manifest, port)}
                assert {"contract_schema", "primary_key", "not_null_columns", "row_count"} <= set(runtime)
                assert checks == {"static_policies": True, **runtime,
                                  **{name: False for name in declared_slos}}  # policies block, SLOs report
                assert node.tags["mesh/compliance"] == "compliant"
                assert "every static policy passes" in node.metadata["mesh/policy_findings"].value
                assert node.freshness_policy is not None


def test_internal_assets_have_their_own_prefix_and_group(registry, graphs):
    for domain, graph in graphs.items():
        internal = set(graph.materializable_asset_keys) - port_keys(registry, domain)
        assert internal, f"{domain} has no dbt models"
        for key in internal:
            assert key.path[:2] == [domain, "internal"]
            assert graph.get(key).group_name == f"{domain}_internal"
        models = {k.path[2] for k in internal if len(k.path) == 3}
        assert {p.dbt_model for m in registry.products_of(domain) for p in m.output_ports} <= models
    ingestion = {k for k in graphs["sales"].materializable_asset_keys if len(k.path) == 4}
    assert ingestion == {AssetKey(["sales", "internal", "order_db", "orders"]),
                         AssetKey(["sales", "internal", "order_db", "lineitem"])}


def test_cross_domain_deps_are_exactly_the_declared_input_ports(registry, graphs):
    for domain, graph in graphs.items():
        own = set(graph.materializable_asset_keys)
        used_from_others = {dep for key in own for dep in graph.get(key).parent_keys if dep.path[0] != domain}
        declared = {AssetKey(p.source.split(".")) for m in registry.products_of(domain) for p in m.input_ports if p.source}
        assert used_from_others == declared
        if domain in SOURCE_DOMAINS:
            assert not used_from_others
    returned_items_model = graphs["finance"].get(AssetKey(["finance", "internal", "returned_items"]))
    assert AssetKey(["crm", "customers", "customer_contacts"]) in returned_items_model.parent_keys


def test_no_internal_asset_is_used_across_domains(registry, graphs):
    every_port = {k for d in graphs for k in port_keys(registry, d)}
    for domain, graph in graphs.items():
        for key in graph.materializable_asset_keys:
            for dep in graph.get(key).parent_keys:
                if dep.path[0] != domain:
                    assert dep in every_port and dep.path[1] != "internal", f"{key} uses {dep} of another domain"


def test_locations_loaded_with_the_library_computed_once_carry_dagsters_own(registry, prepared_dbt):
    """The component library each location carries for the UI, computed once per process (dagster_fixes), is
    what Dagster computes for each location itself."""
    from dagster.components.core.load_defs import PLUGIN_COMPONENT_TYPES_JSON_METADATA_KEY as LIBRARY

    from platform_resources import dagster_fixes

    own = dagster_fixes._library_defs(None).metadata[LIBRARY]
    assert "platform_resources" in [namespace["name"] for namespace in own.value]  # the platform's component
    dagster_fixes.component_library_once()
    for domain in ("geography", "finance"):
        assert load_definitions(registry.domains[domain]).metadata[LIBRARY] == own, domain
