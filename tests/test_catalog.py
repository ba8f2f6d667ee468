"""Discovery (catalog search, discovery documents and their JSON schema) and the static mesh map."""

import argparse
import contextlib
import copy
import io
import json
import os
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pytest
from jsonschema import Draft202012Validator
from test_registry import make_workspace, product

from platform_resources import catalog, mesh_map, metrics, ports
from platform_resources.registry import load_registry

REPO_ROOT = Path(__file__).resolve().parent.parent
PII_PRODUCTS = ["crm.customers", "finance.returned_items", "finance.top_supplier",
                "marketing.large_volume_customers", "supply.suppliers"]


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def ids(documents: list[dict]) -> list[str]:
    return [d["id"] for d in documents]


def validator() -> Draft202012Validator:
    return Draft202012Validator(catalog.discovery_schema(), format_checker=Draft202012Validator.FORMAT_CHECKER)


# --- search ----------------------------------------------------------------------------------------

def test_search_by_text_is_case_insensitive_over_ids_docs_ports_and_columns(registry, fresh_home):
    assert "finance.returned_items" in ids(catalog.search(registry, "returned"))
    assert ids(catalog.search(registry, "RETURNED Items")) == ["finance.returned_items"]  # every word, anywhere
    assert ids(catalog.search(registry, "c_mktsegment")) == ["crm.customers"]            # a column name
    assert ids(catalog.search(registry, "contact details of each supplier")) == ["supply.suppliers"]  # a port doc
    assert catalog.search(registry, "no such thing anywhere") == []
    assert ids(catalog.search(registry)) == sorted(registry.products)


def test_search_by_domain_owner_and_tag(registry, fresh_home):
    assert ids(catalog.search(registry, domain="supply")) == sorted(m.id for m in registry.products_of("supply"))
    assert ids(catalog.search(registry, owner="crm")) == ["crm.customers"]
    finance = sorted(m.id for m in registry.products.values() if m.owner.email == "finance-data@example.com")
    assert len(finance) == 6
    assert ids(catalog.search(registry, owner="Finance-Data@example.com")) == finance
    assert ids(catalog.search(registry, tag="tpch_q10")) == ["finance.returned_items"]
    assert ids(catalog.search(registry, tag="supplier")) == sorted(
        m.id for m in registry.products.values() if "supplier" in m.tags)
    assert ids(catalog.search(registry, "revenue", domain="finance", tag="supplier")) == [
        "finance.local_supplier_volume", "finance.top_supplier"]


def test_search_by_classification_finds_every_product_with_personal_data(registry, fresh_home):
    from_manifests = sorted(m.id for m in registry.products.values()
                            if any(c.classification == "pii" for p in m.output_ports for c in p.contract.columns))
    assert from_manifests == PII_PRODUCTS
    assert ids(catalog.search(registry, classification="pii")) == PII_PRODUCTS
    assert ids(catalog.search(registry, classification="confidential")) == [
        "crm.customers", "finance.returned_items", "supply.suppliers"]


def test_polysemes_are_found_by_tag_or_query_and_reach_products_serving_their_key(registry, fresh_home):
    expected = ["crm.customers", "finance.returned_items", "marketing.large_volume_customers"]
    assert ids(catalog.search(registry, tag="polyseme_customer")) == expected
    assert ids(catalog.search(registry, "polyseme_customer")) == expected
    by_id = {d["id"]: d for d in catalog.search(registry, tag="polyseme_customer")}
    assert by_id["crm.customers"]["polysemes"] == [{"name": "customer", "tag": "polyseme_customer", "keys": ["c_custkey"],
                                                    "defined_by": ["crm.customers"], "via": "tag"}]
    assert [(p["name"], p["via"]) for p in by_id["finance.returned_items"]["polysemes"]] == [("customer", "key")]
    assert ids(catalog.search(registry, tag="polyseme_nation")) == ["geography.nations"]


# --- documents -------------------------------------------------------------------------------------

def test_discovery_document_of_returned_items(registry, fresh_home):
    doc = catalog.discovery_document(registry, "finance.returned_items")
    assert doc["owner"] == {"team": "finance", "email": "finance-data@example.com"}
    assert (doc["domain"], doc["archetype"], doc["status"], doc["version"]) == ("finance", "aggregate", "active", "1.0.0")
    assert doc["upstream_products"] == ["crm.customers", "geography.nations", "sales.orders"]
    assert doc["downstream_products"] == []
    assert doc["manifest_file"] == "mesh_code_locations/finance/products/returned_items.yaml"
    assert doc["problems"] == []
    [port] = doc["ports"]
    assert port["id"] == "finance.returned_items.returned_items" and port["visibility"] == "restricted"
    assert port["primary_key"] == ["c_custkey"] and port["actual_time"] == "snapshot"
    assert {c["name"]: c["classification"] for c in port["schema"]}["c_phone"] == "pii"
    assert port["slos"] == {"freshness": {"max_age": "26h"}}
    assert "--as <your.product>" in port["how_to_read"]["mesh"]
    contacts = {p["from"]: p["access_request"] for p in doc["input_ports"]}
    assert contacts["crm.customers.customer_contacts"].startswith("Collections contact")

    customers = catalog.discovery_document(registry, "crm.customers")
    assert customers["downstream_products"] == ["finance.local_supplier_volume", "finance.returned_items",
                                                "finance.shipping_priority", "marketing.customer_distribution",
                                                "marketing.large_volume_customers"]
    by_port = {p["name"]: p for p in customers["ports"]}
    assert by_port["customer_contacts"]["consumers"] == ["finance.returned_items", "marketing.large_volume_customers"]
    assert set(by_port["customers"]["slos"]) == {"freshness", "volume", "completeness"}
    with pytest.raises(LookupError, match="unknown data product crm.nope"):
        catalog.discovery_document(registry, "crm.nope")


