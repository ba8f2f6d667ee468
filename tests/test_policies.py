"""Static governance policies, through the real engine on real manifest files in a temporary workspace.

Every policy has a failing fixture (a clean mesh with one thing broken) and a passing one (a clean mesh, or one
that does the same thing the allowed way). Findings must name the manifest file and line to fix.
"""

from datetime import date
from pathlib import Path

import pytest
import yaml
from dagster import AssetKey, Definitions, asset
from workspaces import make_workspace, manifest_file, product

from platform_resources.governance.asset_graph import graph_of_assets, graph_of_definitions
from platform_resources.governance.engine import PolicyReport, evaluate
from platform_resources.governance.policy import Finding
from platform_resources.manifest import Manifest
from platform_resources.registry import load_registry

TODAY = date(2025, 6, 1)
TEAMS = ("shop", "bi", "geo")
SHOP, BI = "shop/orders.yaml", "bi/revenue.yaml"
PRODUCT_OF = {SHOP: "shop.orders", BI: "bi.revenue"}


# --- mesh helpers -------------------------------------------------------------------------------------------

def _two_partitionings(m: dict) -> None:
    """shop.orders' main port by month, a second port by day: one domain job cannot run both."""
    for name, by in (("main", "month"), ("daily", "day")):
        if name != "main":
            add_port(m[SHOP], name, "public")
        target = next(p for p in m[SHOP]["output_ports"] if p["name"] == name)
        target["contract"]["columns"].append({**column("day", "public", "date"), "nullable": False})
        target.update(actual_time="day", partitioning={"by": by, "start": "1995-01-01"}, freshness={"max_age": "26h"})


def clean(product_id: str, inputs: list[str] = (), ports: tuple[str, ...] = ("main",)) -> dict:
    """A product no policy objects to."""
    return product(product_id, inputs, ports, fresh=True)


def clean_mesh() -> dict[str, dict]:
    """shop.orders, and bi.revenue reading its public port."""
    return {SHOP: clean("shop.orders"), BI: clean("bi.revenue", ["shop.orders.main"])}


def port(manifest: dict, i: int = 0) -> dict:
    return manifest["output_ports"][i]


def columns(manifest: dict, i: int = 0) -> list[dict]:
    return port(manifest, i)["contract"]["columns"]


def column(name: str, classification: str = "internal", type: str = "varchar") -> dict:
    return {"name": name, "type": type, "description": f"The {name}.", "classification": classification}


def add_port(manifest: dict, name: str, visibility: str, *extra: dict, approved: tuple[str, ...] = ()) -> None:
    """A second output port (id plus `extra` columns); restricted ones may list approved consumers."""
    new = {"name": name, "description": "Another port.", "visibility": visibility, "actual_time": "snapshot",
           "contract": {"primary_key": ["id"], "columns": [column("id", "public", "bigint"), *extra]}}
    if approved:
        new["approved_access"] = [{"consumer": c, "reason": "Agreed with the owner."} for c in approved]
    manifest["output_ports"].append(new)


def read(manifest: dict, port_id: str, request: bool = False) -> None:
    """Make the product read another port, optionally with an access request."""
    inputs = manifest["input_ports"]
    inputs.append({"name": f"in_{len(inputs)}", "from": port_id})
    if request:
        inputs[-1]["access_request"] = {"reason": "Needed for revenue."}


def govern(manifest: dict, **governance) -> dict:
    manifest["governance"] = governance
    return manifest


def waiver(policy: str, expires: date = date(2025, 12, 31)) -> dict:
    return {"policy": policy, "reason": "Freshness comes with the new loader.", "expires": expires}


def local_policy(id: str, severity: str = "error", **rule) -> dict:
    return {"id": id, "title": f"Rule {id}", "rationale": "The domain wants it.", "severity": severity, **rule}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A workspace folder with the governance group's teams file."""
    teams = tmp_path / "governance" / "teams.yaml"
    teams.parent.mkdir()
    teams.write_text(yaml.safe_dump({"teams": [{"name": t, "email": f"{t}@example.com"} for t in TEAMS]}))
    return tmp_path


def run(root: Path, manifests: dict[str, dict | str], **kwargs) -> PolicyReport:
    return evaluate(load_registry(make_workspace(root, manifests), published=False), today=TODAY, **kwargs)


