"""Registry: loads every domain of a workspace, resolves input ports, and isolates broken manifests."""


import pytest
from dagster import AssetKey
from workspaces import copy_sample_mesh, make_workspace, product

from platform_resources.registry import RegistryError, load_registry


def test_resolves_ports_consumers_and_domain_order(tmp_path):
    registry = load_registry(make_workspace(tmp_path, {
        "shop/orders.yaml": product("shop.orders", ports=("orders", "lines")),
        "geo/nations.yaml": product("geo.nations"),
        "bi/revenue.yaml": product("bi.revenue", inputs=["shop.orders.lines", "geo.nations.main"]),
    }), published=False)
    assert not registry.problems and not registry.broken
    assert sorted(registry.products) == ["bi.revenue", "geo.nations", "shop.orders"]
    manifest, port = registry.port("shop.orders.lines")
    assert (manifest.id, port.name) == ("shop.orders", "lines")
    assert registry.consumers("shop.orders.lines") == ["bi.revenue"]
    assert registry.consumers("shop.orders.orders") == []
    assert registry.upstream_products("bi.revenue") == {"shop.orders", "geo.nations"}
    order = registry.domain_order()
    assert order.index("bi") > order.index("shop") and order.index("bi") > order.index("geo")
    with pytest.raises(RegistryError, match="unknown output port shop.orders.nope"):
        registry.port("shop.orders.nope")


def test_unknown_product_and_unknown_port_are_reported_on_the_consumer(tmp_path):
    registry = load_registry(make_workspace(tmp_path, {
        "shop/orders.yaml": product("shop.orders"),
        "bi/a.yaml": product("bi.a", inputs=["shop.ordrs.main"]),
        "bi/b.yaml": product("bi.b", inputs=["shop.orders.lines"]),
    }), published=False)
    assert "unknown product shop.ordrs; check the id" in registry.problems["bi.a"][0]
    assert "shop.orders has no output port 'lines'; its ports are: main" in registry.problems["bi.b"][0]
    assert "shop.orders" not in registry.problems


def test_cycles_are_rejected_on_every_product_in_them(tmp_path):
    registry = load_registry(make_workspace(tmp_path, {
        "a/x.yaml": product("a.x", inputs=["b.y.main"]),
        "b/y.yaml": product("b.y", inputs=["a.x.main"]),
        "c/z.yaml": product("c.z"),
    }), published=False)
    for product_id in ("a.x", "b.y"):
        assert any("form a cycle" in p for p in registry.problems[product_id])
    assert "c.z" not in registry.problems
    assert sorted(registry.domain_order()) == ["a", "b", "c"]  # the cyclic products cannot publish: no run waits


def test_duplicate_ids_are_rejected(tmp_path):
    registry = load_registry(make_workspace(tmp_path, {
        "shop/orders.yaml": product("shop.orders"),
        "shop/orders_again.yaml": product("shop.orders"),
        "bi/r.yaml": product("bi.r", inputs=["shop.orders.main"]),
    }), published=False)
    assert "shop.orders" not in registry.products
    assert "declared by several manifests" in registry.problems["shop.orders"][0]
    assert "cannot be resolved" in registry.problems["bi.r"][0]


def test_a_broken_manifest_only_affects_its_consumers(tmp_path):
    registry = load_registry(make_workspace(tmp_path, {
        "shop/orders.yaml": "id: shop.orders\nname: [unclosed\n",
        "shop/returns.yaml": product("shop.returns"),
        "geo/nations.yaml": product("geo.nations"),
        "bi/revenue.yaml": product("bi.revenue", inputs=["shop.orders.main"]),
        "bi/atlas.yaml": product("bi.atlas", inputs=["geo.nations.main", "shop.returns.main"]),
    }), published=False)
    assert "shop.orders" in registry.broken
    assert sorted(registry.products) == ["bi.atlas", "bi.revenue", "geo.nations", "shop.returns"]
    problem = registry.problems["bi.revenue"][0]
    assert "the manifest of shop.orders is broken" in problem and "orders.yaml:" in problem
    assert set(registry.problems) == {"bi.revenue"}


def test_a_manifest_in_another_domains_folder_belongs_to_that_folder_and_fails_policy_mesh_id_001(tmp_path):
    from platform_resources.governance.engine import evaluate

    registry = load_registry(make_workspace(tmp_path, {"shop/orders.yaml": product("geo.orders")}), published=False)
    assert registry.locations["geo.orders"] == "shop" and registry.products_of("shop")[0].id == "geo.orders"
    assert registry.domain_order() == ["shop"]  # run by its code location, not by the domain its id names
    finding = next(f for f in evaluate(registry).findings if f.policy == "MESH-ID-001")
    assert finding.blocking and (finding.domain, finding.line) == ("shop", 1)
    assert "code location 'shop' defines it" in finding.message and "start the id with 'shop.'" in finding.message


def test_the_sample_mesh_resolves_cleanly():
    registry = load_registry()
    assert not registry.problems and not registry.broken
    assert list(registry.domains) == ["geography", "crm", "sales", "supply", "finance", "marketing"]
    order = registry.domain_order()
    for consumer in ("finance", "marketing"):
        assert all(order.index(consumer) > order.index(source) for source in ("geography", "crm", "sales", "supply"))
    assert registry.consumers("crm.customers.customer_contacts") == ["finance.returned_items",
                                                                     "marketing.large_volume_customers"]


def test_other_domains_load_when_one_domains_manifest_is_broken(tmp_path, prepared_dbt):
    """The sample mesh with crm's manifest broken: finance and geography still build their Definitions."""
    from platform_resources.build import build_domain

    workspace = copy_sample_mesh(tmp_path)
    (tmp_path / "mesh_code_locations/crm/products/customers.yaml").write_text("id: crm.customers\nowner: [\n")
    registry = load_registry(workspace, published=False)

    geography = build_domain(registry.domains["geography"], registry)
    assert geography.resolve_asset_graph().get(AssetKey(["geography", "nations", "nations"]))
    finance = build_domain(registry.domains["finance"], registry)
    graph = finance.resolve_asset_graph()
    returned = graph.get(AssetKey(["finance", "returned_items", "returned_items"]))
    assert "crm.customers is broken" in returned.metadata["mesh/policy_findings"].value
    assert returned.tags["mesh/compliance"] == "blocked" and "MESH-REG-001" in returned.metadata["mesh/blocked"]
    healthy = graph.get(AssetKey(["finance", "top_supplier", "top_supplier"]))
    assert "mesh/blocked" not in healthy.metadata and healthy.tags["mesh/compliance"] == "compliant"


def test_a_broken_manifest_shows_in_its_code_location_and_the_domains_other_products_still_build(tmp_path, prepared_dbt):
    from platform_resources.build import build_domain

    workspace = copy_sample_mesh(tmp_path)
    (tmp_path / "mesh_code_locations/finance/products/top_supplier.yaml").write_text("id: finance.top_supplier\nowner: [\n")
    registry = load_registry(workspace, published=False)
    graph = build_domain(registry.domains["finance"], registry).resolve_asset_graph()
    broken = graph.get(AssetKey(["finance", "top_supplier"]))
    assert not broken.is_materializable and broken.tags["mesh/compliance"] == "blocked"
    assert "**Broken manifest**" in broken.description and "top_supplier.yaml:3" in broken.description
    assert "not valid YAML" in broken.description
    assert graph.get(AssetKey(["finance", "pricing_summary", "pricing_summary"])).tags["mesh/compliance"] == "compliant"
    assert AssetKey(["finance", "top_supplier", "top_supplier"]) not in graph.get_all_asset_keys()
