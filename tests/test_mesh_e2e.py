"""The whole sample mesh, materialized through Dagster at scale 0.01, checked against TPC-H's published answers."""

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from dagster import AssetCheckKey, AssetKey, DagsterEventType, DagsterInstance, DagsterRunStatus
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from operational_systems.tpch import connect_with_tpch
from platform_resources import ports
from platform_resources.access import read_port
from platform_resources.governance.runtime import checks_of
from platform_resources.home import operational_dir
from platform_resources.registry import load_registry
from platform_resources.runner import format_summary, run_mesh

SCALE = 0.01
QUERY_OF_PORT = {
    "finance.pricing_summary.pricing_summary": 1,
    "finance.shipping_priority.shipping_priority": 3,
    "finance.local_supplier_volume.local_supplier_volume": 5,
    "finance.returned_items.returned_items": 10,
    "finance.top_supplier.top_supplier": 15,
    "marketing.customer_distribution.customer_distribution": 13,
    "marketing.large_volume_customers.large_volume_customers": 18,
}
SOURCE_ROWS = {  # port -> (operational system, table) it mirrors one row per row
    "crm.customers.customers": ("crm_db", "customer"),
    "sales.orders.orders": ("order_db", "orders"),
    "sales.orders.order_lines": ("order_db", "lineitem"),
    "supply.parts.parts": ("supply_db", "part"),
    "supply.part_suppliers.part_suppliers": ("supply_db", "partsupp"),
    "geography.nations.nations": ("reference_db", "nation"),
}


def normalized(value) -> str:
    if isinstance(value, (int, float, Decimal)):
        return f"{float(value):.2f}"
    try:
        return f"{float(value):.2f}"
    except (TypeError, ValueError):
        return str(value)


def expected_answer(query: int) -> tuple[list[str], list[tuple]]:
    with connect_with_tpch() as con:
        text = con.execute("select answer from tpch_answers() where query_nr = ? and scale_factor = ?",
                           [query, SCALE]).fetchone()[0]
    header, *rows = [line for line in text.splitlines() if line]
    return header.split("|"), sorted(tuple(normalized(v) for v in row.split("|")) for row in rows)


@pytest.fixture(scope="module")
def first_run(mesh_run):
    return mesh_run


def test_every_port_of_every_domain_is_published_with_passing_checks(first_run):
    registry = load_registry()
    assert set(first_run.ports) == set(registry.port_ids()) and len(first_run.ports) == 18
    expected_checks = {}
    for port_id in first_run.ports:
        manifest, port = registry.port(port_id)
        # static policies; runtime policies (contract, row count, masking, local ones); the declared SLOs
        expected_checks[port_id] = 1 + len(checks_of(manifest, port)) + sum(slo is not None for _, slo in port.slos)
    assert expected_checks["crm.customers.customer_contacts_masked"] == 6  # masking checked
    assert expected_checks["finance.pricing_summary.pricing_summary"] == 6  # local policy FINANCE-001
    for port_id, outcome in first_run.ports.items():
        assert outcome.rows and outcome.rows > 0, outcome
        assert (outcome.checks_passed, outcome.checks_failed) == (expected_checks[port_id], 0), outcome
    text = format_summary(first_run)
    assert "14 products, 18/18 ports published" in text
    assert f"checks {sum(expected_checks.values())} passed / 0 failed" in text


@pytest.mark.parametrize("port_id", sorted(QUERY_OF_PORT))
def test_finance_and_marketing_ports_equal_the_tpch_answers(first_run, port_id):
    columns, expected = expected_answer(QUERY_OF_PORT[port_id])
    consumer = port_id.rsplit(".", 1)[0]  # the product reads its own port
    served, _ = read_port(load_registry(), port_id, consumer=consumer)
    assert served.column_names == [*columns, ports.PROCESSING_TIME_COLUMN]
    actual = sorted(tuple(normalized(row[c]) for c in columns) for row in served.to_pylist())
    assert actual == expected