def found(report: PolicyReport, policy: str, product: str | None = None) -> list[Finding]:
    return [f for f in report.findings if f.policy == policy and product in (None, f.product)]


def line_with(root: Path, name: str, text: str) -> int:
    """The 1-based line of the manifest file that starts with `text`, after indentation (there must be one)."""
    lines = [i for i, line in enumerate(manifest_file(root, name).read_text().splitlines(), 1)
             if line.lstrip(" -").startswith(text)]
    assert len(lines) == 1, f"'{text}' is on lines {lines}"
    return lines[0]


# --- a clean mesh -----------------------------------------------------------------------------------------

def test_a_clean_mesh_has_no_findings(root):
    report = run(root, clean_mesh())
    assert report.findings == [] and report.blocked == {}
    assert {"MESH-OWN-001", "MESH-ID-001", "MESH-ACC-002"} <= {p.id for p in report.evaluated["bi.revenue"]}


def test_the_sample_mesh_has_no_findings():
    report = evaluate(load_registry())
    assert [f.as_text() for f in report.findings] == [] and report.blocked == {}


# --- every global policy: one thing wrong makes a finding --------------------------------------------------

def _pii_port_read_without_approval(m):
    add_port(m[SHOP], "contacts", "restricted", column("customer_email", "pii"))
    read(m[BI], "shop.orders.contacts", request=True)


def _internal_port_of_another_domain_read(m):
    add_port(m[SHOP], "staging", "internal")
    read(m[BI], "shop.orders.staging")


def _restricted_port_read_without_request(m):
    add_port(m[SHOP], "margins", "restricted", column("margin"), approved=("bi.revenue",))
    read(m[BI], "shop.orders.margins")


def _restricted_port_read_without_approval(m):
    add_port(m[SHOP], "margins", "restricted", column("margin"))
    read(m[BI], "shop.orders.margins", request=True)


VIOLATIONS = [  # (policy, product with the finding, severity, what breaks it, part of the message)
    ("MESH-OWN-001", "shop.orders", "error", lambda m: m[SHOP]["owner"].update(team="nobody"),
     "owner team 'nobody' is not a known team"),
    ("MESH-OWN-001", "shop.orders", "error", lambda m: m[SHOP]["owner"].pop("team"), "has no owner team"),
    ("MESH-OWN-001", "shop.orders", "error", lambda m: m[SHOP]["owner"].update(email="shop-at-example"),
     "is not an email address"),
    ("MESH-DOC-001", "shop.orders", "warning", lambda m: m[SHOP].update(description=" "),
     "product description has fewer than 1 characters"),
    ("MESH-DOC-001", "shop.orders", "warning", lambda m: port(m[SHOP]).update(description=""),
     "output port main has no description"),
    ("MESH-DOC-001", "shop.orders", "warning", lambda m: columns(m[SHOP])[0].pop("description"),
     "column main.id has no description"),
    ("MESH-ID-001", "bi.Revenue", "error", lambda m: m[BI].update(id="bi.Revenue"), "is not domain.product in snake"),
    ("MESH-ID-001", "shop.revenue", "error", lambda m: m[BI].update(id="shop.revenue"),
     "names domain 'shop' but the code location 'bi' defines it"),
    ("MESH-ID-001", "bi.revenue", "error", lambda m: port(m[BI]).update(name="Main"), "port name 'Main' is not snake"),
    ("MESH-CON-001", "shop.orders", "error", lambda m: port(m[SHOP])["contract"].update(primary_key=[]),
     "contract without a primary key"),
    ("MESH-CLS-001", "shop.orders", "error", lambda m: columns(m[SHOP])[0].pop("classification"),
     "column main.id is not classified"),
    ("MESH-CLS-002", "shop.orders", "error", lambda m: columns(m[SHOP]).append(column("customer_email", "public")),
     "column main.customer_email looks like personal data but is classified public"),
    ("MESH-PII-001", "shop.orders", "error", lambda m: columns(m[SHOP]).append(column("customer_email", "pii")),
     "public port main serves pii columns ['customer_email']"),
    ("MESH-PII-002", "bi.revenue", "error", _pii_port_read_without_approval,
     "reads personal data from shop.orders.contacts without an approved access request"),
    ("MESH-ACC-001", "bi.revenue", "error", _internal_port_of_another_domain_read,
     "reads shop.orders.staging, which is internal to domain 'shop'"),
    ("MESH-ACC-001", "bi.revenue", "error", _restricted_port_read_without_request,
     "add 'access_request: {reason: ...}' to input port in_1"),
    ("MESH-ACC-001", "bi.revenue", "error", _restricted_port_read_without_approval,
     "to add bi.revenue to approved_access of port margins"),
    ("MESH-SLO-001", "shop.orders", "warning", lambda m: port(m[SHOP]).pop("freshness"),
     "public port main declares no freshness SLO"),
    ("MESH-LIFE-001", "bi.revenue", "error", lambda m: m[SHOP].update(status="draft"),
     "reads shop.orders, which is draft"),
    ("MESH-LIFE-001", "shop.orders", "error", lambda m: m[SHOP].update(status="retired"),
     "the product is retired but ['bi.revenue'] still read it"),
    ("MESH-LIFE-002", "bi.revenue", "warning",
     lambda m: m[SHOP].update(status="deprecated", deprecation_date=date(2025, 9, 30)),
     "which is deprecated and will be retired on 2025-09-30"),
    ("MESH-LIFE-002", "shop.orders", "warning", lambda m: m[SHOP].update(status="deprecated"),
     "deprecated without a deprecation_date"),
    ("MESH-PART-001", "shop.orders", "error", _two_partitionings,
     "output port daily is partitioned by day from 1995-01-01, but shop.orders.main is by month"),
]


