"""`mesh report`: compliance per domain and product, from the real registry, policy engine and platform records."""

import re
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
import yaml
from workspaces import make_workspace, product

from platform_resources import access_log, metrics, ports
from platform_resources.governance.engine import evaluate
from platform_resources.governance.policy import GLOBAL
from platform_resources.governance.report import NOT_RUN_BECAUSE, build_report, to_html, to_markdown
from platform_resources.registry import load_registry
from platform_resources.slo import SloResult, as_record

TODAY = date(2030, 1, 1)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    orders = product("shop.orders", ports=("orders", "lines"), fresh=True)
    del orders["output_ports"][0]["contract"]["columns"][0]["classification"]  # MESH-CLS-001, an error
    catalog = product("shop.catalog", fresh=True)
    catalog["description"] = ""  # MESH-DOC-001, a warning: waived until after TODAY
    catalog["governance"] = {"waivers": [{"policy": "MESH-DOC-001", "reason": "docs <next> sprint",
                                          "expires": "2030-02-01"}]}
    path = make_workspace(tmp_path, {
        "shop/orders.yaml": orders,
        "shop/catalog.yaml": catalog,
        "geo/nations.yaml": product("geo.nations"),  # a public port without freshness: an unwaived warning
        "bi/revenue.yaml": product("bi.revenue", inputs=["shop.orders.lines", "geo.nations.main"], fresh=True),
    })
    (tmp_path / "governance").mkdir()
    (tmp_path / "governance" / "teams.yaml").write_text(yaml.safe_dump({"teams": [
        {"name": team, "email": f"{team}@example.com"} for team in ("shop", "geo", "bi")]}))
    return path


@pytest.fixture
def data(workspace: Path, fresh_home: Path) -> dict:
    port_id = "shop.catalog.main"
    published = ports.publish(port_id, pa.table({"id": pa.array([1, 2, 3], pa.int64())}))
    measured = {"row_count": 3, "completeness": {"id": 1.0}}
    metrics.record(port_id, published.processing_time,
                   {**as_record(measured, [SloResult("slo_volume", False, "warning", "3 rows < minimum 10")])})
    access_log.record("bi.revenue", "shop.orders.lines", True, published.processing_time, "read")
    access_log.record("geo.nations", "shop.orders.lines", False, None, "not approved")
    access_log.record("bi.revenue", "shop.orders.lines", True, published.processing_time, "read")
    registry = load_registry(workspace, published=False)
    report = evaluate(registry, today=TODAY)
    result = build_report(registry, report, TODAY, now=published.processing_time + timedelta(hours=1))
    result["_published"] = published
    return result


def test_failed_waived_and_blocked_products(data):
    shop = data["domains"]["shop"]["products"]
    orders, catalog = shop["shop.orders"], shop["shop.catalog"]
    assert orders["compliance"] == "blocked" and "MESH-CLS-001" in orders["blocked_reason"]
    failed = orders["failed"][0]
    assert (failed["policy"], failed["severity"]) == ("MESH-CLS-001", "error")
    assert failed["location"].startswith("locations/shop/products/orders.yaml:")
    assert "MESH-CLS-001" not in {p["id"] for p in orders["passed"]} and "MESH-OWN-001" in {p["id"] for p in orders["passed"]}

    assert catalog["compliance"] == "compliant" and not catalog["failed"]
    assert [(w["policy"], w["reason"], w["until"]) for w in catalog["waived"]] == [
        ("MESH-DOC-001", "docs <next> sprint", "2030-02-01")]
    assert "MESH-DOC-001" not in {p["id"] for p in catalog["passed"]}

    revenue = data["domains"]["bi"]["products"]["bi.revenue"]
    assert revenue["compliance"] == "blocked" and "upstream product shop.orders" in revenue["blocked_reason"]
    assert data["domains"]["geo"]["products"]["geo.nations"]["compliance"] == "warnings"
    assert data["totals"] == {"domains": 3, "products": 4, "compliant": 1, "warnings": 1, "blocked": 2}
    assert data["domains"]["shop"]["summary"] == {"products": 2, "compliant": 1, "warnings": 0, "blocked": 1}


def test_ports_last_publish_slos_consumers_and_reads(data):
    lines = data["domains"]["shop"]["products"]["shop.orders"]["ports"]["lines"]
    assert lines["last_publish"] is None
    assert lines["consumers"] == [{"id": "bi.revenue", "blocked": True}]
    assert lines["reads"] == {"allowed": 2, "denied": 1, "last_denied": "geo.nations", "last_denied_reason": "not approved"}
    assert "MESH-DATA-001" in lines["runtime_checks"]

    main = data["domains"]["shop"]["products"]["shop.catalog"]["ports"]["main"]
    published = data["_published"]
    assert main["last_publish"] == {"processing_time": published.processing_time.isoformat(),
                                    "snapshot_id": published.snapshot_id, "rows": 3}
    volume = next(s for s in main["slos"] if s["name"] == "volume")
    assert (volume["passed"], volume["severity"]) == (False, "warning")
    freshness = next(s for s in main["slos"] if s["name"] == "freshness")
    assert (freshness["passed"], freshness["evaluated"]) == (True, "now")  # 1 h after the publish, max_age 26h
    assert main["slo_status"] == "warning"


