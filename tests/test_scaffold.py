"""Self-serve scaffolding: `mesh new domain`, `mesh new product` and the component's `dg scaffold defs`.

The end-to-end test works on a copy of the sample mesh (MESH_WORKSPACE) with a fresh mesh home, through the
`mesh` command as a domain team would: scaffold, validate, run, read, list, discover, then make the product its
own and publish again.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import yaml
from workspaces import copy_sample_mesh

from platform_resources import cli
from platform_resources.scaffold import insert_dg_project, insert_list_item, new_domain, new_product, yaml_scalar

BIN = Path(sys.executable).parent
PORT = "logistics.shipping_modes.shipping_modes"


@pytest.fixture
def mesh_copy(tmp_path, fresh_home, monkeypatch) -> Path:
    """A copy of the sample mesh that every `mesh` command (and this process) works on, with a fresh home."""
    workspace = copy_sample_mesh(tmp_path / "repo")
    monkeypatch.setenv("MESH_WORKSPACE", str(workspace))
    return workspace.parent


def mesh(*args: str, expect: int = 0, cwd: Path | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([str(BIN / "mesh"), *args], capture_output=True, text=True, timeout=900, cwd=cwd,
                            check=False)
    assert result.returncode == expect, f"mesh {' '.join(args)}: exit {result.returncode}\n" \
                                        f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def served(port_id: str) -> list[dict]:
    rows = json.loads(mesh("read", port_id, "--format", "json").stdout)
    return sorted(({k: v for k, v in row.items() if k != "_processing_time"} for row in rows),
                  key=lambda row: row["ship_mode"])


def expected(sql: str) -> list[dict]:
    """`sql` over what sales.orders.order_lines serves now (relation `lines`), read the platform's way."""
    from platform_resources.access import read_port
    from platform_resources.registry import load_registry

    con = duckdb.connect()
    con.register("lines", read_port(load_registry(), "sales.orders.order_lines", consumer=None)[0])
    return sorted(con.sql(sql).to_arrow_table().to_pylist(), key=lambda row: row["ship_mode"])


def processing_times(port_id: str) -> list[str]:
    from platform_resources import ports

    return [v.processing_time.isoformat() for v in ports.versions(port_id)]


def test_a_new_domain_and_product_publish_as_scaffolded_and_then_as_edited(mesh_copy):
    original = {f: (mesh_copy / f).read_text() for f in ("workspace.yaml", "dg.toml", "governance/teams.yaml")}
    created = mesh("new", "domain", "logistics").stdout
    assert "mesh_code_locations/logistics/logistics_domain/defs/data_products/defs.yaml" in created
    location, dbt_project = mesh_copy / "mesh_code_locations/logistics", mesh_copy / "dbt_projects/logistics"
    for path in ("dg.toml", ".env", "products", "logistics_domain/definitions.py",
                 "logistics_domain/defs/data_products/defs.yaml"):
        assert (location / path).exists(), path
    for path in ("dbt_project.yml", "profiles.yml", "models/schema.yml"):
        assert (dbt_project / path).exists(), path
    assert (mesh_copy / "tests/domains/test_logistics.py").exists()
    # The shared files got one line each; everything they held before (comments too) is still there.
    for file, before in original.items():
        after = (mesh_copy / file).read_text().splitlines()
        assert len([line for line in after if "logistics" in line]) == 1, file
        assert [line for line in after if "logistics" not in line] == before.splitlines(), file
    assert yaml.safe_load((mesh_copy / "workspace.yaml").read_text())["load_from"][-1] == {"python_module": {
        "module_name": "logistics_domain.definitions", "location_name": "logistics",
        "working_directory": "mesh_code_locations/logistics"}}

    mesh("new", "product", "logistics.shipping_modes", "--input", "sales.orders.order_lines")
    manifest = location / "products/shipping_modes.yaml"
    model = dbt_project / "models/shipping_modes.sql"
    assert "source('sales_orders', 'order_lines')" in model.read_text()
    assert yaml.safe_load((dbt_project / "models/_mesh_sources.yml").read_text())["sources"][0]["tables"] == \
        [{"name": "order_lines"}]
    validated = mesh("validate").stdout
    assert "logistics: 1 products, 0 errors, 0 warnings" in validated
    # The test `mesh new domain` wrote loads the code location, with the new port.
    tested = subprocess.run([str(BIN / "pytest"), "-q", "-p", "no:cacheprovider", "tests/domains/test_logistics.py"],
                            cwd=mesh_copy, capture_output=True, text=True, timeout=600, check=False)
    assert tested.returncode == 0, tested.stdout[-4000:] + tested.stderr[-4000:]

    # The hello-world product publishes untouched: one row per shipping mode with its number of order lines.
    mesh("run", "--domain", "sales", "--domain", "logistics")
    assert served(PORT) == expected(
        "select l_shipmode as ship_mode, count(*) as order_lines from lines group by 1")
    assert len(served(PORT)) == 7
    listed = next(line for line in mesh("list").stdout.splitlines() if PORT in line)
    assert "public" in listed and "not published" not in listed
    found = json.loads(mesh("catalog", "shipping", "--json").stdout)
    assert [d["id"] for d in found if d["id"].startswith("logistics.")] == ["logistics.shipping_modes"]
    assert "logistics.shipping_modes" in mesh("catalog", "--domain", "logistics").stdout
    first = processing_times(PORT)

    # The team makes it its own: only the model's SQL and the contract columns it returns change.
    model.write_text("select\n    l_shipmode as ship_mode,\n    count(*) as order_lines,\n"
                     "    avg(l_quantity) as avg_quantity\n"
                     "from {{ source('sales_orders', 'order_lines') }}\ngroup by 1\n")
    text = manifest.read_text()
    assert text.rstrip().endswith("with this ship_mode.}")  # the contract's columns close the skeleton
    manifest.write_text(text + "        - {name: avg_quantity, type: double, nullable: false, classification: public, "
                               "description: Average quantity of the order lines with this shipping mode.}\n")
    mesh("validate")
    mesh("run", "--domain", "logistics")
    assert served(PORT) == expected("select l_shipmode as ship_mode, count(*) as order_lines, "
                                    "avg(l_quantity)::double as avg_quantity from lines group by 1")
    assert len(processing_times(PORT)) == 2 and processing_times(PORT)[0] == first[0]


