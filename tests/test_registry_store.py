"""Domains publish their manifests to the registry store; a registry sees the local folders plus the store."""

import pytest
import yaml
from workspaces import make_workspace, manifest_file, product

from platform_resources import registry_store
from platform_resources.registry import Domain, load_registry, publish_domains, read_workspace


@pytest.fixture
def published_shop(tmp_path, fresh_home):
    """Domain shop published from one checkout; the checkout of bi, elsewhere, holds only bi's folder."""
    shop = make_workspace(tmp_path / "shop_repo", {"shop/orders.yaml": product("shop.orders", ports=("lines",))})
    publish_domains(load_registry(shop, published=False))
    return make_workspace(tmp_path / "bi_repo", {"bi/revenue.yaml": product("bi.revenue", inputs=["shop.orders.lines"])})


def test_a_domain_sees_the_others_through_the_store_not_their_folders(published_shop):
    registry = load_registry(published_shop)
    assert not registry.problems and not registry.broken
    assert registry.domains["shop"] == Domain("shop")  # no folder, module or server: only what it published
    assert registry.location_of("shop.orders") == "shop" and registry.consumers("shop.orders.lines") == ["bi.revenue"]
    assert str(registry.files["shop.orders"]) == "locations/shop/products/orders.yaml"  # as in its own repository
    assert registry.products["shop.orders"].output_ports[0].contract.primary_key == ["id"]
    assert registry.domain_order() == ["shop", "bi"]


def test_without_the_store_the_input_is_unknown_with_a_clear_problem(published_shop):
    registry = load_registry(published_shop, published=False)
    [problem] = registry.problems["bi.revenue"]
    assert "unknown product shop.orders" in problem


def test_the_local_folder_wins_over_what_the_domain_published(tmp_path, published_shop):
    shop = tmp_path / "shop_repo" / "workspace.yaml"
    path = manifest_file(tmp_path / "shop_repo", "shop/orders.yaml")
    path.write_text(yaml.safe_dump(product("shop.orders", ports=("lines", "returns")), sort_keys=False))
    assert [p.name for p in load_registry(shop).products["shop.orders"].output_ports] == ["lines", "returns"]
    # bi still sees the published version until shop publishes again.
    assert [p.name for p in load_registry(published_shop).products["shop.orders"].output_ports] == ["lines"]
    publish_domains(load_registry(shop))
    assert [p.name for p in load_registry(published_shop).products["shop.orders"].output_ports] == ["lines", "returns"]


def test_a_broken_manifest_is_published_with_its_errors_and_its_consumers_see_why(tmp_path, published_shop):
    path = manifest_file(tmp_path / "shop_repo", "shop/orders.yaml")
    path.write_text("id: shop.orders\nowner: [\n")
    publish_domains(load_registry(tmp_path / "shop_repo" / "workspace.yaml"))
    registry = load_registry(published_shop)
    [error] = registry.broken["shop.orders"].errors
    assert error.file == str(path) and error.line == 3 and "not valid YAML" in error.problem
    assert "the manifest of shop.orders is broken" in registry.problems["bi.revenue"][0]


def test_a_domain_cannot_publish_a_product_id_another_domain_published(tmp_path, published_shop):
    thief = make_workspace(tmp_path / "thief_repo", {"thief/orders.yaml": product("shop.orders")})
    with pytest.raises(registry_store.RegistryStoreError, match="shop.orders: already published by shop"):
        publish_domains(load_registry(thief, published=False))
    assert [e.domain for e in registry_store.published()] == ["shop"]  # nothing of the refused publish stayed


def test_a_domain_that_stops_declaring_a_product_removes_it_from_the_mesh(tmp_path, published_shop):
    manifest_file(tmp_path / "shop_repo", "shop/orders.yaml").unlink()
    publish_domains(load_registry(tmp_path / "shop_repo" / "workspace.yaml"))
    assert "shop.orders" not in load_registry(published_shop).products


def test_reading_an_empty_store_creates_nothing(fresh_home):
    assert registry_store.published() == [] and not fresh_home.exists()


def test_every_kind_of_workspace_entry_is_a_domain(tmp_path):
    (tmp_path / "code" / "ops" / "ops_domain").mkdir(parents=True)
    (tmp_path / "code" / "ops" / "dg.toml").write_text('directory_type = "project"\n')
    (tmp_path / "scripts").mkdir()
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(yaml.safe_dump({"load_from": [
        {"python_module": {"module_name": "ops_domain.definitions", "location_name": "ops",
                           "working_directory": "code/ops"}},
        {"python_file": {"relative_path": "scripts/defs.py", "location_name": "adhoc"}},
        {"python_package": {"package_name": "ops_domain", "location_name": "ops_pkg", "working_directory": "code/ops"}},
        {"grpc_server": {"host": "finance-code", "port": 4000, "location_name": "finance"}},
    ]}))
    domains = read_workspace(workspace)
    assert domains["ops"].folder == tmp_path / "code" / "ops"  # the dg project, found from the module
    assert domains["ops"].manifests_folder == tmp_path / "code" / "ops" / "products"
    assert domains["ops"].working_directory == tmp_path / "code" / "ops"
    assert domains["ops_pkg"].folder == tmp_path / "code" / "ops"
    assert domains["adhoc"].folder == tmp_path / "scripts"
    assert domains["finance"] == Domain("finance", server="finance-code:4000") and not domains["finance"].is_local