def test_unpublished_ports_have_no_processing_time_and_unknown_slo_status(registry, fresh_home):
    for doc in catalog.search(registry):
        for port in doc["ports"]:
            assert port["last_processing_time"] is None, port["id"]
            assert port["metrics"] is None
            assert port["slo_status"]["overall"] == "unknown" and port["slo_status"]["results"] == []


def test_published_port_shows_processing_time_metrics_and_slo_status(registry, fresh_home):
    port_id = "geography.nations.nations"
    published = ports.publish(port_id, pa.table({"n_nationkey": pa.array([0, 1], pa.int32()), "n_name": ["A", "B"]}))
    metrics.record(port_id, published.processing_time, {"metrics": {"row_count": 2}, "slos": [
        {"name": "slo_volume", "passed": False, "severity": "error", "summary": "2 rows < minimum 25"}]})
    [port] = catalog.discovery_document(registry, "geography.nations")["ports"]
    assert port["last_processing_time"] == published.processing_time.isoformat()
    assert port["metrics"] == {"row_count": 2}
    status = port["slo_status"]
    assert status["overall"] == "breached"
    assert {r["name"]: (r["passed"], r["evaluated"]) for r in status["results"]} == {
        "freshness": (True, "now"), "volume": (False, "publish")}

    # warnings only -> warning; a record with missing keys is still read
    metrics.record(port_id, datetime.now(timezone.utc), {"slos": [{"name": "slo_completeness", "passed": False}]})
    [port] = catalog.discovery_document(registry, "geography.nations")["ports"]
    assert port["slo_status"]["overall"] == "warning" and port["metrics"] is None
    validator().validate(json.loads(json.dumps(catalog.search(registry, domain="geography"))))


def test_how_to_read_snippets_work_as_written(registry, fresh_home):
    port_id = "geography.nations.nations"
    ports.publish(port_id, pa.table({"n_nationkey": pa.array([7], pa.int32()), "n_name": ["PERU_READABLE"]}))
    read = catalog.discovery_document(registry, "geography.nations")["ports"][0]["how_to_read"]
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(read["python"], {})  # noqa: S102 - the snippet the catalog hands out must run as written
    assert "PERU_READABLE" in output.getvalue()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    shell = subprocess.run(["bash", "-c", f"set -o pipefail; {read['duckdb_sql']}"], capture_output=True, text=True, check=False,
                           env=env, cwd=REPO_ROOT, timeout=120)
    assert shell.returncode == 0, shell.stderr
    assert "PERU_READABLE" in shell.stdout


# --- schema ----------------------------------------------------------------------------------------

def test_every_document_validates_against_the_shipped_schema(registry, fresh_home):
    schema = catalog.discovery_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$id"] == catalog.SCHEMA_ID == "https://mesh.example.com/spec/discovery-document-1.0.0.json"
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    documents = json.loads(json.dumps(catalog.search(registry)))
    assert len(documents) == len(registry.products)
    validator().validate(documents)


@pytest.mark.parametrize("breakage", ["no owner", "bad visibility", "bad status", "extra field", "not a list"])
def test_a_broken_document_fails_validation(registry, fresh_home, breakage):
    document = copy.deepcopy(catalog.discovery_document(registry, "crm.customers"))
    if breakage == "no owner":
        del document["owner"]
    elif breakage == "bad visibility":
        document["ports"][0]["visibility"] = "everyone"
    elif breakage == "bad status":
        document["ports"][0]["slo_status"]["overall"] = "fine"
    elif breakage == "extra field":
        document["ports"][0]["schema"][0]["colour"] = "blue"
    payload = document if breakage == "not a list" else [document]
    assert list(validator().iter_errors(payload)), breakage


# --- the command -----------------------------------------------------------------------------------

def run_command(module, argv: list[str]) -> tuple[int, str]:
    root = argparse.ArgumentParser(prog="mesh")
    module.add_command(root.add_subparsers(dest="command", required=True), "help")
    args = root.parse_args(argv)
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        code = args.handler(args)
    return code, output.getvalue()