@pytest.mark.parametrize(("policy", "product_id", "severity", "breaks", "message"), VIOLATIONS,
                         ids=[f"{v[0]}-{i}" for i, v in enumerate(VIOLATIONS)])
def test_a_violation_is_a_finding(root, policy, product_id, severity, breaks, message):
    mesh = clean_mesh()
    breaks(mesh)
    findings = found(run(root, mesh), policy, product_id)
    assert [f.severity for f in findings] == [severity]
    assert message in findings[0].message


# --- ... and the allowed way to do the same thing makes none ----------------------------------------------

def _pii_on_a_restricted_port(m):
    add_port(m[SHOP], "contacts", "restricted", column("customer_email", "pii"))


def _pii_read_with_approval(m):
    add_port(m[SHOP], "contacts", "restricted", column("customer_email", "pii"), approved=("bi.revenue",))
    read(m[BI], "shop.orders.contacts", request=True)


def _restricted_port_read_with_approval(m):
    add_port(m[SHOP], "margins", "restricted", column("margin"), approved=("bi.revenue",))
    read(m[BI], "shop.orders.margins", request=True)


def _internal_port_read_in_the_same_domain(m):
    add_port(m[SHOP], "staging", "internal")
    m["shop/returns.yaml"] = clean("shop.returns", ["shop.orders.staging"])


COMPLIANT = [  # (the policy that allows it, what it does)
    ("MESH-CLS-002", lambda m: columns(m[SHOP]).append(column("nation_name", "public"))),
    ("MESH-PII-001", _pii_on_a_restricted_port),
    ("MESH-PII-002", _pii_read_with_approval),
    ("MESH-ACC-001", _restricted_port_read_with_approval),
    ("MESH-ACC-001", _internal_port_read_in_the_same_domain),
    ("MESH-SLO-001", lambda m: add_port(m[SHOP], "margins", "restricted", column("margin"))),
    ("MESH-LIFE-001", lambda m: m[BI].update(status="retired")),
    ("MESH-LIFE-002", lambda m: m[BI].update(status="deprecated", deprecation_date=date(2025, 9, 30))),
]


@pytest.mark.parametrize(("policy", "does"), COMPLIANT, ids=[f"{c[0]}-{i}" for i, c in enumerate(COMPLIANT)])
def test_the_allowed_way_is_no_finding(root, policy, does):
    mesh = clean_mesh()
    does(mesh)
    assert [f.as_text() for f in run(root, mesh).findings] == []


# --- findings point at file and line ----------------------------------------------------------------------

