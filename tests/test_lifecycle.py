"""A product's life cycle (deprecated, dormant, retired) and the processing-time watermark a consumer records per
input, on real registries of small workspaces, real Iceberg ports and a real Dagster run."""

import json
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
import yaml
from dagster import AssetKey, DagsterInstance, materialize
from openlineage.client.event_v2 import Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.serde import Serde
from openlineage_spec import NEEDS_SPEC, validate_event
from workspaces import copy_sample_mesh, make_workspace, product

from platform_resources import access_log, metrics, ports
from platform_resources.access import AccessDenied, PortRetired, read_port
from platform_resources.build import build_domain
from platform_resources.domain_job import DOMAIN_JOB_SUFFIX
from platform_resources.catalog import discovery_document, format_document
from platform_resources.cli import main
from platform_resources.governance.engine import evaluate
from platform_resources.home import domain_duckdb_path
from platform_resources.inputs import consumed_watermarks, load_input_ports
from platform_resources.lifecycle import remove_retired_data
from platform_resources.lineage.facets import MESH_FACET_SCHEMA, port_static_facets, with_watermarks
from platform_resources.manifest import Manifest, load_manifest
from platform_resources.registry import load_registry
from platform_resources.runner import MeshRunSummary, PortOutcome, _not_processed, format_summary

SHOP, BI = "shop/orders.yaml", "bi/revenue.yaml"
UPSTREAM = "shop.orders.main"
FACET_SCHEMA = {MESH_FACET_SCHEMA: Path(__file__).resolve().parent.parent /
                "platform_resources/lineage/schemas/facets/1-0-0/MeshDataProductDatasetFacet.json"}


def mesh(**shop: object) -> dict[str, dict]:
    """shop.orders (with `shop` fields set), read by bi.revenue; shop.orders_v2 as the replacement."""
    return {SHOP: {**product("shop.orders", fresh=True), **shop},
            "shop/orders_v2.yaml": product("shop.orders_v2", fresh=True),
            BI: product("bi.revenue", [UPSTREAM], fresh=True)}


def registry_of(root: Path, manifests: dict[str, dict]):
    return load_registry(make_workspace(root, manifests), published=False)


def findings(registry, policy: str, product_id: str) -> list:
    return [f for f in evaluate(registry).findings if f.policy == policy and f.product == product_id]


def publish_upstream(rows: int = 3) -> ports.PublishResult:
    return ports.publish(UPSTREAM, pa.table({"id": pa.array(range(rows), pa.int64())}))


# --- deprecated ------------------------------------------------------------------------------------------------

DEPRECATED = {"status": "deprecated", "replaced_by": "shop.orders_v2", "deprecation_date": "2030-06-30"}


def test_a_consumer_of_a_deprecated_product_is_warned_with_its_replacement_and_date(tmp_path):
    registry = registry_of(tmp_path, mesh(**DEPRECATED))
    [warning] = findings(registry, "MESH-LIFE-002", "bi.revenue")
    assert warning.severity == "warning"
    assert "shop.orders_v2" in warning.message and "2030-06-30" in warning.message
    assert not findings(registry, "MESH-LIFE-003", "shop.orders")  # the replacement exists and serves


@pytest.mark.parametrize(("replacement", "status", "says"), [
    ("shop.nothing", "active", "no product of the mesh"),
    ("shop.orders_v2", "retired", "retired itself"),
])
def test_a_replacement_must_be_an_existing_product_that_is_not_retired(tmp_path, replacement, status, says):
    manifests = mesh(**{**DEPRECATED, "replaced_by": replacement})
    manifests["shop/orders_v2.yaml"]["status"] = status
    [finding] = findings(registry_of(tmp_path, manifests), "MESH-LIFE-003", "shop.orders")
    assert finding.severity == "error" and says in finding.message and replacement in finding.message


def test_replaced_by_on_an_active_product_is_a_manifest_error_naming_the_field(tmp_path):
    file = tmp_path / "orders.yaml"
    file.write_text(yaml.safe_dump({**product("shop.orders"), "replaced_by": "shop.orders_v2"}))
    with pytest.raises(ValueError) as raised:
        load_manifest(file)
    assert "set 'status: deprecated'" in str(raised.value)


def sample_mesh_with(root: Path, monkeypatch, **parts: object):
    """A copy of the sample mesh with supply.parts changed by `parts`, as this checkout's workspace."""
    workspace = copy_sample_mesh(root)
    file = root / "mesh_code_locations/supply/products/parts.yaml"
    file.write_text(yaml.safe_dump({**yaml.safe_load(file.read_text()), **parts}, sort_keys=False))
    monkeypatch.setenv("MESH_WORKSPACE", str(workspace))
    return load_registry(workspace, published=False)