def test_scaffolding_refuses_to_overwrite_and_checks_names_and_inputs(mesh_copy, capsys):
    def new(*args: str) -> tuple[int, str]:
        code = cli.main(["new", *args])
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err
        return code, captured.err

    assert new("domain", "logistics")[0] == 0
    workspace = (mesh_copy / "workspace.yaml").read_text()
    code, error = new("domain", "logistics")
    assert code == 2 and "mesh_code_locations/logistics/dg.toml already exists" in error
    assert "nothing was written" in error
    assert (mesh_copy / "workspace.yaml").read_text() == workspace
    assert new("domain", "sales")[0] == 2  # a sample domain: its files exist
    code, error = new("domain", "Logistics-Two")
    assert code == 2 and "snake_case" in error and "logistics_two" in error

    assert new("product", "logistics.shipping_modes", "--input", "sales.orders.order_lines")[0] == 0
    schema = (mesh_copy / "dbt_projects/logistics/models/schema.yml").read_text()
    code, error = new("product", "logistics.shipping_modes", "--input", "sales.orders.order_lines")
    assert code == 2 and "mesh_code_locations/logistics/products/shipping_modes.yaml already declares" in error
    assert (mesh_copy / "dbt_projects/logistics/models/schema.yml").read_text() == schema

    code, error = new("product", "logistics.carriers", "--input", "sales.orders.shipments")
    assert code == 2 and "unknown output port sales.orders.shipments" in error
    assert "known ports:" in error and "sales.orders.order_lines" in error
    assert not (mesh_copy / "mesh_code_locations/logistics/products/carriers.yaml").exists()
    assert not (mesh_copy / "dbt_projects/logistics/models/carriers.sql").exists()
    code, error = new("product", "logistics.carriers", "--input", "sales.orders")
    assert code == 2 and "not a port id" in error
    code, error = new("product", "nowhere.carriers")
    assert code == 2 and "mesh new domain nowhere" in error
    code, error = new("product", "logistics.Carriers")
    assert code == 2 and "snake_case" in error
    assert new("product", "logistics.internal")[0] == 2
    # A model file in the way is named too, and nothing is written.
    (mesh_copy / "dbt_projects/logistics/models/carriers.sql").write_text("select 1 as id\n")
    code, error = new("product", "logistics.carriers")
    assert code == 2 and "dbt_projects/logistics/models/carriers.sql already exists" in error
    assert not (mesh_copy / "mesh_code_locations/logistics/products/carriers.yaml").exists()


