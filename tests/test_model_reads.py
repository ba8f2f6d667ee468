"""A product's dbt models read only the inputs it declared: what the SQL really reads, not what source() admits.

Finance's DuckDB holds crm's restricted contacts for the approved finance.returned_items. Three other finance
models try to reach them (or crm's files) in three ways; none of them publishes, and the domain's other product
still does.
"""

from pathlib import Path

import duckdb
import pytest
from workspaces import copy_sample_mesh

from platform_resources import access_log, dbt, dbt_prepare, ports, sql_sandbox
from platform_resources.governance.engine import evaluate
from platform_resources.governance.model_reads import reads_of
from platform_resources.registry import load_registry
from platform_resources.runner import format_summary, run_mesh

CONTACTS = "crm_customers.customer_contacts"
LEAKS = {  # model -> the read appended to its SQL
    # A raw relation, visible in the model as written: mesh validate finds it.
    "top_supplier": f"where exists (select 1 from {CONTACTS})",
    # The same relation behind Jinja the static check cannot render: found in the SQL dbt compiled, at publish.
    "pricing_summary": '''where exists (select 1 from {{ adapter.quote("crm_customers") }}.customer_contacts)''',
    # crm's Iceberg files read by path: the sandboxed DuckDB of the dbt run refuses to open them.
    "shipping_priority": '''where exists (select 1 from read_parquet('{{ env_var("MESH_HOME") }}/iceberg/warehouse/crm/*/data/*.parquet'))''',
}


def _append_read(model: Path, read: str) -> None:
    sql = model.read_text().rstrip()
    # Each of these models ends with a query we can wrap: select * from (<model>) <read>.
    model.write_text(f"select * from (\n{sql}\n) as original\n{read}\n")


@pytest.fixture
def leaking_workspace(tmp_path, monkeypatch, fresh_home) -> Path:
    workspace = copy_sample_mesh(tmp_path)
    for model, read in LEAKS.items():
        _append_read(tmp_path / "dbt_projects/finance/models" / f"{model}.sql", read)
    monkeypatch.setenv("MESH_WORKSPACE", str(workspace))
    return workspace


def test_sql_reading_undeclared_inputs_or_files_never_publishes(leaking_workspace, fresh_home):
    registry = load_registry(leaking_workspace)
    dbt_prepare.prepare(registry, ["finance"])
    # Statically: the raw relation in top_supplier is a finding with the product's file; the Jinja-hidden read is not
    # visible before dbt compiles it.
    static = [f for f in evaluate(registry, asset_graphs={"finance": {}}).findings if f.policy == "MESH-ACC-003"]
    assert {f.product for f in static} == {"finance.top_supplier"}, static
    assert CONTACTS in static[0].message and static[0].file.endswith("top_supplier.yaml")

    progress: list[str] = []
    summary = run_mesh(0.01, workers=2, log=progress.append)
    text = format_summary(summary)
    # Progress as it happens: a line per step as it starts, per port as it publishes or fails.
    assert any(line.split() == ["finance", "dbt", "build", "started"] for line in progress), progress
    assert any("finance.returned_items.returned_items  published 20 rows" in line for line in progress), progress
    assert any("finance.pricing_summary.pricing_summary  failed" in line for line in progress), progress
    outcomes = {port_id.split(".")[1]: outcome for port_id, outcome in summary.ports.items()
                if port_id.startswith("finance.")}
    assert "MESH-ACC-003" in outcomes["top_supplier"].error and CONTACTS in outcomes["top_supplier"].error, text
    assert "MESH-ACC-003" in outcomes["pricing_summary"].error, text
    assert '"crm_customers".customer_contacts' in outcomes["pricing_summary"].error, text
    assert "Permission Error" in outcomes["shipping_priority"].error, text
    assert "shipping_priority failed" in outcomes["shipping_priority"].error, text
    for leaked in LEAKS:
        assert outcomes[leaked].rows is None
        with pytest.raises(LookupError):
            ports.resolve_version(f"finance.{leaked}.{leaked}")
    # The reader of every input port load is established by the run's code location, and logged so.
    loads = [e for e in access_log.entries(port_id="crm.customers.customer_contacts")
             if e.consumer.startswith("finance.")]
    assert loads and all("[reader: a run of code location finance]" in e.reason for e in loads), loads
    # The domain's other products publish: one model's failure stops only what it feeds.
    assert outcomes["returned_items"].rows == 20 and outcomes["local_supplier_volume"].rows, text
    assert not summary.failed_domains, text


