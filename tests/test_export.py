"""`mesh export`: ODPS v1.0.0 per product and ODCS v3.1.0 per output port, valid against the published schemas.

The schemas are read from ../shared/standards (never copied into the repository); every `$ref` in them is
local and is resolved by a `referencing` registry that refuses anything else, so nothing goes to the network.
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
from jsonschema import Draft201909Validator
from jsonschema.validators import validator_for
from openlineage_spec import FORMAT_CHECKER  # generic "uri" and "date-time" format checks (test helper)
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource
from referencing.jsonschema import DRAFT201909

from platform_resources import export
from platform_resources.manifest import Manifest
from platform_resources.registry import load_registry

STANDARDS = Path(__file__).resolve().parents[2] / "shared" / "standards"
ODPS_SCHEMA = STANDARDS / "odps" / "odps-json-schema-v1.0.0.json"
ODCS_SCHEMA = STANDARDS / "odcs" / "odcs-json-schema-v3.1.0.json"

SAMPLE_PRODUCTS = 13
SAMPLE_PORTS = 17


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
    if not STANDARDS.is_dir():  # a user's clone has no ../shared; CI has it
        pytest.skip(f"skipped: the ODPS/ODCS schemas are not at {STANDARDS} (../shared beside the clone, as CI has it)")
    return {"odps": validator(ODPS_SCHEMA), "odcs": validator(ODCS_SCHEMA)}


def problems(validators, kind: str, document: dict) -> list[str]:
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
    for kind in ("odps", "odcs"):
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
            assert (contract["apiVersion"], contract["kind"]) == ("v3.1.0", "DataContract")
            assert contract["id"] == f"{product_id}.{port.name}"
            assert contract["dataProduct"] == product_id and contract["domain"] == manifest.domain
            assert contract["version"] == (port.contract.version or manifest.version)
            [table] = contract["schema"]
            assert table["physicalName"] == f"{manifest.domain}.{manifest.product}__{port.name}"
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
    assert server["format"] == "iceberg"
    assert server["location"].startswith("file://") and server["location"].endswith("/crm/customers__customer_contacts")


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
    assert {"property": "frequency", "value": 26, "unit": "hours"}.items() <= customers["slaProperties"][0].items()
    [table] = customers["schema"]
    comment = next(p for p in table["properties"] if p["name"] == "c_comment")
    [rule] = comment["quality"]
    assert (rule["metric"], rule["mustBeLessOrEqualTo"], rule["unit"], rule["severity"]) == ("nullValues", 5, "percent", "warning")
    rules = {r["name"]: r for r in table["quality"]}
    assert rules["volume_rows"]["metric"] == "rowCount" and rules["volume_rows"]["mustBeGreaterOrEqualTo"] == 1
    assert rules["volume_rows"]["severity"] == "error"
    assert rules["volume_change"]["customProperties"] == [{"property": "maxRelativeChange", "value": 0.2}]
    assert rules["primary_key"]["arguments"] == {"properties": ["c_custkey"]} and rules["primary_key"]["mustBe"] == 0


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
    assert {"property": "freshnessTimezone", "value": "Europe/Paris"} in contract["customProperties"]
    rules = {r["name"]: r for r in contract["schema"][0]["quality"]}
    assert rules["volume_rows"]["mustBe"] == 25
    assert {"property": "inputPort", "value": "sales.orders.orders"} in rules["completeness_rows_vs_input"]["customProperties"]
    assert rules["timeliness"]["severity"] == "error"
    columns = {p["name"]: p for p in contract["schema"][0]["properties"]}
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
    assert [(s["property"], s["value"], s["unit"]) for s in contract["slaProperties"]] == [
        ("frequency", 90, "minutes"), ("frequencyWarning", 1, "hours")]
    assert [r["role"] for r in contract["roles"]] == ["crm"]
    assert "internal" in contract["description"]["limitations"]
    assert next(r for r in contract["schema"][0]["quality"] if r["name"] == "volume_rows")["mustBeLessOrEqualTo"] == 10


def test_no_location_when_another_catalog_is_configured(registry, validators, monkeypatch):
    monkeypatch.setenv("PYICEBERG_CATALOG__MESH__URI", "http://catalog.example.com")
    manifest = registry.products["crm.customers"]
    contract = export.odcs_contract(manifest, manifest.output_ports[0], registry)
    assert "location" not in contract["servers"][0]
    assert problems(validators, "odcs", contract) == []


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

    assert any("'status' is a required property" in p for p in broken("odcs", contract, lambda d: d.pop("status")))
    assert broken("odcs", contract, lambda d: d.update(apiVersion="v9.9.9"))
    assert broken("odcs", contract, lambda d: d["schema"][0]["properties"][0].update(logicalType="varchar"))
    assert broken("odcs", contract, lambda d: d["schema"][0]["properties"][0].update(nullable=False))  # not an ODCS field
    assert broken("odcs", contract, lambda d: d["servers"][0].update(type="iceberg"))
    assert broken("odcs", contract, lambda d: d["schema"][0]["properties"][0].update(
        logicalTypeOptions={"format": "f64"}))  # integers take i8..i128
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
                         f"output-port contracts (ODCS v3.1.0) to {out}")
    assert str(out / "odcs" / "crm.customers.customer_contacts.odcs.yaml") in lines
    assert (home / "dagster" / "dagster.yaml").is_file()  # the command prepared the mesh home it was given
    location = load(out / "odcs" / "crm.customers.customers.odcs.yaml")["servers"][0]["location"]
    assert location == f"file://{home.resolve()}/iceberg/warehouse/crm/customers__customers"


def test_export_requires_out():
    root = argparse.ArgumentParser(prog="mesh")
    export.add_command(root.add_subparsers(dest="command", required=True), "help")
    with contextlib.redirect_stderr(io.StringIO()) as err, pytest.raises(SystemExit):
        root.parse_args(["export"])
    assert "--out" in err.getvalue()