def test_catalog_command_prints_text_json_or_no_match(fresh_home):
    code, text = run_command(catalog, ["catalog", "returned", "--domain", "finance"])
    assert code == 0
    assert "finance.returned_items - Returned items" in text and "owner:      finance <finance-data@example.com>" in text
    assert "port finance.returned_items.returned_items  [restricted]" in text
    assert "last processing time: never published" in text and "mesh read finance.returned_items.returned_items" in text

    code, text = run_command(catalog, ["catalog", "--classification", "pii", "--json"])
    assert code == 0
    documents = json.loads(text)
    assert ids(documents) == PII_PRODUCTS
    validator().validate(documents)

    assert run_command(catalog, ["catalog", "zzz-nothing", "--owner", "nobody"]) == (0, "no products match\n")
    code, text = run_command(catalog, ["catalog", "zzz-nothing", "--json"])
    assert (code, json.loads(text)) == (0, [])


# --- the mesh map ----------------------------------------------------------------------------------

def test_map_of_the_sample_mesh_shows_every_domain_product_and_cross_domain_edge(registry, fresh_home):
    page = mesh_map.render_map(registry)
    assert page.startswith("<!DOCTYPE html>")
    for domain in registry.domains:
        assert f'id="domain-{domain}"' in page
    for product_id, manifest in registry.products.items():
        assert f'id="product-{product_id}"' in page
        for port in manifest.output_ports:
            assert port.name in page
    pairs = {(source.rsplit(".", 1)[0], m.id) for m in registry.products.values() for p in m.input_ports
             if (source := p.source) and source.split(".")[0] != m.domain}
    assert len(pairs) == 17
    drawn = set(re.findall(r'<path class="edge" data-from="([^"]+)" data-to="([^"]+)"', page))
    assert drawn == pairs and page.count('class="edge"') == len(pairs)
    assert f"{len(pairs)} cross-domain dependencies" in page
    assert "? SLO unknown" in page and "\u2713 policy ok" in page  # status in words, not colour alone


def test_map_is_self_contained_and_links_each_product_and_port_to_its_dagster_page(registry, fresh_home,
                                                                                  monkeypatch):
    monkeypatch.setenv("MESH_DAGSTER_URL", "https://dagster.example.com/mesh/")
    page = mesh_map.render_map(registry)
    assert "<script" not in page.lower()
    assert not re.search(r"""src\s*=|@import|url\((?!#)""", page)  # nothing is loaded from anywhere
    links = re.findall(r'href="([^"]*)"', page)
    assert all(link.startswith("https://dagster.example.com/mesh/assets/") for link in links)
    assert not re.search(r"https?://", re.sub(r'href="[^"]*"', "", page))
    expected = {f"https://dagster.example.com/mesh/assets/{m.domain}/{m.product}" for m in registry.products.values()}
    expected |= {f"https://dagster.example.com/mesh/assets/{m.domain}/{m.product}/{p.name}"
                 for m in registry.products.values() for p in m.output_ports}
    assert set(links) == expected


def test_map_escapes_text_and_shows_problems(tmp_path, fresh_home):
    evil = product("shop.orders")
    evil["description"] = "Orders <script>alert('x')</script> & more"
    evil["name"] = "<b>Orders</b>"
    registry = load_registry(make_workspace(tmp_path, {
        "shop/orders.yaml": evil,
        "shop/refunds.yaml": product("shop.refunds", inputs=["shop.orders.main"]),
        "bi/revenue.yaml": product("bi.revenue", inputs=["shop.orders.main", "shop.nope.main"]),
        "bi/broken.yaml": "id: [unclosed\n",
    }), published=False)
    page = mesh_map.render_map(registry)
    assert "<script" not in page and "<b>Orders</b>" not in page
    assert "Orders &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in page
    assert "&lt;b&gt;Orders&lt;/b&gt;" in page
    assert page.count('class="edge"') == 1                 # shop.orders -> bi.revenue
    assert page.count('class="edge-internal"') == 1        # shop.orders -> shop.refunds, same domain
    assert "\u2717 policy: 1 error" in page and "unknown product shop.nope" in page
    assert "broken manifest" in page and "bi.broken" in page
    # the documents of this registry are escaped nowhere (JSON) but validate
    validator().validate(json.loads(json.dumps(catalog.search(registry))))


def test_map_command_writes_the_page(tmp_path, fresh_home):
    out = tmp_path / "maps" / "mesh.html"
    code, text = run_command(mesh_map, ["map", "--out", str(out)])
    assert code == 0 and text.strip() == str(out)
    assert "crm.customers" in out.read_text()
    code, text = run_command(mesh_map, ["map"])
    assert Path(text.strip()) == fresh_home.resolve() / "mesh-map.html" and Path(text.strip()).exists()


def test_map_of_domains_reading_each_other_in_a_cycle_still_renders(tmp_path, fresh_home):
    registry = load_registry(make_workspace(tmp_path, {
        "a/x.yaml": product("a.x", inputs=["b.y.main"]), "a/w.yaml": product("a.w"),
        "b/y.yaml": product("b.y"), "b/z.yaml": product("b.z", inputs=["a.w.main"]),
    }), published=False)
    page = mesh_map.render_map(registry)
    assert "closes a cycle of domains that wait for each other" in page  # a finding (MESH-REG-001) on the map
    assert page.count('class="edge"') == 2 and all(f'id="product-{p}"' in page for p in registry.products)