LINES = [  # (policy, what breaks it, the manifest file of the finding, the text on the line it must cite)
    ("MESH-OWN-001", lambda m: m[SHOP]["owner"].update(team="nobody"), SHOP, "team: nobody"),
    ("MESH-PII-001", lambda m: columns(m[SHOP]).append(column("customer_email", "pii")), SHOP, "visibility: public"),
    ("MESH-CON-001", lambda m: port(m[SHOP])["contract"].update(primary_key=[]), SHOP, "contract:"),
    ("MESH-CLS-002", lambda m: columns(m[SHOP]).append(column("customer_email", "public")), SHOP,
     "classification: public"),
    ("MESH-ACC-001", _internal_port_of_another_domain_read, BI, "name: in_1"),
    ("MESH-LIFE-002", lambda m: m[SHOP].update(status="deprecated"), SHOP, "status: deprecated"),
]


@pytest.mark.parametrize(("policy", "breaks", "name", "text"), LINES, ids=[v[0] for v in LINES])
def test_a_finding_cites_the_manifest_file_and_line(root, policy, breaks, name, text):
    mesh = clean_mesh()
    breaks(mesh)
    if policy == "MESH-CLS-002":  # the only column classified public
        columns(mesh[SHOP])[0]["classification"] = "internal"
    [finding] = found(run(root, mesh), policy, PRODUCT_OF[name])
    assert Path(finding.file) == manifest_file(root, name).resolve()
    assert finding.line == line_with(root, name, text)
    assert finding.as_text().startswith(f"{finding.file}:{finding.line}: {finding.severity} {policy}")


# --- registry-level findings ------------------------------------------------------------------------------

def test_a_broken_manifest_is_a_schema_finding_at_its_line(root):
    mesh = clean_mesh()
    mesh[SHOP]["status"] = "actve"
    report = run(root, mesh)
    [finding] = found(report, "MESH-SCHEMA-001")
    assert (finding.product, finding.severity) == ("shop.orders", "error")
    assert "field 'status'" in finding.message and "'actve' is not allowed" in finding.message
    assert Path(finding.file) == manifest_file(root, SHOP).resolve()
    assert finding.line == line_with(root, SHOP, "status: actve")
    assert "shop.orders" in report.blocked and "bi.revenue" in report.blocked


def test_invalid_yaml_is_a_schema_finding(root):
    report = run(root, {SHOP: "id: shop.orders\nname: [unclosed\n"})
    [finding] = found(report, "MESH-SCHEMA-001")
    assert "is not valid YAML" in finding.message and finding.line == 3


def test_an_unknown_input_port_is_a_registry_finding_at_input_ports(root):
    mesh = clean_mesh()
    read(mesh[BI], "shop.orders.nope")
    [finding] = found(run(root, mesh), "MESH-REG-001")
    assert finding.product == "bi.revenue" and "shop.orders has no output port 'nope'" in finding.message
    assert finding.line == line_with(root, BI, "input_ports:")


def test_a_broken_teams_file_is_an_owner_finding_on_every_product(root):
    (root / "governance" / "teams.yaml").write_text("teams: [unclosed\n")
    report = run(root, clean_mesh())
    assert {f.product for f in found(report, "MESH-OWN-001") if "teams file is broken" in f.message} == \
        {"shop.orders", "bi.revenue"}


# --- blocking -----------------------------------------------------------------------------------------------

def test_an_error_blocks_the_product_and_its_transitive_consumers_only(root):
    mesh = clean_mesh()
    mesh[SHOP]["owner"]["team"] = "nobody"
    mesh["bi/dashboard.yaml"] = clean("bi.dashboard", ["bi.revenue.main"])
    mesh["geo/nations.yaml"] = clean("geo.nations")
    mesh["bi/atlas.yaml"] = clean("bi.atlas", ["geo.nations.main"])
    report = run(root, mesh)
    assert set(report.blocked) == {"shop.orders", "bi.revenue", "bi.dashboard"}
    assert report.blocked["shop.orders"].startswith("MESH-OWN-001")
    assert report.blocked["bi.dashboard"] == "upstream product bi.revenue is blocked by policy findings"


def test_a_warning_blocks_nothing(root):
    mesh = clean_mesh()
    port(mesh[SHOP]).pop("freshness")
    report = run(root, mesh)
    assert [f.blocking for f in report.findings] == [False] and report.blocked == {}


# --- local thresholds and severities: they may only tighten -----------------------------------------------

def test_a_tighter_threshold_applies(root):
    mesh = clean_mesh()
    govern(mesh[SHOP], thresholds={"MESH-DOC-001": {"min_length": 50}})
    report = run(root, mesh)
    messages = [f.message for f in found(report, "MESH-DOC-001", "shop.orders")]
    assert len(messages) == 3  # the product's, the port's and the column's descriptions are all short now
    assert messages[0].startswith("the product description has fewer than 50 characters")
    assert found(report, "MESH-DOC-001", "bi.revenue") == []  # another product keeps the global threshold