def test_the_monthly_partitions_equal_the_same_query_on_the_whole_orders(first_run):
    import duckdb

    with duckdb.connect(str(operational_dir() / "order_db.duckdb"), read_only=True) as con:
        expected = sorted(con.execute("select cast(date_trunc('month', o_orderdate) as date), count(*), "
                                      "sum(o_totalprice) from orders group by 1").fetchall())
    served, _ = read_port(load_registry(), "finance.monthly_revenue.monthly_revenue", None)
    assert sorted((r["order_month"], r["order_count"], r["revenue"]) for r in served.to_pylist()) == expected
    assert len(expected) == 80  # every month of TPC-H's orders, each its own partition


def test_source_aligned_ports_mirror_the_operational_systems(first_run):
    import duckdb

    for port_id, (system, table) in SOURCE_ROWS.items():
        with duckdb.connect(str(operational_dir() / f"{system}.duckdb"), read_only=True) as con:
            expected = con.execute(f"select count(*) from {table}").fetchone()[0]
        assert first_run.ports[port_id].rows == expected, port_id


def test_runs_are_recorded_in_the_mesh_dagster_instance(first_run):
    instance = DagsterInstance.get()
    for domain, run_id in first_run.run_ids.items():
        run = instance.get_run_by_id(run_id)
        assert run.status == DagsterRunStatus.SUCCESS and run.tags["mesh/domain"] == domain
    for port_id in first_run.ports:
        event = instance.get_latest_materialization_event(AssetKey(port_id.split(".")))
        metadata = event.asset_materialization.metadata
        assert metadata["dagster/row_count"].value == first_run.ports[port_id].rows


def test_each_check_of_a_run_is_one_execution_resolved_by_its_evaluation(first_run):
    """A partitioned domain's run covers 80 months: its checks, which evaluate once per publish, are still planned
    once, and that planned execution is the one the evaluation completes (platform_resources.dagster_fixes)."""
    instance = DagsterInstance.get()
    for domain in ("sales", "finance", "crm"):
        run_id = first_run.run_ids[domain]
        planned = [e.event_log_entry.dagster_event.asset_check_planned_data for e in instance.get_records_for_run(
            run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED).records]
        assert planned and all(p.partitions_subset is None for p in planned), domain
        for check in planned:
            key = AssetCheckKey(check.asset_key, check.check_name)
            executions = [r for r in instance.event_log_storage.get_asset_check_execution_history(key, limit=500)
                          if r.run_id == run_id]
            assert [r.status for r in executions] == [AssetCheckExecutionRecordStatus.SUCCEEDED], (domain, key)


def test_restricted_port_read_from_the_cli_is_denied_and_public_ports_are_served(first_run):
    mesh = str(Path(sys.executable).parent / "mesh")
    denied = subprocess.run([mesh, "read", "crm.customers.customer_contacts"], capture_output=True, text=True)
    assert denied.returncode == 2 and "policy: crm.customers.customer_contacts is restricted" in denied.stderr
    assert "Customer#" not in denied.stdout
    # The denial is in the access log, before any version was resolved; so is every allowed read.
    log = subprocess.run([mesh, "access-log", "--port", "crm.customers.customer_contacts", "--json"],
                         capture_output=True, text=True)
    entries = json.loads(log.stdout)
    assert entries[0]["consumer"] == "anonymous" and not entries[0]["allowed"]
    assert entries[0]["processing_time"] is None and "is restricted" in entries[0]["reason"]
    served = ports.resolve_version("crm.customers.customer_contacts").processing_time.isoformat()
    assert {(e["consumer"], e["processing_time"]) for e in entries if e["allowed"]} >= {
        ("finance.returned_items", served), ("marketing.large_volume_customers", served)}
    served = subprocess.run([mesh, "read", "finance.pricing_summary.pricing_summary", "--format", "json"],
                            capture_output=True, text=True)
    assert served.returncode == 0, served.stderr
    assert len(json.loads(served.stdout)) == 4


def test_running_again_publishes_a_new_processing_time_and_the_old_data_stays_readable(first_run):
    second = run_mesh(SCALE, log=lambda *_: None)
    assert second.ok, format_summary(second)
    for port_id, outcome in second.ports.items():
        assert outcome.processing_time > first_run.ports[port_id].processing_time
        history = ports.versions(port_id)
        assert len(history) >= 2
        # As of the first run's processing time, the port serves exactly what the first run published.
        before = ports.resolve_version(port_id, history[-2].processing_time)
        assert before.snapshot_id == history[-2].snapshot_id != history[-1].snapshot_id
        assert ports.scan_version(port_id, before).num_rows == first_run.ports[port_id].rows


