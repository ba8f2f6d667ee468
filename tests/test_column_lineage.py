"""Column lineage of the finance and marketing dbt models, on the SQL shape dbt compiles for DuckDB.

Each model's `{{ source('X', 'Y') }}` becomes `"<domain>"."X"."Y"` (what dbt-duckdb renders), and
the schema comes from the producers' manifests: product `d.p`, output port `t` is table
`"<domain>"."d_p"."t"` with the port's contract columns.

What sqlglot reports, and so what these tests pin down: only the columns of an output column's own
expression (not WHERE / JOIN / GROUP BY columns); `count(*)` has no source column ([]); `count(x)`
has x. So in TPC-H Q13 (customer_distribution) `c_count` (a count of o_orderkey in the CTE) comes
from orders.o_orderkey and `custdist` (a `count(*)` over the CTE) from nothing.
"""

import logging
import re
from pathlib import Path

import pytest

from platform_resources.dbt_prepare import input_schema, load_manifest_json
from platform_resources.lineage.column_lineage import column_lineage
from platform_resources.registry import mesh_registry

REPO_ROOT = Path(__file__).resolve().parent.parent
SOURCE = re.compile(r"\{\{\s*source\(\s*'(\w+)'\s*,\s*'(\w+)'\s*\)\s*\}\}")


def manifests():
    return mesh_registry().products.values()


def compiled_sql(domain: str, model: str) -> str:
    """The model as dbt compiles it for a first (not incremental) build: config() and is_incremental() blocks gone."""
    text = (REPO_ROOT / "dbt_projects" / domain / "models" / f"{model}.sql").read_text()
    text = re.sub(r"\{\{\s*config\(.*?\)\s*\}\}", "", text, flags=re.S)
    text = re.sub(r"\{%\s*if is_incremental\(\)\s*%\}.*?\{%\s*endif\s*%\}", "", text, flags=re.S)
    return SOURCE.sub(lambda m: f'"{domain}"."{m.group(1)}"."{m.group(2)}"', text)


def schema_for(domain: str) -> dict[str, dict[str, str]]:
    return {
        f'"{domain}"."{input_schema(m.id)}"."{port.name}"': {c.name: c.type for c in port.contract.columns}
        for m in manifests()
        for port in m.output_ports
    }


def lineage_of(domain: str, model: str) -> dict[str, list[tuple[str, str]]]:
    return column_lineage(compiled_sql(domain, model), schema_for(domain))


def contract_columns(domain: str, model: str) -> list[str]:
    for m in manifests():
        if m.domain != domain:
            continue
        for port in m.output_ports:
            if port.dbt_model == model:
                return [c.name for c in port.contract.columns]
    raise AssertionError(f"no output port of {domain} is built by {model}")


F_LINES = "finance.sales_orders.order_lines"
F_ORDERS = "finance.sales_orders.orders"
F_CUSTOMERS = "finance.crm_customers.customers"
F_CONTACTS = "finance.crm_customers.customer_contacts"
F_NATIONS = "finance.geography_nations.nations"
F_SUPPLIER_CONTACTS = "finance.supply_suppliers.supplier_contacts"
M_LINES = "marketing.sales_orders.order_lines"
M_ORDERS = "marketing.sales_orders.orders"
M_CONTACTS = "marketing.crm_customers.customer_contacts"

REVENUE = lambda table: [(table, "l_discount"), (table, "l_extendedprice")]  # noqa: E731

