"""`rows_satisfy` is one boolean expression over the port's own columns: anything else is refused at `mesh validate`
with the manifest's file and line, and never runs at publish. Names from manifests reach SQL quoted."""

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from workspaces import make_workspace, manifest_file, product

from platform_resources.contracts import check_primary_key
from platform_resources.governance.runtime import run_runtime_checks
from platform_resources.governance.validate import format_text, validate
from platform_resources.manifest import Manifest
from platform_resources.registry import load_registry
from platform_resources.sql_sandbox import UnsafeCondition, condition_sql
from platform_resources.staged import StagedRelation, StagedTable

COLUMNS = ["id", "amount", "status"]


def shop(condition: str, extra_columns: tuple[str, ...] = ()) -> dict:
    """shop.orders with columns id, amount, status and one local runtime policy."""
    manifest = product("shop.orders", fresh=True)
    manifest["output_ports"][0]["contract"]["columns"] += [
        {"name": name, "type": "double" if name == "amount" else "varchar", "description": f"The {name}.",
         "classification": "internal"} for name in ("amount", "status", *extra_columns)]
    manifest["governance"] = {"policies": [{"id": "SHOP-001", "title": "Valid orders", "rationale": "Clean data.",
                                            "severity": "error", "rows_satisfy": condition}]}
    return manifest


def staged() -> pa.Table:
    return pa.table({"id": pa.array([1, 2, 3], pa.int64()), "amount": [10.0, -1.0, None],
                     "status": ["open", "closed", "lost"]})


def outcome(condition: str):
    manifest = Manifest.model_validate(shop(condition))
    return {c.name: o for c, o in run_runtime_checks(manifest, manifest.output_ports[0], staged())}["policy_shop_001"]


@pytest.fixture
def crm_files(tmp_path):
    """Another domain's data files, like crm's restricted Parquet in the warehouse."""
    folder = tmp_path / "warehouse" / "crm"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"c_name": ["Customer#000000001"], "c_phone": ["25-989-741-2988"]}),
                   folder / "contacts.parquet")
    secret = tmp_path / "secret.txt"
    secret.write_text("the secret text\n")
    return folder, secret


def attacks(tmp_path, crm_files) -> dict[str, str]:
    folder, secret = crm_files
    written = tmp_path / "written.csv"
    return {
        "reads a file": f"read_text('{secret}') is not null",
        "writes a file (stacked COPY)": f"id > 0; COPY (select 42 as x) TO '{written}'",
        "a subquery on another relation": "id in (select id from duckdb_tables())",
        "reads another domain's files": f"exists(select * from read_parquet('{folder}/*.parquet'))",
        "a scalar subquery of another domain's files":
            f"(select count(*) from read_parquet('{folder}/*.parquet')) >= 0",
        "stacked statements": "id > 0; select 1",
        "an unknown column": "c_phone is not null",
        "a qualified column": "crm.c_phone is not null",
        "reads a setting": "current_setting('home_directory') is not null",
        "a table function in IN": f"status in (select c_phone from read_parquet('{folder}/*.parquet'))",
        "not a condition": "amount + 1",
    }


def test_every_attack_is_a_validate_finding_with_the_manifest_file_and_line(tmp_path, crm_files):
    for case, condition in attacks(tmp_path, crm_files).items():
        root = tmp_path / case.replace(" ", "_").replace("(", "").replace(")", "").replace("'", "")
        workspace = make_workspace(root, {"shop/orders.yaml": shop(condition)}, teams=("shop",))
        registry = load_registry(workspace, published=False)
        report, _ = validate(registry, load_locations=False)
        findings = [f for f in report.findings if f.policy == "MESH-SQL-001"]
        assert len(findings) == 1, (case, [f.as_text() for f in report.findings])
        [finding] = findings
        path = manifest_file(root, "shop/orders.yaml")
        rows_satisfy_line = next(i for i, line in enumerate(path.read_text().splitlines(), 1)
                                 if line.lstrip(" -").startswith("rows_satisfy:"))
        assert (finding.file, finding.line, finding.severity) == (str(path), rows_satisfy_line, "error"), case
        assert "SHOP-001" in finding.message and "cannot run on port main" in finding.message, case
        assert "shop.orders" in report.blocked, case  # an error finding: the product does not publish
        assert f"{path}:{rows_satisfy_line}: error MESH-SQL-001" in format_text(report, [], registry), case


def test_an_attack_never_runs_at_publish_either(tmp_path, crm_files):
    written = tmp_path / "written.csv"
    for case, condition in attacks(tmp_path, crm_files).items():
        result = outcome(condition)
        assert not result.passed, case
        assert "was not run" in result.summary and "MESH-SQL-001" in result.summary, (case, result.summary)
        assert "failing_rows" not in result.details, case
        assert "the secret text" not in result.summary and "25-989-741-2988" not in result.summary, case
    assert not written.exists()  # the stacked COPY never ran