def test_a_contract_violation_blocks_the_publish_and_keeps_the_previous_snapshot(fresh_home, prepared_dbt):
    import duckdb

    good = run_mesh(SCALE, domains=["crm"], workers=1, log=lambda *_: None)  # one run at a time
    assert good.ok, format_summary(good)
    served_before = ports.resolve_version("crm.customers.customers")
    # The CRM system starts to hold a duplicate customer key.
    with duckdb.connect(str(operational_dir() / "crm_db.duckdb")) as con:
        con.execute("insert into customer select * from customer where c_custkey = 1")

    bad = run_mesh(SCALE, domains=["crm"], log=lambda *_: None)
    assert not bad.ok
    outcome = bad.ports["crm.customers.customers"]
    assert outcome.rows is None and outcome.checks_failed == 1 and outcome.checks_passed == 4  # no SLO run
    assert "primary_key: 1 duplicated key values" in outcome.error
    assert "keeps serving its previous version" in outcome.error
    assert "NOT PUBLISHED" in format_summary(bad)
    # The port still serves the last good snapshot, unchanged.
    served_after = ports.resolve_version("crm.customers.customers")
    assert served_after == served_before
    assert ports.scan_version("crm.customers.customers", served_after).num_rows == good.ports["crm.customers.customers"].rows
    # The failure is visible in Dagster: the run failed and the check evaluation is recorded as failed.
    instance = DagsterInstance.get()
    assert instance.get_run_by_id(bad.run_ids["crm"]).status == DagsterRunStatus.FAILURE
    evaluations = [e for e in instance.all_logs(bad.run_ids["crm"]) if e.dagster_event and
                   e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"]
    failed = {(tuple(e.dagster_event.event_specific_data.asset_key.path), e.dagster_event.event_specific_data.check_name)
              for e in evaluations if not e.dagster_event.event_specific_data.passed}
    assert (("crm", "customers", "customers"), "primary_key") in failed
    # Lineage reports the failed publish: a FAIL event with the error message, and the check results.
    events = [json.loads(line) for line in (fresh_home / "lineage" / "events.jsonl").read_text().splitlines()]
    fail = [e for e in events if e.get("eventType") == "FAIL" and e["job"]["name"] == "crm.customers.customers"]
    assert len(fail) == 1
    assert "primary_key: 1 duplicated key values" in fail[0]["run"]["facets"]["errorMessage"]["message"]
    assertions = fail[0]["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"]  # of the staged table
    assert {(a["assertion"], a["success"]) for a in assertions} == {
        ("contract_schema", True), ("primary_key", False), ("not_null_columns", True), ("row_count", True)}


def test_an_slo_breach_is_a_failed_asset_check_but_the_port_still_publishes(fresh_home, prepared_dbt):
    import duckdb

    assert run_mesh(SCALE, domains=["crm"], log=lambda *_: None).ok
    # A tenth of the CRM's comments go missing: crm.customers.customers wants 95 % (severity warning).
    with duckdb.connect(str(operational_dir() / "crm_db.duckdb")) as con:
        con.execute("update customer set c_comment = null where c_custkey % 10 = 0")
    breached = run_mesh(SCALE, domains=["crm"], log=lambda *_: None)
    outcome = breached.ports["crm.customers.customers"]
    assert outcome.rows == 1500 and outcome.error is None  # SLOs report, they do not block
    assert outcome.checks_failed == 1
    instance = DagsterInstance.get()
    evaluations = [e.dagster_event.event_specific_data for e in instance.all_logs(breached.run_ids["crm"])
                   if e.dagster_event and e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"]
    completeness = next(e for e in evaluations if e.check_name == "slo_completeness")
    assert not completeness.passed and completeness.severity.value == "WARN"
    from platform_resources import metrics

    history = metrics.history("crm.customers.customers")
    assert len(history) == 2
    assert history[-1]["metrics"]["completeness"]["c_comment"] == pytest.approx(0.9)
    assert [r["passed"] for r in history[-1]["slos"] if r["name"] == "slo_completeness"] == [False]