EXPECTED = {
    ("finance", "pricing_summary"): {  # TPC-H Q1: single table, unqualified columns
        "l_returnflag": [(F_LINES, "l_returnflag")],
        "l_linestatus": [(F_LINES, "l_linestatus")],
        "sum_qty": [(F_LINES, "l_quantity")],
        "sum_base_price": [(F_LINES, "l_extendedprice")],
        "sum_disc_price": REVENUE(F_LINES),
        "sum_charge": [(F_LINES, "l_discount"), (F_LINES, "l_extendedprice"), (F_LINES, "l_tax")],
        "avg_qty": [(F_LINES, "l_quantity")],
        "avg_price": [(F_LINES, "l_extendedprice")],
        "avg_disc": [(F_LINES, "l_discount")],
        "count_order": [],
    },
    ("finance", "returned_items"): {  # TPC-H Q10: five-way join
        "c_custkey": [(F_CUSTOMERS, "c_custkey")],
        "c_name": [(F_CONTACTS, "c_name")],
        "revenue": REVENUE(F_LINES),
        "c_acctbal": [(F_CUSTOMERS, "c_acctbal")],
        "n_name": [(F_NATIONS, "n_name")],
        "c_address": [(F_CONTACTS, "c_address")],
        "c_phone": [(F_CONTACTS, "c_phone")],
        "c_comment": [(F_CUSTOMERS, "c_comment")],
    },
    ("finance", "monthly_revenue"): {  # incremental, partitioned by month
        "order_month": [(F_ORDERS, "o_orderdate")],
        "order_count": [],
        "revenue": [(F_ORDERS, "o_totalprice")],
    },
    ("finance", "shipping_priority"): {  # TPC-H Q3
        "l_orderkey": [(F_LINES, "l_orderkey")],
        "revenue": REVENUE(F_LINES),
        "o_orderdate": [(F_ORDERS, "o_orderdate")],
        "o_shippriority": [(F_ORDERS, "o_shippriority")],
    },
    ("finance", "local_supplier_volume"): {  # TPC-H Q5: the filter columns are not lineage
        "n_name": [(F_NATIONS, "n_name")],
        "revenue": REVENUE(F_LINES),
    },
    ("finance", "top_supplier"): {  # TPC-H Q15: a CTE, and a scalar subquery in WHERE
        "s_suppkey": [(F_SUPPLIER_CONTACTS, "s_suppkey")],
        "s_name": [(F_SUPPLIER_CONTACTS, "s_name")],
        "s_address": [(F_SUPPLIER_CONTACTS, "s_address")],
        "s_phone": [(F_SUPPLIER_CONTACTS, "s_phone")],
        "total_revenue": REVENUE(F_LINES),
    },
    ("marketing", "customer_distribution"): {  # TPC-H Q13: count(x) in a CTE, count(*) outside
        "c_count": [(M_ORDERS, "o_orderkey")],
        "custdist": [],
    },
    ("marketing", "large_volume_customers"): {  # TPC-H Q18: a quoted alias "sum", an IN subquery
        "c_name": [(M_CONTACTS, "c_name")],
        "c_custkey": [(M_CONTACTS, "c_custkey")],
        "o_orderkey": [(M_ORDERS, "o_orderkey")],
        "o_orderdate": [(M_ORDERS, "o_orderdate")],
        "o_totalprice": [(M_ORDERS, "o_totalprice")],
        "sum": [(M_LINES, "l_quantity")],
    },
}


def test_every_finance_and_marketing_model_is_covered():
    models = {
        (domain, path.stem)
        for domain in ("finance", "marketing")
        for path in (REPO_ROOT / "dbt_projects" / domain / "models").glob("*.sql")
    }
    assert models == set(EXPECTED)


@pytest.mark.parametrize(("domain", "model"), sorted(EXPECTED), ids=lambda v: v)
def test_model_lineage(domain, model, caplog):
    caplog.set_level(logging.WARNING, logger="platform_resources.lineage.column_lineage")
    result = lineage_of(domain, model)
    assert result == EXPECTED[(domain, model)]
    # Keys are the output columns, in select order, and they are the port's contract columns.
    assert list(result) == list(EXPECTED[(domain, model)])
    assert sorted(result) == sorted(contract_columns(domain, model))
    assert not [r for r in caplog.records if r.name == "platform_resources.lineage.column_lineage"]


def test_compiled_sql_shape_is_what_dbt_duckdb_renders(prepared_dbt):
    sql = compiled_sql("finance", "returned_items")
    rendered = {source["relation_name"] for source in load_manifest_json(mesh_registry().domains["finance"])["sources"].values()}
    assert '"finance"."crm_customers"."customers"' in rendered and "{{" not in sql
    assert all(relation in rendered for relation in re.findall(r'"finance"\."\w+"\."\w+"', sql))


def test_partly_qualified_names_in_schema_and_sql():
    sql = "select l_quantity, o.o_orderdate from sales_orders.order_lines as l join sales_orders.orders as o on l.l_orderkey = o.o_orderkey"
    schema = {
        "sales_orders.order_lines": {"l_orderkey": "bigint", "l_quantity": "decimal(15,2)"},
        "sales_orders.orders": {"o_orderkey": "bigint", "o_orderdate": "date"},
    }
    assert column_lineage(sql, schema) == {
        "l_quantity": [("sales_orders.order_lines", "l_quantity")],
        "o_orderdate": [("sales_orders.orders", "o_orderdate")],
    }