def test_mesh_list_the_catalog_and_the_ui_show_the_replacement_and_the_date(tmp_path, fresh_home, prepared_dbt,
                                                                             monkeypatch, capsys):
    registry = sample_mesh_with(tmp_path, monkeypatch, status="deprecated", replaced_by="supply.part_suppliers",
                                deprecation_date="2030-06-30")
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    assert "supply.parts  [source-aligned, deprecated" in listed
    assert "deprecated: replaced by supply.part_suppliers, deprecation date 2030-06-30" in listed
    doc = discovery_document(registry, "supply.parts")
    assert (doc["replaced_by"], doc["deprecation_date"]) == ("supply.part_suppliers", "2030-06-30")
    assert "replaced by supply.part_suppliers, deprecation date 2030-06-30" in format_document(doc)
    key = AssetKey(["supply", "parts", "parts"])
    spec = build_domain(registry.domains["supply"], registry).resolve_assets_def(key).specs_by_key[key]
    assert spec.tags["mesh/status"] == "deprecated"
    assert (spec.metadata["mesh/replaced_by"], spec.metadata["mesh/deprecation_date"]) == ("supply.part_suppliers",
                                                                                           "2030-06-30")


# --- dormant ---------------------------------------------------------------------------------------------------

@pytest.fixture
def dormant_parts(tmp_path, fresh_home, prepared_dbt, monkeypatch):
    """The sample mesh with supply.parts dormant, its port published once before."""
    registry = sample_mesh_with(tmp_path, monkeypatch, status="dormant")
    served = ports.publish("supply.parts.parts", pa.table({"p_partkey": pa.array([1, 2], pa.int64())}))
    (fresh_home / "dagster").mkdir(parents=True)
    (fresh_home / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    instance = DagsterInstance.local_temp(str(fresh_home / "dagster"))
    yield registry, build_domain(registry.domains["supply"], registry), instance, served
    instance.dispose()


def test_a_dormant_product_is_not_processed_but_its_port_still_serves(dormant_parts):
    registry, definitions, instance, served = dormant_parts
    regions, nations = AssetKey(["supply", "parts", "parts"]), AssetKey(["supply", "suppliers", "suppliers"])
    port = definitions.resolve_assets_def(regions)
    assert port.automation_conditions_by_key.get(regions) is None  # the daemon leaves it alone
    assert definitions.resolve_assets_def(nations).automation_conditions_by_key[nations] is not None
    assert "dormant" in port.specs_by_key[regions].metadata["mesh/not_processed"]
    job = definitions.resolve_job_def(f"supply{DOMAIN_JOB_SUFFIX}")  # what `mesh run` launches
    selected = job.asset_layer.selected_asset_keys
    assert nations in selected and regions not in selected
    # Materialized anyway (from the UI): a real Dagster run refuses to process it, and the port keeps its version.
    result = materialize([port], instance=instance, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "supply.parts is dormant: not processed" in str(failure.step_failure_data.error.message)
    assert ports.resolve_version("supply.parts.parts").processing_time == served.processing_time
    data, version = read_port(registry, "supply.parts.parts", None)  # still serves
    assert data.num_rows == 2 and version.processing_time == served.processing_time


def test_a_dormant_products_restricted_port_still_enforces_access(tmp_path, fresh_home):
    manifests = mesh(status="dormant")
    manifests[SHOP]["output_ports"][0]["visibility"] = "internal"
    publish_upstream()
    registry = registry_of(tmp_path, manifests)
    with pytest.raises(AccessDenied, match="internal to domain 'shop'"):
        read_port(registry, UPSTREAM, "bi.revenue")
    assert read_port(registry, UPSTREAM, "shop.orders_v2")[0].num_rows == 3  # its own domain still reads it


def test_mesh_run_notes_a_dormant_product_in_its_summary_and_is_still_ok():
    parts = product("supply.parts")
    dormant = Manifest.model_validate({**parts, "status": "dormant"})
    summary = MeshRunSummary(0.01, ports={
        "supply.suppliers.main": PortOutcome("supply.suppliers.main", rows=25),
        "supply.parts.main": PortOutcome("supply.parts.main", note=_not_processed(dormant))})
    text = format_summary(summary)
    assert [line for line in text.splitlines() if line.startswith("supply.parts.main")][0].endswith(
        "dormant: not processed (the port keeps serving its last version)")
    assert "1 ports not processed (dormant or retired)" in text
    assert summary.ok  # on purpose, not a failure
    assert _not_processed(Manifest.model_validate(parts)) is None


def test_a_dormant_consumer_loads_no_inputs(tmp_path, fresh_home):
    manifests = mesh()
    manifests[BI]["status"] = "dormant"
    publish_upstream()
    registry = registry_of(tmp_path, manifests)
    assert load_input_ports(registry, "bi").loaded == []
    assert access_log.entries(port_id=UPSTREAM) == []  # not even a read is logged


# --- retired ---------------------------------------------------------------------------------------------------

RETIRED = {"status": "retired", "replaced_by": "shop.orders_v2", "deprecation_date": "2020-01-31"}


def test_retiring_a_product_that_is_still_read_is_an_error_naming_its_consumers(tmp_path):
    [error] = findings(registry_of(tmp_path, mesh(**RETIRED)), "MESH-LIFE-001", "shop.orders")
    assert error.severity == "error" and "['bi.revenue'] still read it" in error.message


def test_a_retired_port_stops_serving_naming_the_replacement_and_the_denial_is_logged(tmp_path, fresh_home, capsys,
                                                                                      monkeypatch):
    publish_upstream()
    registry = registry_of(tmp_path, mesh(**RETIRED))
    with pytest.raises(PortRetired, match="shop.orders is retired; read its replacement shop.orders_v2 instead"):
        read_port(registry, UPSTREAM, "bi.revenue")
    [denied] = access_log.entries(port_id=UPSTREAM)
    assert not denied.allowed and "retired" in denied.reason and denied.consumer == "bi.revenue"
    # The input port load of its (not yet moved) consumer fails the same way, and its product gets no inputs.
    inputs = load_input_ports(registry, "bi")
    assert inputs.loaded == [] and "read its replacement shop.orders_v2" in inputs.unavailable["bi.revenue"]
    # `mesh read`: a clear error, no traceback.
    monkeypatch.setenv("MESH_WORKSPACE", str(tmp_path / "workspace.yaml"))
    assert main(["read", UPSTREAM]) != 0
    assert "read its replacement shop.orders_v2" in capsys.readouterr().err


def test_cleanup_drops_a_retired_products_tables_once_its_retention_has_passed(tmp_path, fresh_home):
    publish_upstream()
    manifests = mesh(**RETIRED)
    manifests[BI]["input_ports"] = [{"name": "in_0", "from": "shop.orders_v2.main"}]
    manifests[SHOP]["output_ports"][0]["retention"] = {"keep": "30d"}
    registry = registry_of(tmp_path, manifests)
    retired_on = datetime(2020, 1, 31, tzinfo=timezone.utc)
    kept = remove_retired_data(registry, now=retired_on + timedelta(days=29))
    assert kept.dropped == [] and kept.waiting[UPSTREAM] == retired_on + timedelta(days=30)
    assert ports.resolve_version(UPSTREAM)  # still there within its retention
    removed = remove_retired_data(registry, now=retired_on + timedelta(days=31))
    assert removed.dropped == [UPSTREAM]
    with pytest.raises(LookupError):
        ports.resolve_version(UPSTREAM)
    assert remove_retired_data(registry).dropped == []  # nothing left to drop


# --- the processing-time watermark per input -------------------------------------------------------------------

def test_a_consumer_records_the_upstream_version_it_consumed_and_its_lag(tmp_path, fresh_home):
    registry = registry_of(tmp_path, mesh())
    first = publish_upstream()
    metrics.record(UPSTREAM, first.processing_time, {"metrics": {"row_count": 3}})
    load_input_ports(registry, "bi")
    consumed = consumed_watermarks("bi", {"in_0": UPSTREAM})
    assert consumed["in_0"]["port"] == UPSTREAM
    assert consumed["in_0"]["processing_time"] == first.processing_time.isoformat()
    # Two publishes of bi.revenue from the same load: the second re-consumed the same upstream version.
    marks = metrics.mark_reconsumed(consumed, metrics.latest("bi.revenue.main"))
    assert marks["in_0"]["reconsumed"] is False
    metrics.record("bi.revenue.main", datetime(2030, 1, 1, tzinfo=timezone.utc), {"inputs": marks})
    again = metrics.mark_reconsumed(consumed, metrics.latest("bi.revenue.main"))
    assert again["in_0"]["reconsumed"] is True
    assert metrics.input_lags(metrics.latest("bi.revenue.main"))["in_0"]["lag_seconds"] == 0
    # The upstream publishes again; the consumer has not run since: it lags by the difference.
    second = publish_upstream(5)
    metrics.record(UPSTREAM, second.processing_time, {"metrics": {"row_count": 5}})
    lag = metrics.input_lags(metrics.latest("bi.revenue.main"))["in_0"]
    assert lag["upstream_latest"] == second.processing_time.isoformat()
    assert lag["lag_seconds"] == (second.processing_time - first.processing_time).total_seconds() > 0


@NEEDS_SPEC
def test_the_watermark_goes_in_the_data_product_facet_and_the_event_stays_valid(tmp_path):
    registry = registry_of(tmp_path, mesh(**DEPRECATED))
    manifest = registry.products["bi.revenue"]
    marks = {"in_0": {"port": UPSTREAM, "processing_time": "2030-01-01T00:00:00+00:00", "snapshot_id": 42,
                      "reconsumed": True}}
    static = port_static_facets(manifest, manifest.output_ports[0], "bi.revenue.main")
    facets = with_watermarks(static, marks)
    event = json.loads(Serde.to_json(RunEvent(
        eventType=RunState.COMPLETE, eventTime="2030-01-01T00:00:01+00:00", producer="https://mesh.example.com/test",
        run=Run(runId=str(uuid.uuid4())), job=Job(namespace="mesh", name="bi.revenue.main"),
        outputs=[OutputDataset(namespace="mesh", name="bi.revenue.main", facets=facets)])))
    product_facet = event["outputs"][0]["facets"]["mesh_dataProduct"]
    assert product_facet["inputWatermarks"] == [{"inputPort": "in_0", "sourcePort": UPSTREAM,
                                                 "processingTime": "2030-01-01T00:00:00+00:00", "snapshotId": "42",
                                                 "reconsumed": True}]
    assert validate_event(event, FACET_SCHEMA) == []
    deprecated = port_static_facets(registry.products["shop.orders"], registry.products["shop.orders"].output_ports[0],
                                    UPSTREAM)["mesh_dataProduct"]
    assert (deprecated.replacedBy, deprecated.deprecationDate) == ("shop.orders_v2", "2030-06-30")
    assert "inputWatermarks" not in json.loads(Serde.to_json(static["mesh_dataProduct"]))  # no inputs: no key
    assert date.fromisoformat(deprecated.deprecationDate)


def test_a_real_publish_records_each_inputs_watermark_and_mesh_metrics_shows_the_lag(fresh_home, prepared_dbt,
                                                                                       capsys):
    """marketing.customer_distribution published through Dagster from the inputs load_input_ports gave it."""
    registry = load_registry()
    customers = ports.publish("crm.customers.customers", pa.table({"c_custkey": pa.array([1, 2], pa.int64())}))
    orders = ports.publish("sales.orders.orders", pa.table({"o_orderkey": pa.array([1], pa.int64())}))
    load_input_ports(registry, "marketing")
    with duckdb.connect(str(domain_duckdb_path("marketing"))) as con:  # what the dbt model would have built
        con.execute("create or replace table marketing.main.customer_distribution as "
                    "select range::bigint as c_count, 1::bigint as custdist from range(3)")
    (fresh_home / "dagster").mkdir(parents=True)
    (fresh_home / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    instance = DagsterInstance.local_temp(str(fresh_home / "dagster"))
    key = AssetKey(["marketing", "customer_distribution", "customer_distribution"])
    port = build_domain(registry.domains["marketing"], registry).resolve_assets_def(key)
    try:
        for _ in range(2):  # twice from the same load: the second publish re-consumed the same upstream versions
            assert materialize([port], instance=instance).success
        metadata = instance.fetch_materializations(key, limit=1).records[0].asset_materialization.metadata
    finally:
        instance.dispose()
    recorded = metrics.latest("marketing.customer_distribution.customer_distribution")["inputs"]
    assert recorded == metadata["mesh/input_watermarks"].value
    assert {name: (mark["port"], mark["processing_time"], mark["reconsumed"]) for name, mark in recorded.items()} == {
        "customers": ("crm.customers.customers", customers.processing_time.isoformat(), True),
        "orders": ("sales.orders.orders", orders.processing_time.isoformat(), True)}
    newer = ports.publish("sales.orders.orders", pa.table({"o_orderkey": pa.array([1, 2], pa.int64())}))
    metrics.record("sales.orders.orders", newer.processing_time, {"metrics": {"row_count": 2}})
    assert main(["metrics", "marketing.customer_distribution.customer_distribution"]) == 0
    out = capsys.readouterr().out
    lag = (newer.processing_time - orders.processing_time).total_seconds()
    assert f"input orders (sales.orders.orders): consumed processing time {orders.processing_time.isoformat()}" in out
    assert f"lag {lag:.0f} s; the same upstream version as the publish before" in out
