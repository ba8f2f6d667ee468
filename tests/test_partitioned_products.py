"""A daily partitioned product, end to end: `mesh run --partitions` backfills a week through real Dagster runs
(single-run backfills of the domain's job), each partition equals the same query on the whole operational data,
a partition republished alone keeps the others as they were, and a monthly consumer loads only its month."""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
import yaml
from dagster import AssetKey, DagsterInstance
from workspaces import copy_sample_mesh

from platform_resources import ports
from platform_resources.access import read_port
from platform_resources.home import domain_duckdb_path, operational_dir
from platform_resources.inputs import load_input_ports
from platform_resources.partitions import window_of_text
from platform_resources.registry import load_registry
from platform_resources.runner import format_summary, run_mesh

PORT = "sales.orders.orders"
WEEK = [(date(1995, 3, 1) + timedelta(days=i)).isoformat() for i in range(7)]


@pytest.fixture(scope="module")
def daily_mesh(tmp_path_factory):
    """The sample mesh with sales.orders.orders partitioned by day, in a home of its own, a week backfilled."""
    root = tmp_path_factory.mktemp("daily")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MESH_HOME", str(root / "home"))
        env.setenv("DAGSTER_HOME", str(root / "home" / "dagster"))
        workspace = copy_sample_mesh(root)
        env.setenv("MESH_WORKSPACE", str(workspace))
        file = root / "mesh_code_locations/sales/products/orders.yaml"
        manifest = yaml.safe_load(file.read_text())
        manifest["output_ports"][0]["partitioning"] = {"by": "day", "start": "1992-01-01", "end": "1998-08-03"}
        file.write_text(yaml.safe_dump(manifest, sort_keys=False))
        lines: list[str] = []
        summary = run_mesh(0.01, ["sales"], partitions=f"{WEEK[0]}..{WEEK[-1]}", log=lines.append)
        assert summary.ok, format_summary(summary)
        yield load_registry(), summary, lines


def _operational_orders(day: str) -> set[tuple]:
    with duckdb.connect(str(operational_dir() / "order_db.duckdb"), read_only=True) as con:
        return set(con.execute("select o_orderkey, o_custkey, o_totalprice, o_orderdate from orders "
                               "where o_orderdate = cast(? as date)", [day]).fetchall())


def test_a_backfilled_week_equals_the_same_query_on_the_whole_data(daily_mesh):
    registry, summary, lines = daily_mesh
    assert sum("sales.orders.orders  published" in line for line in lines) == 1  # one line, not one per partition
    for day in WEEK:
        served, _ = read_port(registry, PORT, None, partition=day)
        rows = {(r["o_orderkey"], r["o_custkey"], r["o_totalprice"], r["o_orderdate"]) for r in served.to_pylist()}
        assert rows and rows == _operational_orders(day), day
    everything, _ = read_port(registry, PORT, None)
    assert sorted({r["o_orderdate"].isoformat() for r in everything.to_pylist()}) == WEEK  # nothing but the week
    assert summary.ports[PORT].rows == everything.num_rows
    assert f"published partitions {WEEK[0]}..{WEEK[-1]} (7 partitions), {everything.num_rows:,} rows served" \
        in format_summary(summary)
    # The other port of the product is not partitioned: it published whole in the same run.
    assert summary.ports["sales.orders.order_lines"].rows > everything.num_rows
    instance = DagsterInstance.get()
    assert sorted(instance.get_materialized_partitions(AssetKey(["sales", "orders", "orders"]))) == WEEK
    instance.dispose()


def test_a_partition_republished_alone_keeps_the_others_and_their_history(daily_mesh):
    registry, _, _ = daily_mesh
    before = {r["o_orderdate"].isoformat(): r["_processing_time"] for r in read_port(registry, PORT, None)[0].to_pylist()}
    summary = run_mesh(0.01, ["sales"], partitions=WEEK[3], log=lambda *_: None)
    assert summary.ok, format_summary(summary)
    after = {r["o_orderdate"].isoformat(): r["_processing_time"] for r in read_port(registry, PORT, None)[0].to_pylist()}
    assert after[WEEK[3]] > before[WEEK[3]]
    assert {d: t for d, t in after.items() if d != WEEK[3]} == {d: t for d, t in before.items() if d != WEEK[3]}
    # As of the backfill, the day reads as the backfill served it.
    then, _ = read_port(registry, PORT, None, as_of=before[WEEK[3]], partition=WEEK[3])
    assert {r["_processing_time"] for r in then.to_pylist()} == {before[WEEK[3]]}
    with pytest.raises(ValueError, match="holds no partition of the port"):
        run_mesh(0.01, ["sales"], partitions="2001-01-01", log=lambda *_: None)