def test_unqualified_columns_in_a_join_are_placed_by_the_schema():
    sql = (
        'select c_name, o_totalprice, case when o_totalprice > c_acctbal then c_name else o_clerk end as who '
        'from "finance"."crm_customers"."customers" as c join "finance"."sales_orders"."orders" as o on c_custkey = o_custkey'
    )
    schema = schema_for("finance")
    schema['"finance"."crm_customers"."customers"']["c_name"] = "varchar"  # c_name lives in customer_contacts
    assert column_lineage(sql, schema) == {
        "c_name": [(F_CUSTOMERS, "c_name")],
        "o_totalprice": [(F_ORDERS, "o_totalprice")],
        "who": [(F_CUSTOMERS, "c_acctbal"), (F_CUSTOMERS, "c_name"), (F_ORDERS, "o_clerk"), (F_ORDERS, "o_totalprice")],
    }


def test_schema_mixing_qualification_depths():
    sql = 'select l.l_tax, n.n_name from sales_orders.order_lines as l cross join "finance"."geography_nations"."nations" as n'
    schema = {
        "sales_orders.order_lines": {"l_tax": "decimal(15,2)"},
        '"finance"."geography_nations"."nations"': {"n_name": "varchar"},
    }
    assert column_lineage(sql, schema) == {
        "l_tax": [("sales_orders.order_lines", "l_tax")],
        "n_name": [(F_NATIONS, "n_name")],
    }


def test_star_is_expanded_from_the_schema_and_keys_keep_their_case():
    schema = {"s.t": {"a": "integer", "b": "integer"}}
    assert column_lineage("select * from s.t", schema) == {"a": [("s.t", "a")], "b": [("s.t", "b")]}
    assert column_lineage('select A as "Total", count(*) from s.t group by A', schema) == {
        "Total": [("s.t", "a")],
        "_col_1": [],  # an unaliased expression gets sqlglot's positional name
    }


def test_create_table_as_select_is_traced_through():
    assert column_lineage("create table x as select a + b as c from s.t", {"s.t": {"a": "integer", "b": "integer"}}) == {
        "c": [("s.t", "a"), ("s.t", "b")]
    }


@pytest.mark.parametrize(
    "sql",
    [
        "garbage !!! select from where",
        "select from (",
        "",
        "select 1; select 2",
        "insert into t values (1)",
        "{{ ref('not_compiled') }}",
    ],
)
def test_sql_it_cannot_analyse_gives_an_empty_dict_and_a_warning(sql, caplog):
    caplog.set_level(logging.WARNING, logger="platform_resources.lineage.column_lineage")
    assert column_lineage(sql, schema_for("finance")) == {}
    assert any(r.name == "platform_resources.lineage.column_lineage" for r in caplog.records)


def test_bad_schema_entries_are_ignored_with_a_warning(caplog):
    caplog.set_level(logging.WARNING, logger="platform_resources.lineage.column_lineage")
    schema = {
        "a.b.c.d": {"x": "integer"},  # too deep to be a table
        "": {"x": "integer"},
        "s.bad": {"x": {"nested": "integer"}},
        "s.empty": {},
        "s.t": {"a": "integer", "id": "integer"},
        "s.u": {"b": "integer", "id": "integer"},
    }
    assert column_lineage("select a, b from s.t join s.u on t.id = u.id", schema) == {
        "a": [("s.t", "a")],
        "b": [("s.u", "b")],
    }
    assert len([r for r in caplog.records if "ignoring it" in r.getMessage()]) == 4


def test_schema_missing_a_column_the_sql_uses_is_tolerated():
    # A contract lagging behind its SQL must not sink the whole statement.
    assert column_lineage("select t.a, t.zzz from s.t as t", {"s.t": {"a": "integer"}}) == {
        "a": [("s.t", "a")],
        "zzz": [("s.t", "zzz")],
    }


def test_untraceable_column_gives_an_empty_list_and_a_warning(caplog):
    caplog.set_level(logging.WARNING, logger="platform_resources.lineage.column_lineage")
    # Two tables, no schema for either: sqlglot cannot tell where the unqualified `a` comes from.
    result = column_lineage("select a, u.b from t join u on t.id = u.id", {})
    assert result == {"a": [], "b": [("u", "b")]}
    assert any(r.getMessage().startswith("column lineage: a:") for r in caplog.records)