def test_markdown(data):
    text = to_markdown(data)
    assert "| shop | 2 | 1 | 0 | 1 |" in text
    assert "### shop.orders: blocked" in text and "**Blocked** (may not publish): MESH-CLS-001" in text
    assert "| MESH-CLS-001 Columns classified | error |" in text
    assert "### shop.catalog: compliant" in text
    assert "| MESH-DOC-001 Descriptions |" in text and "| docs \\<next> sprint | 2030-02-01 |" in text
    assert "### geo.nations: with warnings" in text and "Owner shop \\<shop@example.com>, status active" in text
    assert "[In Dagster](http://localhost:3000/assets/shop/orders)." in text
    assert "| [shop.orders.lines](http://localhost:3000/assets/shop/orders/lines) | public | never published | - | bi.revenue (blocked) | " \
           "2 allowed, 1 denied (last denied: geo.nations) |" in text
    assert f"snapshot {data['_published'].snapshot_id}, 3 rows" in text and "freshness (now) passed; volume breached (warning)" in text
    assert "upstream product shop.orders is blocked" in text


def test_html_is_escaped_and_self_contained(data):
    page = to_html(data)
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    # Self-contained: no script, nothing loaded; the only links are to the products' and ports' Dagster pages.
    assert "<script" not in page and not re.search(r"src=|@import|url\(", page)
    links = set(re.findall(r'href="(https?://[^"]+)"', page))
    assert links and re.sub(r'href="https?://[^"]+"', "", page).count("http") == 0
    assert "http://localhost:3000/assets/shop/orders" in links and "http://localhost:3000/assets/shop/orders/lines" in links
    assert "<td>shop</td>" not in page and '<a href="#domain-shop">shop</a></td><td>2</td><td>1</td><td>0</td><td>1</td>' in page
    assert "docs &lt;next&gt; sprint" in page and "docs <next>" not in page
    assert "&lt;shop@example.com&gt;" in page
    assert '<span class="badge blocked">blocked</span>' in page and "with warnings" in page
    assert "MESH-CLS-001 Columns classified" in page and "2030-02-01" in page
    assert "never published" in page and "2 allowed, 1 denied (last denied: geo.nations)" in page
    assert "bi.revenue <span class=\"badge blocked\">blocked</span>" in page


def test_sample_mesh_is_all_compliant(fresh_home):
    registry = load_registry()
    data = build_report(registry, evaluate(registry), date.today())  # no asset graphs, no base revision
    assert data["totals"] == {"domains": 6, "products": 14, "compliant": 14, "warnings": 0, "blocked": 0}
    products = [p for d in data["domains"].values() for p in d["products"].values()]
    assert all(p["not_run"] == [
        {"id": "MESH-ACC-002", "title": GLOBAL["MESH-ACC-002"].title, "reason": NOT_RUN_BECAUSE["asset_graph"]},
        {"id": "MESH-DBT-001", "title": GLOBAL["MESH-DBT-001"].title, "reason": NOT_RUN_BECAUSE["asset_graph"]},
        {"id": "MESH-ACC-003", "title": GLOBAL["MESH-ACC-003"].title, "reason": NOT_RUN_BECAUSE["asset_graph"]},
        {"id": "MESH-VER-001", "title": GLOBAL["MESH-VER-001"].title, "reason": NOT_RUN_BECAUSE["base"]}]
        for p in products)
    assert not any(passed["id"] in ("MESH-ACC-002", "MESH-ACC-003", "MESH-DBT-001", "MESH-VER-001") for p in products for passed in p["passed"])
    assert all(port["last_publish"] is None for p in products for port in p["ports"].values())
    assert to_markdown(data).count("never published") == sum(len(p["ports"]) for p in products)


def test_cli_writes_the_report(fresh_home, tmp_path, capsys):
    from platform_resources.cli import main

    out = tmp_path / "r.html"
    assert main(["report", "--manifests-only", "--output", str(out), "--format", "html"]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    printed = capsys.readouterr().out.splitlines()
    assert printed == [str(out), "6 domains, 14 products: 14 compliant, 0 with warnings, 0 blocked"]
    assert main(["report", "--manifests-only"]) == 0
    assert (fresh_home / "compliance-report.md").read_text().startswith("# Mesh compliance report")
