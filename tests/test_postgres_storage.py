"""The mesh on PostgreSQL: Dagster's run, event-log and schedule storage, the Iceberg SQL catalog and the registry
store, all in one database (MESH_POSTGRES_URL), checked in PostgreSQL itself. Skipped without a local server."""

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from postgres import fresh_database, query

REPO_ROOT = Path(__file__).resolve().parent.parent
DOMAINS = ["geography", "crm", "sales", "marketing"]  # closed under their inputs; crm and geography run at once
PORTS = {
    "geography": ["geography.nations.nations"],
    "crm": ["crm.customers.customers", "crm.customers.customer_contacts", "crm.customers.customer_contacts_masked"],
    "sales": ["sales.orders.orders", "sales.orders.order_lines"],
    "marketing": ["marketing.customer_distribution.customer_distribution",
                  "marketing.large_volume_customers.large_volume_customers"],
}
OTHER_STORAGE = ("PYICEBERG_CATALOG__MESH__URI", "PYICEBERG_CATALOG__MESH__TYPE", "PYICEBERG_CATALOG__MESH__WAREHOUSE",
                 "MESH_REGISTRY_URL", "OPENLINEAGE_URL", "OPENLINEAGE_CONFIG")


@pytest.fixture(scope="module")
def database():
    with fresh_database() as url:
        yield url


@pytest.fixture(scope="module")
def postgres_env(database, tmp_path_factory):
    """A fresh mesh home whose only setting is MESH_POSTGRES_URL: everything else defaults to that database."""
    home = tmp_path_factory.mktemp("postgres_mesh")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MESH_HOME", str(home))
        patch.setenv("DAGSTER_HOME", str(home / "dagster"))
        patch.setenv("MESH_POSTGRES_URL", database)
        patch.setenv("PYICEBERG_HOME", str(home))  # no .pyiceberg.yaml of the user's
        for name in OTHER_STORAGE:
            patch.delenv(name, raising=False)
        yield home


@pytest.fixture(scope="module")
def postgres_run(postgres_env):
    from platform_resources import dbt_prepare
    from platform_resources.home import prepare_home
    from platform_resources.registry import published_registry
    from platform_resources.runner import run_mesh

    prepare_home()
    dbt_prepare.prepare(published_registry(), DOMAINS)  # what the session's prepared_dbt fixture does for the SQLite home
    return run_mesh(0.01, domains=DOMAINS, workers=2, log=lambda *_: None)


def test_the_mesh_home_instance_is_configured_for_postgres_without_the_url_on_disk(postgres_env, database):
    from dagster import DagsterInstance
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    from platform_resources.home import prepare_home

    prepare_home()
    text = (postgres_env / "dagster" / "dagster.yaml").read_text()
    config = yaml.safe_load(text)
    assert config["storage"] == {"postgres": {"postgres_url": {"env": "MESH_POSTGRES_URL"}}}
    assert config["telemetry"] == {"enabled": False}
    assert database not in text
    with DagsterInstance.get() as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)


def test_without_the_url_the_mesh_writes_its_sqlite_config_again(tmp_path, monkeypatch):
    from platform_resources.home import prepare_home

    monkeypatch.setenv("MESH_HOME", str(tmp_path))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.setenv("MESH_POSTGRES_URL", "postgresql+psycopg2://nobody@127.0.0.1:1/none")
    prepare_home()
    assert "postgres" in (tmp_path / "dagster" / "dagster.yaml").read_text()
    monkeypatch.delenv("MESH_POSTGRES_URL")
    prepare_home()
    assert "storage" not in yaml.safe_load((tmp_path / "dagster" / "dagster.yaml").read_text())
    (tmp_path / "dagster" / "dagster.yaml").write_text("telemetry: {enabled: false}\n# mine\n")
    monkeypatch.setenv("MESH_POSTGRES_URL", "postgresql+psycopg2://nobody@127.0.0.1:1/none")
    prepare_home()
    assert (tmp_path / "dagster" / "dagster.yaml").read_text().endswith("# mine\n")  # a hand-written one is kept


def test_a_url_without_the_psycopg2_driver_is_refused_with_the_fix(monkeypatch):
    from platform_resources.home import postgres_url

    monkeypatch.setenv("MESH_POSTGRES_URL", "postgresql://dagster@db:5432/dagster")
    with pytest.raises(ValueError, match=r"write postgresql\+psycopg2://\.\.\. instead of postgresql://"):
        postgres_url()


def test_the_sample_mesh_runs_on_postgres(postgres_run):
    from platform_resources.runner import format_summary

    assert postgres_run.ok, format_summary(postgres_run)
    assert set(postgres_run.run_ids) == set(DOMAINS)