def test_a_relaxed_threshold_is_reported_and_the_global_one_applies(root):
    mesh = clean_mesh()
    govern(mesh[SHOP], thresholds={"MESH-DOC-001": {"min_length": 0}})
    mesh[SHOP]["description"] = ""
    report = run(root, mesh)
    [problem] = found(report, "MESH-GOV-001")
    assert "relaxes the global 1" in problem.message and problem.line == line_with(root, SHOP, "min_length: 0")
    assert "fewer than 1 characters" in found(report, "MESH-DOC-001")[0].message


def test_a_relaxed_severity_is_reported_and_the_global_one_applies(root):
    mesh = clean_mesh()
    govern(mesh[SHOP], severities={"MESH-PII-001": "warning"})
    columns(mesh[SHOP]).append(column("customer_email", "pii"))
    report = run(root, mesh)
    assert "relaxes the global severity error" in found(report, "MESH-GOV-001")[0].message
    [finding] = found(report, "MESH-PII-001")
    assert finding.severity == "error" and finding.blocking


def test_a_superset_threshold_adds_patterns_for_that_product_only(root):
    mesh = clean_mesh()
    mesh["shop/returns.yaml"] = clean("shop.returns")
    for manifest in (mesh[SHOP], mesh["shop/returns.yaml"]):
        columns(manifest).append(column("loyalty_id", "internal"))
    govern(mesh[SHOP], thresholds={"MESH-CLS-002": {"pii_name_patterns": ["(^|_)loyalty_id$"]}})
    report = run(root, mesh)
    assert [f.product for f in found(report, "MESH-CLS-002")] == ["shop.orders"]


def test_a_duration_threshold_applies(root):
    mesh = clean_mesh()
    govern(mesh[SHOP], thresholds={"MESH-SLO-001": {"max_age_limit": "12h"}})
    [finding] = found(run(root, mesh), "MESH-SLO-001")
    assert "promises freshness within 26h, longer than the allowed 12h" in finding.message


@pytest.mark.parametrize(("policy", "name", "value", "problem"), [
    ("MESH-DOC-001", "min_length", "2h", "'2h' is not a number"),
    ("MESH-SLO-001", "max_age_limit", 5, "'5' is not a duration like 26h"),
    ("MESH-DOC-001", "max_length", 5, "MESH-DOC-001 has no threshold 'max_length'"),
    ("MESH-NOPE-001", "min_length", 5, "thresholds names unknown policy MESH-NOPE-001"),
])
def test_a_malformed_threshold_is_reported_not_applied(root, policy, name, value, problem):
    mesh = clean_mesh()
    govern(mesh[SHOP], thresholds={policy: {name: value}})
    report = run(root, mesh)
    assert [problem in f.message for f in report.findings] == [True]
    assert report.findings[0].policy == "MESH-GOV-001"


def test_a_raised_severity_makes_the_finding_blocking(root):
    mesh = clean_mesh()
    govern(mesh[SHOP], severities={"MESH-SLO-001": "error"})
    port(mesh[SHOP]).pop("freshness")
    report = run(root, mesh)
    [finding] = found(report, "MESH-SLO-001")
    assert finding.severity == "error" and finding.blocking
    assert set(report.blocked) == {"shop.orders", "bi.revenue"}


# --- waivers ------------------------------------------------------------------------------------------------

def test_a_current_waiver_of_a_warning_waives_the_finding(root):
    mesh = clean_mesh()
    govern(mesh[SHOP], waivers=[waiver("MESH-SLO-001")])
    port(mesh[SHOP]).pop("freshness")
    report = run(root, mesh)
    [finding] = report.findings
    assert finding.policy == "MESH-SLO-001" and finding.waived and not finding.blocking
    assert (finding.waived_reason, finding.waived_until) == ("Freshness comes with the new loader.", date(2025, 12, 31))
    assert "(waived until 2025-12-31: Freshness comes with the new loader.)" in finding.as_text()
    assert report.blocked == {}