def test_the_dbt_sandbox_opens_only_the_files_it_was_given(tmp_path):
    allowed, secret = tmp_path / "allowed.parquet", tmp_path / "secret.parquet"
    with duckdb.connect() as setup:
        setup.execute(f"copy (select 1 as x) to '{allowed}'")
        setup.execute(f"copy (select 2 as x) to '{secret}'")
    with duckdb.connect(str(tmp_path / "domain.duckdb")) as con:
        sql_sandbox.lock_down(con, [str(allowed)])
        assert con.execute(f"select x from read_parquet('{allowed}')").fetchone() == (1,)
        con.execute("create table own as select 3 as x")  # the domain's own database stays writable
        for forbidden in (f"select * from read_parquet('{secret}')", f"copy own to '{tmp_path}/out.csv'",
                          f"attach '{tmp_path}/other.duckdb'", "select * from read_csv('/etc/passwd')"):
            with pytest.raises(duckdb.PermissionException):
                con.execute(forbidden)
        with pytest.raises(duckdb.Error, match="lock"):
            con.execute("set enable_external_access = true")


@pytest.mark.parametrize(("sql", "reads"), [
    ("select * from a.b join c on true", {("a", "b"), ("main", "c")}),
    ("with c as (select 1) select * from c", set()),
    ('select * from "finance"."main"."m"', {("main", "m")}),
    ("select * from other_db.main.m", {None}),
    ("select * from read_parquet('x.parquet')", {None}),
    ("select (select count(*) from glob('*')) as n", {None}),
    ("select * from query_table('crm_customers.customer_contacts')", {None}),  # a relation by name, in a string
    ("select * from query('select * from crm_customers.customer_contacts')", {None}),
    ("select * from duckdb_tables()", {None}),
    ("select * from range(3)", set()),  # rows made of values are fine
    ("select * from (selec 1", {None}),
])
def test_reads_of_names_every_relation_and_file_function(sql, reads):
    assert {r.relation for r in reads_of("m", sql, "finance")} == reads


def test_a_deleted_model_makes_the_prepared_project_stale(tmp_path, fresh_home):
    """The prepared dbt manifest follows the project's files: a model removed is no asset any more."""
    workspace = copy_sample_mesh(tmp_path)
    registry = load_registry(workspace)
    geography = registry.domains["geography"]
    dbt_prepare.prepare(registry, ["geography"])
    assert dbt_prepare.is_prepared(geography)
    (geography.dbt_project / "models/staging/stg_region.sql").unlink()
    assert not dbt_prepare.is_prepared(geography)


def test_a_broken_manifest_in_a_fresh_clone_leaves_the_domains_other_products_buildable(tmp_path, fresh_home):
    """No generated sources yet (a fresh clone), and one finance manifest does not load: dbt still parses the
    project, and the domain's other products keep their models."""
    from platform_resources.build import build_domain

    workspace = copy_sample_mesh(tmp_path)
    (tmp_path / "dbt_projects/finance" / dbt_prepare.GENERATED_SOURCES).unlink(missing_ok=True)
    (tmp_path / "mesh_code_locations/finance/products/top_supplier.yaml").write_text("id: [unclosed\n")
    registry = load_registry(workspace)
    assert "finance.top_supplier" not in registry.products  # the only reader of supply_suppliers.supplier_contacts
    dbt_prepare.prepare(registry, ["finance"])
    graph = build_domain(registry.domains["finance"], registry).resolve_asset_graph()
    assert graph.get(dbt.internal_key("finance", "returned_items")).is_materializable
