"""`datacontract test` (datacontract-cli, pinned) on the exported ODCS contracts against the Iceberg tables the mesh
serves: every contract of the sample mesh passes, and data that breaks what publish enforces fails exactly the rules
that say so.

The CLI runs as a user runs it, reading each table through the contract's iceberg server (the mesh's SQL catalog;
DATACONTRACT_ICEBERG_CATALOG_TYPE=sql, as the README says).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
import yaml

from platform_resources import export, ports
from platform_resources.registry import load_registry
from platform_resources.sql_sandbox import identifier

DATACONTRACT = Path(sys.executable).parent / "datacontract"


def datacontract_test(contract: Path) -> tuple[int, list[dict]]:
    """`datacontract test CONTRACT`: its exit code and its checks (JSON results)."""
    results = contract.with_suffix(".results.json")
    run = subprocess.run([str(DATACONTRACT), "test", str(contract), "--output-format", "json", "--output", str(results)],
                         env={**os.environ, "DATACONTRACT_ICEBERG_CATALOG_TYPE": "sql"}, capture_output=True, text=True,
                         timeout=600, check=False)
    assert results.is_file(), f"datacontract test wrote no results for {contract.name}:\n{run.stdout}\n{run.stderr}"
    return run.returncode, json.loads(results.read_text())["checks"]


def label(check: dict) -> str:
    """A check as the contract names it: its quality rule's name, else its type and column."""
    if check.get("qualityDefinition"):
        return yaml.safe_load(check["qualityDefinition"])["name"]
    return f"{check['type']}:{check['field']}"


def not_passed(checks: list[dict]) -> dict[str, str]:
    return {label(c): f"{c['result']}: {c.get('reason')}" for c in checks if c["result"] != "passed"}


# --- the sample mesh ---------------------------------------------------------------------------------------


def test_datacontract_test_passes_on_every_exported_contract(mesh_run, tmp_path):
    registry = load_registry()
    export.export_all(registry, tmp_path)
    contracts = sorted((tmp_path / export.ODCS_FOLDER).glob(f"*{export.ODCS_SUFFIX}"))
    assert len(contracts) == len(registry.port_ids())
    failures, kinds, total = {}, set(), 0
    for contract in contracts:
        code, checks = datacontract_test(contract)
        total += len(checks)
        kinds |= {c["type"] for c in checks}
        if code != 0 or not_passed(checks) or not checks:
            failures[contract.name] = (code, not_passed(checks))
    assert failures == {}
    # Every kind of rule the export writes ran somewhere: publish's checks, the SLOs, the schema.
    assert {"field_is_present", "field_type", "field_required", "field_primary_key_unique", "primary_key_unique",
            "model_duplicate_values", "model_quality_sql", "field_quality_sql", "field_invalid_values",
            "field_null_values", "row_count", "servicelevel_freshness"} <= kinds, kinds
    assert total > 18 * 10


def test_the_served_tables_mark_the_contract_required_columns_and_the_key(mesh_run):
    """What the contract says is in the Iceberg table too: required fields, and the key as identifier fields."""
    registry = load_registry()
    for port_id in registry.port_ids():
        manifest, port = registry.port(port_id)
        schema = ports.catalog().load_table(ports.table_identifier(port_id)).schema()
        key = set(port.contract.primary_key)
        assert {f.name for f in schema.fields if f.required} == \
            {c.name for c in port.contract.columns if not c.nullable} | key | {ports.PROCESSING_TIME_COLUMN}, port_id
        assert schema.identifier_field_names() == key, port_id


# --- data that breaks the rules ------------------------------------------------------------------------------

_VALUES = {"varchar": "x", "bigint": 1, "integer": 1, "double": 1.0}


def _table(port, rows: list[dict]) -> pa.Table:
    """Rows typed as the port's contract says (columns left out of a row get a harmless value)."""
    columns = port.contract.columns
    con = duckdb.connect()
    con.execute("create table t (" + ", ".join(f"{identifier(c.name)} {c.type}" for c in columns) + ")")
    default = {c.name: Decimal(1) if c.type.startswith("decimal") else _VALUES[c.type] for c in columns}
    con.executemany(f"insert into t values ({', '.join('?' for _ in columns)})",
                    [[{**default, **row}[c.name] for c in columns] for row in rows])
    return con.table("t").to_arrow_table()


def _serve_and_test(registry, port_id: str, rows: list[dict], tmp_path: Path) -> dict[str, str]:
    """Publish the rows as the port (no runtime check in between), export its contract, and datacontract-test it."""
    product_id, port_name = port_id.rsplit(".", 1)
    manifest = registry.products[product_id]
    port = next(p for p in manifest.output_ports if p.name == port_name)
    ports.publish(port_id, _table(port, rows))
    contract = tmp_path / f"{port_id}{export.ODCS_SUFFIX}"
    contract.write_text(yaml.safe_dump(export.odcs_contract(manifest, port, registry), sort_keys=False))
    code, checks = datacontract_test(contract)
    assert code == (1 if not_passed(checks) else 0)
    return not_passed(checks)


@pytest.fixture
def registry(fresh_home):
    return load_registry()


def test_unmasked_values_and_a_duplicate_key_fail_their_rules(registry, tmp_path):
    digest = hashlib.sha256(b"Customer#000000001").hexdigest()
    failed = _serve_and_test(registry, "crm.customers.customer_contacts_masked", [
        {"c_custkey": 1, "c_name_sha256": digest, "c_phone_redacted": "**-***-***-2988"},
        {"c_custkey": 2, "c_name_sha256": "Customer#000000002", "c_phone_redacted": "25-989-741-2988"},  # in clear
        {"c_custkey": 2, "c_name_sha256": digest, "c_phone_redacted": "**-***-***-1234"},  # the key again
    ], tmp_path)
    assert set(failed) == {"masking_c_name_sha256", "masking_c_phone_redacted", "primary_key",
                           "field_primary_key_unique:c_custkey"}, failed


def test_a_row_breaking_a_domain_policy_fails_its_rule(registry, tmp_path):
    failed = _serve_and_test(registry, "finance.pricing_summary.pricing_summary", [
        {"l_returnflag": "A", "l_linestatus": "F"},
        {"l_returnflag": "N", "l_linestatus": "O", "sum_qty": Decimal(-1)},  # FINANCE-001: amounts are not negative
    ], tmp_path)
    assert set(failed) == {"policy_finance_001"}, failed


def test_a_clean_publish_passes(registry, tmp_path):
    assert _serve_and_test(registry, "finance.pricing_summary.pricing_summary",
                           [{"l_returnflag": "A", "l_linestatus": "F"}], tmp_path) == {}
