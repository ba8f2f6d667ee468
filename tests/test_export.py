"""`mesh export`: ODPS v1.0.0 per product and ODCS v3.2.0 per output port, valid against the published schemas.

The ODCS schema is the one the open-data-contract-standard package ships (and the same file as the published
one in ../shared/standards, where that is present); the ODPS schema is read from ../shared/standards (never
copied into the repository). Every `$ref` in them is local and is resolved by a `referencing` registry that
refuses anything else, so nothing goes to the network. `datacontract test` on the served data: test_odcs_served.py.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from importlib import resources
from jsonschema import Draft201909Validator
from jsonschema.validators import validator_for
from openlineage_spec import FORMAT_CHECKER  # generic "uri" and "date-time" format checks (test helper)
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource
from referencing.jsonschema import DRAFT201909

from platform_resources import export
from platform_resources.governance import runtime
from platform_resources.manifest import Manifest
from platform_resources.sql_sandbox import condition_sql
from platform_resources.registry import load_registry

STANDARDS = Path(__file__).resolve().parents[2] / "shared" / "standards"
ODPS_SCHEMA = STANDARDS / "odps" / "odps-json-schema-v1.0.0.json"
PUBLISHED_ODCS_SCHEMA = STANDARDS / "odcs" / "odcs-json-schema-v3.2.0.json"
ODCS_SCHEMA = Path(str(resources.files("open_data_contract_standard").joinpath("schema.json")))
NO_STANDARDS = f"the published ODPS/ODCS schemas are not at {STANDARDS} (../shared beside the clone, as CI has it)"

SAMPLE_PRODUCTS = 14
SAMPLE_PORTS = 18


def _no_network(uri: str):
    raise NoSuchResource(ref=uri)


def validator(schema_file: Path):
    """A validator of the draft the schema declares, resolving `$ref`s locally only, checking formats."""
    schema = json.loads(schema_file.read_text())
    cls = validator_for(schema, default=None)
    assert cls is Draft201909Validator, f"{schema_file.name} declares {schema.get('$schema')}; expected draft 2019-09"
    cls.check_schema(schema)
    uri = f"urn:mesh-test:{schema_file.name}"
    resource = Resource.from_contents(schema, default_specification=DRAFT201909)
    registry = Registry(retrieve=_no_network).with_resource(uri, resource)
    return cls({"$ref": uri}, registry=registry, format_checker=FORMAT_CHECKER)


@pytest.fixture(scope="module")
def validators():
    """ODCS from the installed package, always; ODPS only where ../shared is (a user's clone has none; CI has it)."""
    return {"odcs": validator(ODCS_SCHEMA), "odps": validator(ODPS_SCHEMA) if STANDARDS.is_dir() else None}


def problems(validators, kind: str, document: dict) -> list[str]:
    if validators[kind] is None:
        pytest.skip(f"skipped: {NO_STANDARDS}")
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
            for e in validators[kind].iter_errors(document)]


@pytest.fixture(scope="module")
def registry():
    return load_registry()


