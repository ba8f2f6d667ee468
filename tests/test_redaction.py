"""Row values stay out of errors: what DuckDB, dbt and Arrow say about data reaches the run summary, check
descriptions, Dagster's event log and lineage without the values, and with what a person needs to fix it."""

import json
import re
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from dagster import DagsterEvent, DagsterEventType, Failure
from dagster._core.execution.plan.objects import StepFailureData
from dagster._utils.error import serializable_error_info_from_exc_info
from openlineage.client.uuid import generate_new_uuid
from workspaces import copy_sample_mesh

from platform_resources.governance.runtime import run_runtime_checks
from platform_resources.lineage.facets import assertions_facet, publish_facets
from platform_resources.lineage.runs import DagsterRun, JobRun
from platform_resources.manifest import Manifest
from platform_resources.redaction import RedactedError, redact_values, redacted_error
from platform_resources.runner import MeshRunSummary, PortOutcome, _record, format_summary, run_mesh

PHONE = "25-989-741-2988"


def duckdb_error(sql: str) -> duckdb.Error:
    """The error DuckDB raises for `sql` over one customer's row."""
    con = duckdb.connect()
    con.execute("create table customer (c_custkey bigint primary key, c_name varchar, c_phone varchar)")
    con.execute("insert into customer values (1, 'Customer#000000001', ?)", [PHONE])
    try:
        con.execute(sql).fetchall()
    except duckdb.Error as exc:
        return exc
    raise AssertionError(f"{sql} did not fail")


CAST = "select cast(c_phone as integer) from customer"


def test_a_conversion_error_keeps_its_kind_type_and_column_but_not_the_value():
    message = str(duckdb_error(CAST))
    assert PHONE in message  # what DuckDB says
    redacted = redact_values(message)
    assert PHONE not in redacted
    assert redacted.startswith("Conversion Error: Could not convert string <value> to INT32 when casting from "
                               "source column c_phone")
    assert "LINE 1: select cast(c_phone as integer) from customer" in redacted  # the SQL context stays
    with_literal = f"select c_phone = '{PHONE}' or cast(c_phone as integer) > 0 from customer"
    literal = redact_values(str(duckdb_error(with_literal)))
    assert PHONE not in literal and "LINE 1: select c_phone = <value> or cast(c_phone as integer) > <value>" in literal
    assert "^" not in literal  # the caret would point at the wrong place in the shortened line


@pytest.mark.parametrize("sql", [
    "select cast(c_phone as date) from customer",  # "date field value out of range: \"...\""
    "select strptime(c_phone, '%Y-%m-%d') from customer",  # echoes the value on the next line
    "insert into customer values (1, 'x', 'y')",  # Duplicate key "c_custkey: 1"
    "select cast(c_phone as struct(a int)) from customer",  # "with value '...' can't be cast"
    "select c_phone::json from customer",  # "Input: \"...\""
    "select cast(replace(c_phone, '-', '') as bigint) * 1000000000000 from customer",  # overflow names the operands
])
def test_other_data_errors_lose_their_values(sql):
    message = str(duckdb_error(sql))
    redacted = redact_values(message)
    digits = PHONE.replace("-", "")
    assert PHONE not in redacted and digits not in redacted and "c_custkey: 1" not in redacted, redacted
    assert redacted.split(":")[0] == message.split(":")[0]  # the kind of error stays


def test_arrow_errors_lose_their_values():
    with pytest.raises(pa.ArrowInvalid) as raised:
        pa.array([PHONE]).cast(pa.int32())
    redacted = redact_values(f"pyarrow.lib.ArrowInvalid: {raised.value}")
    assert PHONE not in redacted and "as a scalar of type int32" in redacted


def test_errors_that_hold_no_values_and_the_platforms_own_messages_are_left_alone():
    binder = str(duckdb_error("select c_phon from customer"))
    assert redact_values(binder) == binder  # names a column, never a value
    own = "port crm.customers.contacts is built by dbt model 'contacts', which dbt_projects/crm does not have"
    assert redact_values(own) == own


def contacts(policy: str) -> Manifest:
    return Manifest.model_validate({
        "id": "crm.customers", "name": "Customers", "archetype": "source-aligned", "status": "active",
        "version": "1.0.0", "input_ports": [{"name": "system", "operational": "crm_db.customer"}],
        "output_ports": [{"name": "contacts", "visibility": "restricted", "actual_time": "snapshot", "contract": {
            "primary_key": ["c_custkey"], "columns": [
                {"name": "c_custkey", "type": "bigint"},
                {"name": "c_phone", "type": "varchar", "classification": "pii"}]}}],
        "governance": {"policies": [{"id": "CRM-001", "title": "Phones are numbers", "rationale": "Dialling.",
                                     "severity": "error", "rows_satisfy": policy}]},
    })


def staged_contacts() -> pa.Table:
    return pa.table({"c_custkey": pa.array([1], pa.int64()), "c_phone": [PHONE]})