def test_a_waiver_of_an_error_policy_is_a_finding_and_waives_nothing(root):
    mesh = clean_mesh()
    govern(mesh[SHOP], waivers=[waiver("MESH-PII-001")])
    columns(mesh[SHOP]).append(column("customer_email", "pii"))
    report = run(root, mesh)
    assert "errors cannot be waived" in found(report, "MESH-GOV-001")[0].message
    [finding] = found(report, "MESH-PII-001")
    assert not finding.waived and finding.blocking


def test_an_expired_waiver_is_an_error_and_waives_nothing(root):
    mesh = clean_mesh()
    govern(mesh[SHOP], waivers=[waiver("MESH-SLO-001", expires=date(2025, 5, 31))])
    port(mesh[SHOP]).pop("freshness")
    report = run(root, mesh)
    [expired] = found(report, "MESH-GOV-002")
    assert expired.severity == "error" and "expired on 2025-05-31" in expired.message
    assert expired.line == line_with(root, SHOP, "expires: 2025-05-31")
    assert not found(report, "MESH-SLO-001")[0].waived
    assert "shop.orders" in report.blocked


def test_a_waiver_expiring_today_still_applies(root):
    mesh = clean_mesh()
    govern(mesh[SHOP], waivers=[waiver("MESH-SLO-001", expires=TODAY)])
    port(mesh[SHOP]).pop("freshness")
    assert [f.waived for f in run(root, mesh).findings] == [True]


def test_a_waiver_of_an_unknown_policy_is_a_finding(root):
    mesh = clean_mesh()
    govern(mesh[SHOP], waivers=[waiver("MESH-NOPE-999")])
    [finding] = run(root, mesh).findings
    assert finding.policy == "MESH-GOV-001" and "waiver names unknown policy MESH-NOPE-999" in finding.message


def test_a_waiver_of_a_raised_severity_is_a_finding(root):
    mesh = clean_mesh()
    govern(mesh[SHOP], severities={"MESH-SLO-001": "error"}, waivers=[waiver("MESH-SLO-001")])
    port(mesh[SHOP]).pop("freshness")
    report = run(root, mesh)
    assert "errors cannot be waived" in found(report, "MESH-GOV-001")[0].message
    assert found(report, "MESH-SLO-001")[0].blocking


# --- MESH-VER-001: breaking contract changes against a base revision ------------------------------------------

def _base_with_a_note_column() -> dict[str, Manifest]:
    old = clean("shop.orders")
    columns(old).append(column("note"))
    return {"shop.orders": Manifest.model_validate(old)}


def test_a_removed_column_without_a_major_bump_is_a_finding(root):
    [finding] = run(root, clean_mesh(), base=_base_with_a_note_column()).findings
    assert finding.policy == "MESH-VER-001" and "main: column note removed (or renamed)" in finding.message
    assert "the version went from 1.0.0 to 1.0.0; bump the major version (to 2.0.0)" in finding.message
    assert finding.line == line_with(root, SHOP, "version: 1.0.0")


def test_a_removed_column_with_a_major_bump_is_no_finding(root):
    mesh = clean_mesh()
    mesh[SHOP]["version"] = "2.0.0"
    assert run(root, mesh, base=_base_with_a_note_column()).findings == []


def test_an_added_column_needs_no_major_bump(root):
    mesh = clean_mesh()
    columns(mesh[SHOP]).append(column("note"))
    mesh[SHOP]["version"] = "1.1.0"
    assert run(root, mesh, base={"shop.orders": Manifest.model_validate(clean("shop.orders"))}).findings == []


# --- MESH-ACC-002: the code location's real Dagster asset graph ---------------------------------------------

def asset_reading(key: list[str], *deps: list[str]):
    """A real Dagster asset with `key`, depending on `deps` (asset keys as lists)."""

    @asset(key=AssetKey(key), deps=[AssetKey(d) for d in deps])
    def _asset() -> None:
        pass

    return _asset


def bi_model():
    """The dbt model that builds bi.revenue's port `main` (MESH-DBT-001 wants it in bi's asset graph)."""
    return asset_reading(["bi", "internal", "main"])


def _mesh_with_a_restricted_port(approved: bool) -> dict[str, dict]:
    mesh = clean_mesh()
    add_port(mesh[SHOP], "margins", "restricted", column("margin"), approved=("bi.revenue",) if approved else ())
    return mesh