@pytest.fixture(scope="module")
def exported(registry, tmp_path_factory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("export")
    return out, export.export_all(registry, out)


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def contract_of(exported, port_id: str) -> dict:
    return load(exported[0] / "odcs" / f"{port_id}.odcs.yaml")


def product_of(exported, product_id: str) -> dict:
    return load(exported[0] / "odps" / f"{product_id}.odps.yaml")


# --- every document of the sample mesh ---------------------------------------------------------------


def test_one_document_per_product_and_port(registry, exported):
    out, paths = exported
    assert len(registry.products) == SAMPLE_PRODUCTS and len(registry.port_ids()) == SAMPLE_PORTS
    odps = sorted(p.name for p in (out / "odps").iterdir())
    odcs = sorted(p.name for p in (out / "odcs").iterdir())
    assert odps == sorted(f"{pid}.odps.yaml" for pid in registry.products)
    assert odcs == sorted(f"{pid}.odcs.yaml" for pid in registry.port_ids())
    assert len(paths) == SAMPLE_PRODUCTS + SAMPLE_PORTS == len(odps) + len(odcs)
    assert all(p.is_file() for p in paths)


def test_every_document_validates(validators, exported):
    out, _ = exported
    found = {}
    for kind in ("odcs", "odps"):  # ODCS first: its schema is always there
        for path in sorted((out / kind).glob("*.yaml")):
            found[path.name] = problems(validators, kind, load(path))
    assert len(found) == SAMPLE_PRODUCTS + SAMPLE_PORTS
    assert {name: errors for name, errors in found.items() if errors} == {}


def test_documents_name_their_standard_and_product(registry, exported):
    for product_id, manifest in registry.products.items():
        product = product_of(exported, product_id)
        assert (product["apiVersion"], product["kind"], product["id"]) == ("v1.0.0", "DataProduct", product_id)
        assert (product["status"], product["version"], product["domain"]) == (manifest.status, manifest.version, manifest.domain)
        assert product["team"]["members"][0]["username"] == manifest.owner.email
        assert {"property": "archetype", "value": manifest.archetype} in product["customProperties"]
        assert [p["name"] for p in product["outputPorts"]] == [p.name for p in manifest.output_ports]
        for port in manifest.output_ports:
            contract = contract_of(exported, f"{product_id}.{port.name}")
            assert (contract["apiVersion"], contract["kind"]) == ("v3.2.0", "DataContract")
            assert contract["id"] == f"{product_id}.{port.name}"
            assert contract["dataProduct"] == product_id and contract["domain"] == manifest.domain
            assert contract["version"] == (port.contract.version or manifest.version)
            [table] = contract["schema"]
            # The table's name only: the server names the namespace (domain) and the catalog.
            assert table["physicalName"] == f"{manifest.product}__{port.name}"
            [server] = contract["servers"]
            assert (server["type"], server["catalog"], server["namespace"]) == ("iceberg", "mesh", manifest.domain)
            assert [p["name"] for p in table["properties"]] == [c.name for c in port.contract.columns] + ["_processing_time"]


def test_restricted_contract_carries_classification_key_and_approved_consumers(exported):
    contract = contract_of(exported, "crm.customers.customer_contacts")
    [table] = contract["schema"]
    columns = {p["name"]: p for p in table["properties"]}
    assert columns["c_name"]["classification"] == "pii"
    assert columns["c_name"]["required"] is True
    assert columns["c_name"]["logicalType"] == "string" and columns["c_name"]["physicalType"] == "varchar"
    assert columns["c_custkey"]["primaryKey"] is True and columns["c_custkey"]["primaryKeyPosition"] == 1
    assert columns["c_custkey"]["logicalType"] == "integer"
    assert columns["c_custkey"]["logicalTypeOptions"] == {"format": "i64"}
    assert [p["name"] for p in table["properties"] if p.get("primaryKey")] == ["c_custkey"]
    roles = {r["role"]: r for r in contract["roles"]}
    assert set(roles) == {"crm", "finance.returned_items", "marketing.large_volume_customers"}
    assert roles["finance.returned_items"]["access"] == "read"
    assert "Collections" in roles["finance.returned_items"]["description"]
    assert "restricted" in contract["description"]["limitations"]
    [server] = contract["servers"]
    assert server["catalogUrl"].startswith("sqlite:////") and server["catalogUrl"].endswith("/iceberg/catalog.db")
    custom = {p["property"]: p["value"] for p in server["customProperties"]}
    assert custom["catalogType"] == "sql" and custom["table"] == "crm.customers__customer_contacts"
    assert custom["tableLocation"].startswith("file://")
    assert custom["tableLocation"].endswith("/crm/customers__customer_contacts")


def test_public_contract_has_no_access_roles(exported):
    contract = contract_of(exported, "crm.customers.customers")
    assert "roles" not in contract and "limitations" not in contract["description"]
    assert {"property": "visibility", "value": "public"} in contract["customProperties"]


def test_product_lists_input_ports_and_links_output_port_to_its_contract(registry, exported):
    product = product_of(exported, "finance.returned_items")
    inputs = {p["name"]: p for p in product["inputPorts"]}
    assert {name: p["contractId"] for name, p in inputs.items()} == {
        "customers": "crm.customers.customers", "customer_contacts": "crm.customers.customer_contacts",
        "orders": "sales.orders.orders", "order_lines": "sales.orders.order_lines", "nations": "geography.nations.nations"}
    assert all(p["version"] == "1.0.0" for p in inputs.values())
    assert {"property": "accessRequest", "value": "Collections contact customers who returned items (TPC-H Q10)."} \
        in inputs["customer_contacts"]["customProperties"]
    [port] = product["outputPorts"]
    assert port["name"] == "returned_items" and port["contractId"] == "finance.returned_items.returned_items"
    assert contract_of(exported, port["contractId"])["id"] == port["contractId"]
    assert {c["id"] for c in port["inputContracts"]} == {p["contractId"] for p in inputs.values()}
    # Every contract id a product names (its own ports and the ports it reads) is an exported contract.
    for product_id in registry.products:
        document = product_of(exported, product_id)
        for p in document["outputPorts"] + [i for i in document.get("inputPorts", [])
                                            if {"property": "sourceType", "value": "outputPort"} in i["customProperties"]]:
            assert (exported[0] / "odcs" / f"{p['contractId']}.odcs.yaml").is_file()


def test_operational_input_port_is_marked_as_such(exported):
    product = product_of(exported, "crm.customers")
    [system] = product["inputPorts"]
    assert system["name"] == "crm_system" and system["contractId"] == "crm_db.customer"
    assert {"property": "sourceType", "value": "operationalSystem"} in system["customProperties"]
    consumers = next(p["value"] for p in product["outputPorts"][0]["customProperties"] if p["property"] == "consumers")
    assert "finance.returned_items" in consumers


def test_slos_become_sla_properties_and_quality_rules(exported):
    customers = contract_of(exported, "crm.customers.customers")
    sla = {s["property"]: s for s in customers["slaProperties"]}
    assert {"property": "freshness", "value": 26, "unit": "hours", "element": "customers._processing_time"}.items() \
        <= sla["freshness"].items()
    assert (sla["completeness"]["value"], sla["completeness"]["unit"], sla["completeness"]["element"]) \
        == (95, "percent", "customers.c_comment")
    assert {"property": "severity", "value": "warning"} in sla["completeness"]["customProperties"]
    assert (sla["volumeMinRows"]["value"], sla["volumeMaxChange"]["value"]) == (1, 20)
    assert "volumeMaxRows" not in sla
    [table] = customers["schema"]
    comment = next(p for p in table["properties"] if p["name"] == "c_comment")
    [rule] = comment["quality"]
    assert (rule["metric"], rule["mustBeLessOrEqualTo"], rule["unit"], rule["severity"]) == ("nullValues", 5, "percent", "warning")
    rules = {r["name"]: r for r in table["quality"]}
    assert rules["volume_rows"]["metric"] == "rowCount" and rules["volume_rows"]["mustBeGreaterOrEqualTo"] == 1
    assert rules["volume_rows"]["severity"] == "error"
    assert rules["row_count"]["type"] == "sql" and rules["row_count"]["mustBeGreaterThan"] == 0
    assert rules["volume_change"]["customProperties"] == [{"property": "maxRelativeChange", "value": 0.2}]
    assert rules["primary_key"]["arguments"] == {"properties": ["c_custkey"]} and rules["primary_key"]["mustBe"] == 0


def test_contract_carries_every_check_the_platform_runs_at_publish(registry, exported):
    """Each runtime check of a port (runtime.checks_of, what publish enforces) is in the port's contract."""
    def enforced_by(rule, check):
        assert {"property": "policy", "value": check.policy.id} in rule["customProperties"], rule["name"]

    kinds = set()
    for product_id, manifest in registry.products.items():
        for port in manifest.output_ports:
            [table] = contract_of(exported, f"{product_id}.{port.name}")["schema"]
            columns = {p["name"]: p for p in table["properties"]}
            rules = {r["name"]: r for r in table["quality"]}
            rules |= {r["name"]: r for p in table["properties"] for r in p.get("quality", [])}
            key = list(port.contract.primary_key)
            for check in runtime.checks_of(manifest, port):
                kinds.add("policy_*" if check.name.startswith("policy_") else check.name)
                if check.name == "contract_schema":
                    assert list(columns) == [c.name for c in port.contract.columns] + ["_processing_time"]
                elif check.name == "not_null_columns":
                    assert {n for n, p in columns.items() if p["required"]} == \
                        {c.name for c in port.contract.columns if not c.nullable} | set(key) | {"_processing_time"}
                elif check.name == "primary_key":
                    assert [n for n, p in columns.items() if p.get("primaryKey")] == key
                    assert rules["primary_key"]["arguments"] == {"properties": key}
                    enforced_by(rules["primary_key"], check)
                elif check.name == "row_count":
                    assert rules["row_count"]["query"] == "SELECT COUNT(*) FROM ${table}"
                    enforced_by(rules["row_count"], check)
                elif check.name == "masking":
                    masked = {f"masking_{c.name}" for c in port.contract.columns if c.masking}
                    assert {n for n in rules if n.startswith("masking_")} == masked
                    for name in masked:
                        enforced_by(rules[name], check)
                else:
                    assert rules[check.name]["type"] == "sql"
                    enforced_by(rules[check.name], check)
    # The sample mesh has every kind of runtime check.
    assert kinds == {"contract_schema", "primary_key", "not_null_columns", "row_count", "masking", "policy_*"}


def test_masking_becomes_rules_on_the_served_values(exported):
    [table] = contract_of(exported, "crm.customers.customer_contacts_masked")["schema"]
    columns = {p["name"]: p for p in table["properties"]}
    [hashed] = columns["c_name_sha256"]["quality"]
    assert (hashed["metric"], hashed["arguments"], hashed["mustBe"]) == ("invalidValues", {"pattern": runtime.HASHED}, 0)
    [redacted] = columns["c_phone_redacted"]["quality"]
    assert redacted["type"] == "sql" and redacted["mustBe"] == 0 and "> 4" in redacted["query"]
    assert {"property": "masking", "value": "redacted"} in columns["c_phone_redacted"]["customProperties"]


def test_rows_satisfy_becomes_a_sql_rule(registry, exported):
    manifest = registry.products["finance.pricing_summary"]
    [policy] = manifest.governance.policies
    [table] = contract_of(exported, "finance.pricing_summary.pricing_summary")["schema"]
    rule = next(r for r in table["quality"] if r["name"] == "policy_finance_001")
    columns = [c.name for c in manifest.output_ports[0].contract.columns]
    assert rule["query"] == f"SELECT COUNT(*) FROM ${{table}} WHERE NOT COALESCE(({condition_sql(policy.rows_satisfy, columns)}), FALSE)"
    assert (rule["mustBe"], rule["severity"], rule["dimension"]) == (0, policy.severity, "accuracy")
    assert policy.id in rule["description"] and policy.title in rule["description"]


def test_a_condition_the_platform_refuses_is_not_run_by_the_contract_either(registry, validators):
    def change(data):
        data["governance"]["policies"][0]["rows_satisfy"] = "sum_qty >= (select 0)"

    manifest = _variant(registry, "finance.pricing_summary", change)
    contract = export.odcs_contract(manifest, manifest.output_ports[0], registry)
    rule = next(r for r in contract["schema"][0]["quality"] if r["name"] == "policy_finance_001")
    assert rule["type"] == "text" and "query" not in rule and "Not run" in rule["description"]
    assert problems(validators, "odcs", contract) == []


def test_a_port_that_may_be_empty_has_no_row_count_rule(registry):
    def change(data):
        data["output_ports"][0]["may_be_empty"] = True

    manifest = _variant(registry, "finance.top_supplier", change)
    contract = export.odcs_contract(manifest, manifest.output_ports[0], registry)
    assert "row_count" not in {r["name"] for r in contract["schema"][0]["quality"]}


def test_types_map_to_logical_types():
    assert export.logical_type("tinyint") == ("integer", {"format": "i8"})
    assert export.logical_type("double") == ("number", {"format": "f64"})
    assert export.logical_type("float") == ("number", {"format": "f32"})
    assert export.logical_type("decimal(15,2)") == ("number", {})
    assert export.logical_type("varchar") == ("string", {})
    assert export.logical_type("boolean") == ("boolean", {})
    assert export.logical_type("date") == ("date", {})
    assert export.logical_type("timestamp") == ("timestamp", {"timezone": False})
    assert export.logical_type("timestamptz") == ("timestamp", {"timezone": True})


# --- manifests beyond the sample mesh ----------------------------------------------------------------


def _variant(registry, product_id: str, change) -> Manifest:
    data = registry.products[product_id].model_dump(by_alias=True, exclude_none=True)
    change(data)
    return Manifest.model_validate(data)


def test_every_column_type_freshness_kind_and_slo_validates(registry, validators):
    def change(data):
        port = data["output_ports"][0]
        port["contract"]["version"] = "2.1.0"
        port["contract"]["columns"] += [
            {"name": f"col_{kind.replace('(', '_').replace(',', '_').rstrip(')')}", "type": kind, "description": kind,
             "classification": "internal", "nullable": kind != "date"}
            for kind in ("boolean", "tinyint", "smallint", "integer", "float", "double", "decimal(38,4)", "date",
                         "timestamp", "timestamptz")]
        port["actual_time"] = "col_timestamptz"
        port["freshness"] = {"cron": "0 6 * * *", "cron_window": "2h", "cron_timezone": "Europe/Paris"}
        port["slos"] = {"timeliness": {"max_delay": "3d", "severity": "error"},
                        "completeness": {"columns": {"col_date": 1.0, "col_double": 0.995}, "severity": "error",
                                         "rows_vs_input": {"input_port": "orders", "min_ratio": 0.5}},
                        "volume": {"min_rows": 25, "max_rows": 25}}
        data["status"] = "deprecated"

    manifest = _variant(registry, "finance.returned_items", change)
    port = manifest.output_ports[0]
    contract = export.odcs_contract(manifest, port, registry)
    assert problems(validators, "odcs", contract) == []
    assert problems(validators, "odps", export.odps_document(manifest, registry)) == []
    assert contract["version"] == "2.1.0" and contract["status"] == "deprecated"
    sla = {s["property"]: s for s in contract["slaProperties"]}
    assert (sla["frequency"]["schedule"], sla["frequency"]["scheduler"], sla["frequency"]["value"], sla["frequency"]["unit"]) \
        == ("0 6 * * *", "cron", 2, "hours")
    assert (sla["latency"]["value"], sla["latency"]["unit"], sla["latency"]["element"]) == (3, "days", "returned_items.col_timestamptz")
    assert "freshness" not in sla  # a cron deadline is not an age a tool can test at any moment
    assert (sla["completenessVsInput"]["value"], sla["volumeMinRows"]["value"], sla["volumeMaxRows"]["value"]) == (0.5, 25, 25)
    assert {"property": "freshnessTimezone", "value": "Europe/Paris"} in contract["customProperties"]
    rules = {r["name"]: r for r in contract["schema"][0]["quality"]}
    assert rules["volume_rows"]["mustBe"] == 25
    assert {"property": "inputPort", "value": "sales.orders.orders"} in rules["completeness_rows_vs_input"]["customProperties"]
    assert rules["timeliness"]["severity"] == "error"
    columns = {p["name"]: p for p in contract["schema"][0]["properties"]}
    # Iceberg serves 8- and 16-bit integers as 32-bit ones; the contract's type stays beside the served one.
    assert (columns["col_tinyint"]["physicalType"], columns["col_tinyint"]["logicalTypeOptions"]) == ("integer", {"format": "i8"})
    assert {"property": "contractType", "value": "smallint"} in columns["col_smallint"]["customProperties"]
    assert columns["col_date"]["required"] is True and columns["col_double"]["required"] is False
    assert columns["col_double"]["quality"][0]["mustBeLessOrEqualTo"] == 0.5
    assert columns["col_date"]["quality"][0]["mustBeLessOrEqualTo"] == 0
    product = export.odps_document(manifest, registry)
    assert product["outputPorts"][0]["version"] == "2.1.0"


def test_max_age_with_warning_and_an_internal_port(registry, validators):
    def change(data):
        port = data["output_ports"][0]
        port["freshness"] = {"max_age": "90m", "warn_after": "1h"}
        port["visibility"] = "internal"
        port.pop("approved_access", None)
        port["slos"] = {"volume": {"max_rows": 10}}

    manifest = _variant(registry, "crm.customers", change)
    contract = export.odcs_contract(manifest, manifest.output_ports[0], registry)
    assert problems(validators, "odcs", contract) == []
    assert [(s["property"], s["value"], s.get("unit")) for s in contract["slaProperties"]] == [
        ("freshness", 90, "minutes"), ("freshnessWarning", 1, "hours"), ("volumeMaxRows", 10, "rows")]
    assert [r["role"] for r in contract["roles"]] == ["crm"]
    assert "internal" in contract["description"]["limitations"]
    assert next(r for r in contract["schema"][0]["quality"] if r["name"] == "volume_rows")["mustBeLessOrEqualTo"] == 10


def test_a_configured_rest_catalog_is_the_server(registry, validators, monkeypatch):
    monkeypatch.setenv("PYICEBERG_CATALOG__MESH__URI", "http://catalog.example.com")
    manifest = registry.products["crm.customers"]
    contract = export.odcs_contract(manifest, manifest.output_ports[0], registry)
    [server] = contract["servers"]
    assert (server["type"], server["catalogUrl"], server["namespace"]) == ("iceberg", "http://catalog.example.com", "crm")
    assert "warehouse" not in server
    custom = {p["property"]: p["value"] for p in server["customProperties"]}
    assert custom == {"catalogType": "rest", "table": "crm.customers__customers"}  # no local table location
    assert problems(validators, "odcs", contract) == []


def test_a_catalog_password_never_goes_into_a_contract(registry, validators, monkeypatch):
    monkeypatch.setenv("MESH_POSTGRES_URL", "postgresql+psycopg2://mesh:s3cret@db.example.com:5432/mesh")
    manifest = registry.products["crm.customers"]
    contract = export.odcs_contract(manifest, manifest.output_ports[0], registry)
    assert contract["servers"][0]["catalogUrl"] == "postgresql+psycopg2://mesh@db.example.com:5432/mesh"
    assert "s3cret" not in json.dumps(contract)
    assert problems(validators, "odcs", contract) == []


def test_a_catalog_without_a_url_is_a_custom_server(registry, validators, monkeypatch):
    monkeypatch.setenv("PYICEBERG_CATALOG__MESH__TYPE", "glue")
    manifest = registry.products["crm.customers"]
    contract = export.odcs_contract(manifest, manifest.output_ports[0], registry)
    [server] = contract["servers"]
    assert (server["type"], server["format"], server["catalog"], server["schema"]) == ("custom", "iceberg", "mesh", "crm")
    assert problems(validators, "odcs", contract) == []


def test_the_packaged_odcs_schema_is_the_published_one():
    if not STANDARDS.is_dir():
        pytest.skip(f"skipped: {NO_STANDARDS}")
    assert json.loads(ODCS_SCHEMA.read_text()) == json.loads(PUBLISHED_ODCS_SCHEMA.read_text())


# --- the validation really checks --------------------------------------------------------------------


def test_validation_catches_broken_documents(registry, validators):
    manifest = registry.products["crm.customers"]
    contract = export.odcs_contract(manifest, manifest.output_ports[1], registry)
    product = export.odps_document(manifest, registry)
    assert problems(validators, "odcs", contract) == [] and problems(validators, "odps", product) == []

    def broken(kind, document, edit):
        document = copy.deepcopy(document)
        edit(document)
        return problems(validators, kind, document)

    assert any("'id' is a required property" in p for p in broken("odcs", contract, lambda d: d.pop("id")))
    assert broken("odcs", contract, lambda d: d.update(status=3))
    assert broken("odcs", contract, lambda d: d.update(apiVersion="v9.9.9"))
    assert broken("odcs", contract, lambda d: d["schema"][0]["properties"][0].update(logicalType="varchar"))
    assert broken("odcs", contract, lambda d: d["schema"][0]["properties"][0].update(nullable=False))  # not an ODCS field
    assert broken("odcs", contract, lambda d: d["servers"][0].pop("catalogUrl"))  # an iceberg server needs one
    assert broken("odcs", contract, lambda d: d["servers"][0].update(location="file:///x"))  # not an iceberg field
    assert broken("odcs", contract, lambda d: d["schema"][0]["quality"][0].update(type="sql"))  # sql needs a query
    assert broken("odcs", contract, lambda d: d["schema"][0]["properties"][0].update(
        logicalTypeOptions={"format": "f64"}))  # integers take i8..i128
    # The export's own check (the package's schema) refuses them too.
    assert export.odcs_problems(contract) == []
    assert export.odcs_problems({**contract, "apiVersion": "v9.9.9"}) and export.odcs_problems({**contract, "kind": None})
    assert any("contractId" in p for p in broken("odps", product, lambda d: d["inputPorts"][0].pop("contractId")))
    assert broken("odps", product, lambda d: d.update(description="a string, not an object"))
    assert broken("odps", product, lambda d: d["support"][0].update(url="not a uri"))


# --- the command ---------------------------------------------------------------------------------------


def test_mesh_export_command(tmp_path, monkeypatch, capsys):
    out, home = tmp_path / "standards out", tmp_path / "home"
    mesh = str(Path(sys.executable).parent / "mesh")
    result = subprocess.run([mesh, "export", "--out", str(out)], check=False, capture_output=True, text=True,
                            env={**os.environ, "MESH_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")})
    code, stdout = result.returncode, result.stdout
    assert code == 0, result.stderr
    lines = stdout.strip().splitlines()
    assert len(lines) == SAMPLE_PRODUCTS + SAMPLE_PORTS + 1
    assert lines[-1] == (f"exported {SAMPLE_PRODUCTS} data products (ODPS v1.0.0) and {SAMPLE_PORTS} "
                         f"output-port contracts (ODCS v3.2.0) to {out}")
    assert str(out / "odcs" / "crm.customers.customer_contacts.odcs.yaml") in lines
    assert (home / "dagster" / "dagster.yaml").is_file()  # the command prepared the mesh home it was given
    [server] = load(out / "odcs" / "crm.customers.customers.odcs.yaml")["servers"]
    assert server["catalogUrl"] == f"sqlite:///{home.resolve()}/iceberg/catalog.db"
    assert server["warehouse"] == f"file://{home.resolve()}/iceberg/warehouse"
    assert {"property": "tableLocation", "value": f"file://{home.resolve()}/iceberg/warehouse/crm/customers__customers"} \
        in server["customProperties"]


def test_export_requires_out():
    root = argparse.ArgumentParser(prog="mesh")
    export.add_command(root.add_subparsers(dest="command", required=True), "help")
    with contextlib.redirect_stderr(io.StringIO()) as err, pytest.raises(SystemExit):
        root.parse_args(["export"])
    assert "--out" in err.getvalue()