def test_a_runtime_check_that_fails_on_a_value_describes_the_failure_without_it():
    manifest = contacts("cast(c_phone as integer) > 0")
    results = run_runtime_checks(manifest, manifest.output_ports[0], staged_contacts())
    [(_, outcome)] = [(c, o) for c, o in results if c.name == "policy_crm_001"]
    assert not outcome.passed
    assert PHONE not in outcome.summary and PHONE not in json.dumps(outcome.details)
    assert "Conversion Error: Could not convert string <value> to INT32" in outcome.summary
    assert "c_phone" in outcome.summary and "CRM-001" in outcome.summary

    facets = assertions_facet([o for _, o in results])
    descriptions = [a.description for a in facets["dataQualityAssertions"].assertions]
    assert descriptions and not [d for d in descriptions if PHONE in d]


def lineage_events(home: Path) -> list[dict]:
    return [json.loads(line) for line in (home / "lineage" / "events.jsonl").read_text().splitlines()]


def test_the_lineage_fail_event_carries_no_value(fresh_home, tmp_path, monkeypatch):
    for name in ("OPENLINEAGE_URL", "OPENLINEAGE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no openlineage.yml: events go to the mesh home's file
    error = duckdb_error(CAST)
    manifest = contacts("cast(c_phone as integer) > 0")
    checks = [o for _, o in run_runtime_checks(manifest, manifest.output_ports[0], staged_contacts())]
    run = JobRun(DagsterRun("crm", "crm_all_products", str(generate_new_uuid())), "customers.contacts", {},
                 "crm.customers")
    run.fail(error, [("mesh.crm", "crm.main.contacts", {}, assertions_facet(checks))],
             [("mesh.crm", "crm.customers.contacts", publish_facets(checks, None, None, False))])
    run.fail(str(error))  # how dbt's run results report a failed model
    text = json.dumps(lineage_events(fresh_home))
    assert PHONE not in text
    [first, second] = lineage_events(fresh_home)
    facet = first["run"]["facets"]["errorMessage"]
    assert facet["message"].startswith("ConversionException: Conversion Error: Could not convert string <value>")
    assert "ConversionException" in facet["stackTrace"]
    assert second["run"]["facets"]["errorMessage"]["message"].startswith("Conversion Error:")


def test_the_error_dagster_records_and_the_run_summary_carry_no_value():
    error = duckdb_error(CAST)
    safe = redacted_error(error)
    assert isinstance(safe, RedactedError) and PHONE not in str(safe) and "INT32" in str(safe)
    assert safe.__traceback__ is error.__traceback__  # where it failed stays known
    failure = Failure(description=f"dbt failed:\n{error}")
    assert PHONE not in redacted_error(failure).description and isinstance(redacted_error(failure), Failure)
    platform = Failure(description="crm.customers is blocked by policy: owner team 'x' is not a known team")
    assert redacted_error(platform) is platform

    try:
        raise error
    except duckdb.Error:
        info = serializable_error_info_from_exc_info(sys.exc_info())  # what a step failure event holds
    port_id = "crm.customers.contacts"
    summary = MeshRunSummary(0.01, ports={port_id: PortOutcome(port_id)})
    event = DagsterEvent(DagsterEventType.STEP_FAILURE.value, "crm_all_products", step_key="crm__customers__contacts",
                         event_specific_data=StepFailureData(error=info, user_failure_data=None))
    _record(event, "crm", summary)
    text = format_summary(summary)
    assert PHONE not in text and "Could not convert string <value> to INT32" in text


@pytest.fixture
def mesh_with_a_failing_cast(tmp_path, monkeypatch, fresh_home) -> Path:
    """The sample mesh, with crm's contacts model casting the phone number to an integer (it fails on the first)."""
    workspace = copy_sample_mesh(tmp_path)
    model = tmp_path / "dbt_projects" / "crm" / "models" / "customer_contacts.sql"
    model.write_text("select c_custkey, c_name, c_address, cast(c_phone as integer) as c_phone\n"
                     "from {{ ref('stg_customer') }}\n")
    monkeypatch.setenv("MESH_WORKSPACE", str(workspace))
    for name in ("OPENLINEAGE_URL", "OPENLINEAGE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_model_that_fails_on_a_phone_number_leaves_it_nowhere_but_the_data(mesh_with_a_failing_cast, fresh_home):
    summary = run_mesh(0.01, domains=["crm"], log=lambda *_: None)
    text = format_summary(summary)
    error = summary.ports["crm.customers.customer_contacts"].error
    assert error and "customer_contacts" in error and "Conversion Error" in error, text
    assert "INT32" in error and "c_phone" in error, text

    with duckdb.connect(str(fresh_home / "operational" / "crm_db.duckdb"), read_only=True) as con:
        phones = {phone for (phone,) in con.execute("select c_phone from customer").fetchall()}
    assert not _phones_in(text, phones)
    data = {fresh_home / "operational", fresh_home / "domains", fresh_home / "iceberg"}  # where the data lives
    logs = [p for p in fresh_home.rglob("*") if p.is_file() and not any(d in p.parents for d in data)]
    logs += [p for p in (mesh_with_a_failing_cast / "dbt_projects" / "crm" / "target").rglob("*") if p.is_file()]
    assert any("dagster" in p.parts for p in logs) and (fresh_home / "lineage" / "events.jsonl") in logs
    leaks = {str(p): found for p in logs if (found := _phones_in(p.read_bytes().decode("latin-1"), phones))}
    assert not leaks  # Dagster's event log and compute logs, the domain log, lineage, dbt's log and run results


def _phones_in(text: str, phones: set[str]) -> set[str]:
    return set(re.findall(r"\d{2}-\d{3}-\d{3}-\d{4}", text)) & phones