def test_an_asset_reading_another_domains_internal_asset_is_a_finding(root):
    graph = graph_of_assets([asset_reading(["bi", "revenue", "main"], ["shop", "orders", "main"],
                                           ["shop", "internal", "stg_orders"]), bi_model()])
    [finding] = run(root, clean_mesh(), asset_graphs={"bi": graph}).findings
    assert (finding.policy, finding.product, finding.severity) == ("MESH-ACC-002", "bi.revenue", "error")
    assert "depends on shop/internal/stg_orders, an internal asset of domain 'shop'" in finding.message


def test_an_asset_reading_an_undeclared_restricted_port_through_a_staging_asset_is_a_finding(root):
    graph = graph_of_assets([asset_reading(["bi", "internal", "stg_margins"], ["shop", "orders", "margins"]),
                             asset_reading(["bi", "revenue", "main"], ["bi", "internal", "stg_margins"]), bi_model()])
    report = run(root, _mesh_with_a_restricted_port(approved=True), asset_graphs={"bi": graph})
    [finding] = report.findings
    assert finding.policy == "MESH-ACC-002" and "bi.revenue" in report.blocked
    assert ("asset bi/internal/stg_margins reads restricted port shop.orders.margins, which bi.revenue does not "
            "declare as an input port") in finding.message


def test_an_asset_reading_a_declared_but_unapproved_restricted_port_is_a_finding(root):
    mesh = _mesh_with_a_restricted_port(approved=False)
    read(mesh[BI], "shop.orders.margins", request=True)
    graph = graph_of_assets([asset_reading(["bi", "revenue", "main"], ["shop", "orders", "margins"]), bi_model()])
    report = run(root, mesh, asset_graphs={"bi": graph})
    [finding] = found(report, "MESH-ACC-002")
    assert "reads restricted shop.orders.margins without an approved access request" in finding.message
    assert finding.line == line_with(root, BI, "name: in_1")
    assert found(report, "MESH-ACC-001")  # the manifest says so too


def test_assets_reading_public_and_approved_restricted_ports_are_no_finding(root):
    mesh = _mesh_with_a_restricted_port(approved=True)
    read(mesh[BI], "shop.orders.margins", request=True)
    defs = Definitions(assets=[
        asset_reading(["bi", "internal", "stg"], ["shop", "orders", "main"], ["shop", "orders", "margins"]),
        asset_reading(["bi", "revenue", "main"], ["bi", "internal", "stg"], ["bi", "internal", "other"]),
        asset_reading(["bi", "internal", "other"]), bi_model()])
    assert run(root, mesh, asset_graphs={"bi": graph_of_definitions(defs)}).findings == []


def test_the_asset_graph_is_only_checked_for_its_own_code_location(root):
    graph = graph_of_assets([asset_reading(["bi", "revenue", "main"], ["shop", "internal", "stg_orders"]),
                             asset_reading(["shop", "internal", "main"])])  # shop's own port model is there
    assert run(root, clean_mesh(), asset_graphs={"shop": graph}).findings == []


# --- local policies ------------------------------------------------------------------------------------------

def test_a_local_require_tags_policy_passes_and_fails(root):
    mesh = clean_mesh()
    govern(mesh[SHOP], policies=[local_policy("SHOP-001", require_tags=["gdpr", "tier1"])])
    mesh[SHOP]["tags"] = ["gdpr"]
    [finding] = run(root, mesh).findings
    assert (finding.policy, finding.title, finding.severity) == ("SHOP-001", "Rule SHOP-001", "error")
    assert "lacks the tags ['tier1']" in finding.message and finding.line == line_with(root, SHOP, "tags:")

    mesh[SHOP]["tags"] = ["gdpr", "tier1"]
    assert run(root, mesh).findings == []


def test_a_local_column_names_policy_passes_and_fails(root):
    mesh = clean_mesh()
    govern(mesh[SHOP], policies=[local_policy("SHOP-002", "warning", column_names="[a-z]+(_[a-z]+)*")])
    columns(mesh[SHOP]).append(column("amount2"))
    [finding] = run(root, mesh).findings
    assert finding.policy == "SHOP-002" and "column main.amount2 does not match" in finding.message

    columns(mesh[SHOP])[-1]["name"] = "amount_net"
    assert run(root, mesh).findings == []