def test_a_product_without_inputs_and_one_with_several_pass_every_static_policy(mesh_copy):
    from platform_resources.governance.engine import evaluate
    from platform_resources.registry import load_registry

    new_domain("logistics", owner_email="logistics@example.com")
    new_product("logistics.hello")
    new_product("logistics.order_book", ["sales.orders.orders", "sales.orders.order_lines"],
                archetype="consumer-aligned", visibility="internal")
    new_product("logistics.contact_points", ["crm.customers.customer_contacts"])
    registry = load_registry()
    hello, book = registry.products["logistics.hello"], registry.products["logistics.order_book"]
    assert hello.archetype == "source-aligned" and not hello.input_ports
    assert [c.name for c in hello.output_ports[0].contract.columns] == ["id", "greeting"]
    assert hello.owner.email == "logistics@example.com"  # the team's mailbox, from teams.yaml
    assert book.archetype == "consumer-aligned" and book.output_ports[0].visibility == "internal"
    sql = (mesh_copy / "dbt_projects/logistics/models/order_book.sql").read_text()
    assert "union all" in sql and "source('sales_orders', 'orders')" in sql
    assert not [f.as_text() for f in evaluate(registry).findings
                if f.product in ("logistics.hello", "logistics.order_book") and (f.blocking or f.open_warning)]
    # A restricted input gets an access request; the producer's approval is the producer's to give.
    contacts = registry.products["logistics.contact_points"]
    assert contacts.input_ports[0].access_request is not None
    assert all(c.classification != "pii" for c in contacts.output_ports[0].contract.columns)
    sources = yaml.safe_load((mesh_copy / "dbt_projects/logistics/models/_mesh_sources.yml").read_text())["sources"]
    assert {s["name"] for s in sources} == {"sales_orders", "crm_customers"}


def test_dg_scaffold_defs_writes_the_defs_yaml_mesh_new_domain_writes(mesh_copy):
    new_domain("logistics")
    defs_yaml = mesh_copy / "mesh_code_locations/logistics/logistics_domain/defs/data_products/defs.yaml"
    written = defs_yaml.read_text()
    defs_yaml.unlink()
    defs_yaml.parent.rmdir()
    (mesh_copy / ".venv").symlink_to(BIN.parent)  # the domain's .env points dg at the repository's virtualenv
    result = subprocess.run([str(BIN / "dg"), "scaffold", "defs", "platform_resources.component.DataMeshDomain",
                             "data_products"], cwd=defs_yaml.parents[3], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "DAGSTER_HOME": str(mesh_copy / "dagster"), "DO_NOT_TRACK": "1"},
                            check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert defs_yaml.read_text() == written


def test_shared_files_get_lines_inserted_with_their_comments_kept():
    text = "# The teams.\nteams:\n  # sample teams\n  - {name: a}\n\n# Extra settings.\nother: 1\n"
    assert insert_list_item(text, "teams", "- {name: b}", "teams.yaml") == \
        "# The teams.\nteams:\n  # sample teams\n  - {name: a}\n  - {name: b}\n\n# Extra settings.\nother: 1\n"
    assert insert_list_item("version: 2\nmodels: []  # none yet\n", "models", "- name: m\n  description: D.", "s.yml") \
        == "version: 2\nmodels:\n  - name: m\n    description: D.\n"
    assert insert_list_item("load_from:\n- a: 1\n", "load_from", "- b: 2", "w.yaml") == "load_from:\n- a: 1\n- b: 2\n"
    with pytest.raises(ValueError, match="by hand"):
        insert_list_item("teams: [{name: a}]\n", "teams", "- {name: b}", "teams.yaml")
    toml = '# The workspace.\n[workspace]\nprojects = [\n  {path = "a"},  # first\n  {path = "b"}  # second\n]\n'
    assert insert_dg_project(toml, "c", "dg.toml") == \
        '# The workspace.\n[workspace]\nprojects = [\n  {path = "a"},  # first\n  {path = "b"}, # second\n' \
        '  {path = "c"},\n]\n'
    assert insert_dg_project('[workspace]\nprojects = []\n', "c", "dg.toml") == \
        '[workspace]\nprojects = [{path = "c"}]\n'
    for value in ("Shipping mode (AIR, RAIL).", "yes", "TODO: fill in", "decimal(15,2)", "a #b", "Plain text."):
        assert yaml.safe_load(f"{{k: {yaml_scalar(value)}}}") == {"k": value}