def test_a_monthly_consumer_loads_only_the_days_of_its_month(daily_mesh):
    registry, _, _ = daily_mesh
    consumer = registry.products["finance.monthly_revenue"].output_ports[0]
    loaded = load_input_ports(registry, "finance", {PORT}, window_of_text(consumer, "1995-03")).loaded
    assert [p.port_id for p in loaded] == [PORT]
    assert len(loaded[0].files) == len(WEEK)  # one file per daily partition of March, and no other file
    assert loaded[0].rows == sum(len(_operational_orders(day)) for day in WEEK)
    with duckdb.connect(str(domain_duckdb_path("finance")), read_only=True) as con:  # the port's columns, no folder's
        columns = [c[0] for c in con.execute(f"select * from {loaded[0].relation} limit 0").description]
    port = registry.products["sales.orders"].output_ports[0]
    assert columns == [c.name for c in port.contract.columns] + [ports.PROCESSING_TIME_COLUMN]
    april = load_input_ports(registry, "finance", {PORT}, window_of_text(consumer, "1995-04")).loaded
    assert (april[0].rows, april[0].files) == (0, ())
    march_days = window_of_text(registry.products["sales.orders"].output_ports[0], "1995-03")  # the 31 daily keys
    assert ports.scan_version(PORT, ports.resolve_version(PORT), window=march_days).num_rows == loaded[0].rows


BACKFILL_TIMEOUT_SECONDS = 300
BACKFILL = ["1995-03-08", "1995-03-09", "1995-03-10"]
_LAUNCH_BACKFILL = """mutation Backfill($names: [String!], $keys: [AssetKeyInput!]) {
  launchPartitionBackfill(backfillParams: {partitionNames: $names, assetSelection: $keys}) {
    __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } ... on InvalidSubsetError { message }
  }
}"""


def test_a_backfill_launched_as_the_ui_does_runs_in_the_daemon(daily_mesh, tmp_path):
    """The UI's backfill dialog sends launchPartitionBackfill; the daemon runs it (one run: single-run backfills)."""
    registry, _, _ = daily_mesh
    workspace = Path(os.environ["MESH_WORKSPACE"])
    bin_dir = Path(sys.executable).parent
    keys = [{"path": ["sales", "internal", "stg_orders"]}, {"path": ["sales", "internal", "orders"]},
            {"path": ["sales", "orders", "orders"]}]
    answer = tmp_path / "answer.json"
    launched = subprocess.run([str(bin_dir / "dagster-graphql"), "-w", str(workspace), "-t", _LAUNCH_BACKFILL,
                               "-v", json.dumps({"names": BACKFILL, "keys": keys}), "-o", str(answer)],
                              cwd=workspace.parent, capture_output=True, text=True, timeout=300, check=False)
    assert answer.exists(), launched.stdout + launched.stderr
    result = json.loads(answer.read_text())["data"]["launchPartitionBackfill"]
    assert result["__typename"] == "LaunchBackfillSuccess", result
    with (tmp_path / "daemon.log").open("w") as log:
        daemon = subprocess.Popen([str(bin_dir / "dagster-daemon"), "run", "-w", str(workspace)], cwd=workspace.parent,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    instance = DagsterInstance.get()
    try:
        started = time.monotonic()
        while time.monotonic() - started < BACKFILL_TIMEOUT_SECONDS:
            backfill = instance.get_backfill(result["backfillId"])
            if backfill.status.value != "REQUESTED":
                break
            time.sleep(2)
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)
    assert backfill.status.value == "COMPLETED_SUCCESS", (backfill.status, (tmp_path / "daemon.log").read_text()[-3000:])
    assert set(BACKFILL) <= set(instance.get_materialized_partitions(AssetKey(["sales", "orders", "orders"])))
    instance.dispose()
    for day in BACKFILL:
        served, _ = read_port(registry, PORT, None, partition=day)
        assert {(r["o_orderkey"], r["o_custkey"], r["o_totalprice"], r["o_orderdate"]) for r in served.to_pylist()} \
            == _operational_orders(day)