def test_a_local_warning_policy_can_be_waived(root):
    mesh = clean_mesh()
    govern(mesh[SHOP], policies=[local_policy("SHOP-002", "warning", require_tags=["gdpr"])],
           waivers=[waiver("SHOP-002")])
    assert [(f.policy, f.waived) for f in run(root, mesh).findings] == [("SHOP-002", True)]


def test_a_local_rows_satisfy_policy_is_a_runtime_policy_not_checked_statically(root):
    mesh = clean_mesh()
    govern(mesh[SHOP], policies=[local_policy("SHOP-003", rows_satisfy="id < 0")])
    report = run(root, mesh)
    assert report.findings == []
    [local] = [p for p in report.evaluated["shop.orders"] if p.id == "SHOP-003"]
    assert (local.phase, local.scope, local.check) == ("runtime", "local", None)


# --- review fixes: no way around the rules ----------------------------------------------------------------

def test_a_nan_threshold_is_refused_and_the_global_one_applies(root):
    mesh = clean_mesh()
    mesh[SHOP]["description"] = ""
    govern(mesh[SHOP], thresholds={"MESH-DOC-001": {"min_length": float("nan")}})
    report = run(root, mesh)
    assert found(report, "MESH-GOV-001") and found(report, "MESH-DOC-001", "shop.orders")


def test_a_cron_freshness_counts_its_window_against_the_max_age_limit(root):
    mesh = clean_mesh()
    port(mesh[SHOP])["freshness"] = {"cron": "0 0 1 * *", "cron_window": "28d"}  # February: ticks 28 days apart
    govern(mesh[SHOP], thresholds={"MESH-SLO-001": {"max_age_limit": "26h"}})
    [finding] = found(run(root, mesh), "MESH-SLO-001")
    assert "promises freshness within 28d, longer than the allowed 26h" in finding.message


def test_a_manifest_filed_in_another_domains_folder_reads_as_that_folders_domain(root):
    """id shop.spy in bi's folder: bi's code location would do the reading, so it is no reader of shop's own."""
    from platform_resources.access import AccessDenied, check_read_access

    mesh = _mesh_with_a_restricted_port(approved=False)
    misfiled = clean("shop.spy")
    read(misfiled, "shop.orders.margins")
    mesh["bi/misfiled.yaml"] = misfiled
    registry = load_registry(make_workspace(root, mesh), published=False)
    with pytest.raises(AccessDenied, match="restricted"):
        check_read_access(registry, "shop.orders.margins", "shop.spy")
    report = evaluate(registry, today=TODAY)
    assert found(report, "MESH-ID-001", "shop.spy") and found(report, "MESH-ACC-001", "shop.spy")


def test_an_asset_depending_on_another_domains_non_port_asset_is_a_finding(root):
    graph = graph_of_assets([asset_reading(["bi", "revenue", "main"], ["shop", "secret_table"]), bi_model()])
    [finding] = run(root, clean_mesh(), asset_graphs={"bi": graph}).findings
    assert finding.policy == "MESH-ACC-002" and "not one of its output ports" in finding.message
    assert finding.line == line_with(root, BI, "input_ports:")


def test_a_port_without_its_dbt_model_is_a_finding_naming_the_model_and_the_manifest_line(root):
    graph = graph_of_assets([asset_reading(["bi", "revenue", "main"], ["shop", "orders", "main"])])
    project = root / "dbt_projects" / "bi"
    project.mkdir(parents=True)
    (project / "dbt_project.yml").write_text("name: bi\n")
    report = run(root, clean_mesh(), asset_graphs={"bi": graph})
    [finding] = report.findings
    assert (finding.policy, finding.product, finding.severity) == ("MESH-DBT-001", "bi.revenue", "error")
    assert "port main is built by dbt model 'main', which the dbt project does not have" in finding.message
    assert f"add {project}/models/main.sql, or set `model:` on the port" in finding.message
    assert finding.line == line_with(root, BI, "name: main") and "bi.revenue" in report.blocked


def test_a_domain_without_a_dbt_project_is_a_finding_not_a_traceback(root):
    graph = graph_of_assets([asset_reading(["bi", "revenue", "main"], ["shop", "orders", "main"])])
    [finding] = run(root, clean_mesh(), asset_graphs={"bi": graph}).findings
    assert finding.policy == "MESH-DBT-001"
    assert f"domain 'bi' has no dbt project at {root / 'dbt_projects' / 'bi'} (no dbt_project.yml)" in finding.message