def test_runs_and_materializations_are_in_postgres(postgres_run, database):
    runs = dict(query(database, "select run_id, status from runs"))
    assert {domain: runs.get(run_id) for domain, run_id in postgres_run.run_ids.items()} == dict.fromkeys(DOMAINS, "SUCCESS")
    locations = dict(query(database, "select run_id, value from run_tags where key = 'dagster/code_location'"))
    assert {domain: locations.get(run_id) for domain, run_id in postgres_run.run_ids.items()} == {d: d for d in DOMAINS}
    materialized = {key for (key,) in query(
        database, "select distinct asset_key from event_logs where dagster_event_type = 'ASSET_MATERIALIZATION'")}
    assert {json.dumps(p.split(".")) for d in DOMAINS for p in PORTS[d]} <= materialized  # AssetKey.to_string()


def test_every_published_port_is_an_iceberg_table_in_postgres(postgres_run, postgres_env, database):
    tables = {f"{ns}.{name}": location for ns, name, location in query(
        database, "select table_namespace, table_name, metadata_location from iceberg_tables where catalog_name = 'mesh'")}
    expected = {f"{p.split('.')[0]}.{p.split('.')[1]}__{p.split('.')[2]}" for d in DOMAINS for p in PORTS[d]}
    assert set(tables) == expected
    for location in tables.values():  # the warehouse stays under the mesh home; only the catalog moved
        assert location.startswith(f"file://{postgres_env}/iceberg/warehouse/")
        assert Path(location.removeprefix("file://")).exists()
    assert not (postgres_env / "iceberg" / "catalog.db").exists()


def test_every_domain_published_its_manifests_to_the_registry_in_postgres(postgres_run, postgres_env, database):
    from platform_resources.registry import load_registry

    rows = query(database, "select product_id, domain, error from mesh_published_manifests")
    registry = load_registry(published=False)
    assert {(m.id, d) for d in registry.domains for m in registry.products_of(d)} == {(p, d) for p, d, _ in rows}
    assert all(error is None for *_, error in rows)
    assert not (postgres_env / "registry.sqlite").exists()
    # No SQLite storage of Dagster's (runs.db, schedules.db, index.db): only compute logs stay local files.
    assert not list((postgres_env / "dagster").rglob("*.db"))


def test_mesh_read_of_a_port_returns_its_rows_from_postgres(postgres_run, postgres_env, database):
    from platform_resources.access import read_port
    from platform_resources.registry import load_registry

    mesh = Path(sys.executable).parent / "mesh"
    result = subprocess.run([str(mesh), "read", "geography.nations.nations", "--format", "json"],
                            capture_output=True, text=True, env=os.environ.copy(), timeout=300)
    assert result.returncode == 0, result.stderr
    nations = json.loads(result.stdout)
    assert len(nations) == 25 and {"n_nationkey", "n_name"} <= set(nations[0])
    served, _ = read_port(load_registry(), "marketing.customer_distribution.customer_distribution", consumer=None, limit=5)
    assert served.num_rows == 5


def _publish_at_once(domain: str, barrier, results) -> None:
    """One domain's first publish, in a process of its own: a port's Iceberg table and its manifests."""
    from platform_resources import ports, registry_store

    barrier.wait()
    try:
        ports.publish(f"{domain}.product.port", pa.table({"id": [1, 2, 3]}))
        registry_store.publish(domain, [(f"{domain}.product", f"{domain}/product.yaml", f"id: {domain}.product", None)])
        results.put((domain, "ok"))
    except Exception as exc:  # reported to the test, which names it
        results.put((domain, f"{type(exc).__name__}: {exc}"))


@pytest.mark.parametrize("attempt", [1, 2, 3])
def test_domains_publishing_at_once_into_a_fresh_database_all_succeed(attempt, tmp_path, monkeypatch):
    """Configured the standard way this time: the pyiceberg catalog variables and MESH_REGISTRY_URL.
    Each writer creates the catalog's and the store's tables if missing; without care one of them fails."""
    writers = ["alpha", "beta", "gamma"]
    with fresh_database("mesh_test_race") as url:
        monkeypatch.setenv("MESH_HOME", str(tmp_path))
        monkeypatch.setenv("PYICEBERG_HOME", str(tmp_path))
        monkeypatch.delenv("MESH_POSTGRES_URL", raising=False)
        monkeypatch.setenv("PYICEBERG_CATALOG__MESH__TYPE", "sql")
        monkeypatch.setenv("PYICEBERG_CATALOG__MESH__URI", url)
        monkeypatch.setenv("PYICEBERG_CATALOG__MESH__WAREHOUSE", f"file://{tmp_path}/warehouse")
        monkeypatch.setenv("MESH_REGISTRY_URL", url)
        context = multiprocessing.get_context("spawn")
        barrier, results = context.Barrier(len(writers)), context.Queue()
        processes = [context.Process(target=_publish_at_once, args=(w, barrier, results)) for w in writers]
        for process in processes:
            process.start()
        outcomes = dict(results.get(timeout=120) for _ in writers)
        for process in processes:
            process.join(timeout=60)
        assert outcomes == dict.fromkeys(writers, "ok")
        assert sorted(query(url, "select table_namespace, table_name from iceberg_tables")) == \
            [(w, "product__port") for w in writers]
        assert sorted(query(url, "select domain from mesh_published_manifests")) == [(w,) for w in writers]
