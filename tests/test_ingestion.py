"""Ingestion reads an operational table in place: a view in the domain's DuckDB over the system's own file, which
only the domain's own connections attach (read-only)."""

from pathlib import Path

import duckdb
import pytest
import yaml

from operational_systems import tpch
from platform_resources import operational
from platform_resources.home import domain_duckdb_path, operational_dir
from platform_resources.ingestion import ingest_table
from platform_resources.registry import load_registry
from platform_resources.staged import StagedRelation

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def systems(fresh_home):
    tpch.generate(operational_dir(), 0.001)
    return fresh_home


def test_an_ingested_table_is_a_view_over_the_operational_system(systems):
    rows = ingest_table("sales", "order_db", "orders")
    with duckdb.connect(str(operational.database("order_db")), read_only=True) as con:
        assert rows == con.execute("select count(*) from orders").fetchone()[0] > 0
    with duckdb.connect(str(domain_duckdb_path("sales")), read_only=True) as con:
        kinds = con.execute("select table_type from information_schema.tables where table_schema = 'order_db' "
                            "and table_name = 'orders'").fetchall()
        assert kinds == [("VIEW",)]  # no copy in the domain's file
        with pytest.raises(duckdb.BinderException, match="operational_order_db"):
            con.execute("select count(*) from order_db.orders")  # read only where the system is attached
        operational.attach(con, ["order_db"])
        assert con.execute("select count(*) from order_db.orders").fetchone()[0] == rows


def test_a_home_with_a_copied_table_gets_the_view(systems):
    path = domain_duckdb_path("sales")
    path.parent.mkdir(parents=True)
    with duckdb.connect(str(path)) as con:  # as ingestion left it before it read in place
        con.execute("create schema order_db")
        con.execute("create table order_db.orders as select 1 as o_orderkey")
    assert ingest_table("sales", "order_db", "orders") > 1


def test_a_missing_system_says_how_to_generate_it(fresh_home):
    with pytest.raises(FileNotFoundError, match=r"operational system 'order_db' has no database at .*mesh run"):
        ingest_table("sales", "order_db", "orders")


def test_a_staged_result_reads_its_systems_and_can_attach_no_other(systems):
    ingest_table("sales", "order_db", "orders")
    staged = StagedRelation(domain_duckdb_path("sales"), "order_db.orders", operational=["order_db"])
    try:
        assert staged.num_rows > 0
        with pytest.raises(duckdb.PermissionException):
            staged.query(f"attach '{operational.database('crm_db')}' as crm")
    finally:
        staged.close()


def test_each_domains_own_dbt_profile_attaches_the_systems_it_ingests(systems):
    """The project's profiles.yml (dbt run by hand) attaches the systems as the platform's connections do."""
    registry = load_registry()
    for domain in sorted({m.domain for m in registry.products.values()}):
        profile = yaml.safe_load((REPO_ROOT / "dbt_projects" / domain / "profiles.yml").read_text())
        output = profile[domain]["outputs"][profile[domain]["target"]]
        attached = {a["alias"]: a["path"] for a in output.get("attach", []) if a.get("read_only")}
        expected = {operational.catalog(s): f"{{{{ env_var('MESH_HOME') }}}}/operational/{s}.duckdb"
                    for s in operational.systems_read(registry.products_of(domain))}
        assert attached == expected, domain