def test_why_each_attack_is_refused(tmp_path, crm_files):
    reasons = {case: _refusal(condition) for case, condition in attacks(tmp_path, crm_files).items()}
    assert "function read_text() is not allowed" in reasons["reads a file"]
    assert "2 statements" in reasons["writes a file (stacked COPY)"]
    assert "not a query" in reasons["a subquery on another relation"]
    assert "not in the port's contract ['amount', 'id', 'status']" in reasons["an unknown column"]
    assert "names another relation" in reasons["a qualified column"]
    assert "function current_setting() is not allowed" in reasons["reads a setting"]
    assert "not a true/false condition" in reasons["not a condition"]
    assert "a COPY statement is not allowed" in _refusal("COPY (select 1) TO 'x.csv'")


def _refusal(condition: str) -> str:
    with pytest.raises(UnsafeCondition) as refused:
        condition_sql(condition, COLUMNS)
    return str(refused.value)


def test_a_valid_condition_passes_at_validate_and_counts_failing_rows_at_publish(tmp_path):
    condition = "amount >= 0 and status in ('open', 'closed') and length(status) < 10"
    workspace = make_workspace(tmp_path, {"shop/orders.yaml": shop(condition)}, teams=("shop",))
    report, _ = validate(load_registry(workspace, published=False), load_locations=False)
    assert not [f for f in report.findings if f.policy == "MESH-SQL-001"]

    result = outcome(condition)
    assert not result.passed and result.details["failing_rows"] == 2  # a negative amount, and a null one
    assert outcome("id > 0 and (amount is null or amount < 100)").passed
    assert outcome('"Status" ~ \'^[a-z]+$\'').passed  # DuckDB names are case-insensitive, quoted or not


def test_what_runs_is_the_checked_expression_not_the_manifest_text():
    # A comment cannot smuggle anything: what runs is sqlglot's rendering of the tree that was checked.
    assert condition_sql("amount > 0 -- ; COPY (select 1) TO 'x'", COLUMNS) == "amount > 0"
    assert condition_sql("amount > 0 /* ; drop */ or status is null", COLUMNS) == "amount > 0 OR status IS NULL"


@pytest.mark.parametrize("where", ["in memory", "in the domain's DuckDB"])
def test_the_check_connection_can_open_no_file_even_if_an_expression_got_through(tmp_path, crm_files, where):
    folder, secret = crm_files
    if where == "in memory":  # a pyarrow table published directly
        rows = StagedTable(staged())
    else:  # a dbt model's result, read where dbt left it: the domain's own database is open, nothing else
        database = tmp_path / "shop.duckdb"
        with duckdb.connect(str(database)) as con:
            con.register("rows", staged())
            con.execute("create table orders as select * from rows")
        rows = StagedRelation(database, "orders")
    for sql in (f"select count(*) from read_parquet('{folder}/*.parquet')",
                f"select content from read_text('{secret}')",
                f"copy (select 1) to '{tmp_path / 'x.csv'}'", f"attach '{tmp_path / 'other.duckdb'}'",
                "set enable_external_access = true"):
        with pytest.raises(duckdb.Error, match="disabled by configuration|configuration has been locked"):
            rows.query(sql)
    assert rows.query("select count(*) from staged")[0] == 3  # the staged rows, and only them
    rows.close()
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "other.duckdb").exists()


def test_names_from_the_manifest_reach_sql_quoted():
    # A column name that would end an identifier and add SQL of its own is one identifier, nothing more.
    name = 'id" is null or 1=1 or "x'
    contract = Manifest.model_validate({
        "id": "shop.orders", "name": "Orders", "archetype": "source-aligned", "status": "active", "version": "1.0.0",
        "input_ports": [{"name": "system", "operational": "shop_db.orders"}],
        "output_ports": [{"name": "main", "visibility": "internal", "actual_time": "snapshot", "contract": {
            "primary_key": [name], "columns": [{"name": name, "type": "bigint"},
                                               {"name": 'pho"ne', "type": "varchar", "masking": "redacted"}]}}],
    }).output_ports[0].contract
    rows = pa.table({name: pa.array([1, 1, None], pa.int64()), 'pho"ne': ["***-1234", "***-5678", "555-123-4567"]})
    key = check_primary_key(contract, rows)
    assert (key.details["duplicated_keys"], key.details["null_keys"]) == (1, 1)

    manifest = Manifest.model_validate({
        "id": "shop.orders", "name": "Orders", "archetype": "source-aligned", "status": "active", "version": "1.0.0",
        "input_ports": [{"name": "system", "operational": "shop_db.orders"}],
        "output_ports": [{"name": "main", "visibility": "internal", "actual_time": "snapshot",
                          "contract": contract.model_dump()}]})
    results = {c.name: o for c, o in run_runtime_checks(manifest, manifest.output_ports[0], rows)}
    assert results["masking"].details["unmasked_rows"] == {'pho"ne': 1}
