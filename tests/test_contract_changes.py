"""Breaking contract changes, type widening, major bumps, and reading a manifest back from git."""

import subprocess
from pathlib import Path

import pytest
import yaml

from platform_resources.governance.contract_changes import (
    BreakingChange,
    breaking_changes,
    is_type_widening,
    major_bumped,
    manifest_at_revision,
)
from platform_resources.manifest import Manifest


def column(name, type="bigint", nullable=False):
    return {"name": name, "type": type, "nullable": nullable, "description": f"{name}.", "classification": "public"}


def product_dict(columns, primary_key=("id",), version="1.0.0", ports=("orders",)):
    return {
        "id": "shop.orders", "name": "Orders", "description": "Orders.",
        "owner": {"team": "shop", "email": "shop@example.com"},
        "archetype": "source-aligned", "status": "active", "version": version,
        "input_ports": [{"name": "system", "operational": "shop_db.orders"}],
        "output_ports": [{"name": port, "description": "Orders.", "visibility": "public", "actual_time": "snapshot",
                          "contract": {"primary_key": list(primary_key), "columns": columns}} for port in ports]}


def product(columns, primary_key=("id",), version="1.0.0", ports=("orders",)):
    return Manifest.model_validate(product_dict(columns, primary_key, version, ports))


BASE = [column("id"), column("amount", "decimal(15,2)", nullable=True), column("phone", "varchar", nullable=True)]


def changes(new_columns, primary_key=("id",), old_columns=BASE, old_key=("id",)):
    return [c.change for c in breaking_changes(product(old_columns, old_key), product(new_columns, primary_key))]


# --- breaking changes ------------------------------------------------------------------------------


def test_identical_manifests_have_no_breaking_changes():
    assert changes(BASE) == []


def test_removed_column_is_breaking():
    assert changes(BASE[:2]) == ["column phone removed (or renamed)"]


def test_renamed_column_is_reported_as_removed_or_renamed():
    assert changes([*BASE[:2], column("phone_number", "varchar", nullable=True)]) == [
        "column phone removed (or renamed)"]


def test_added_columns_are_not_breaking():
    assert changes([*BASE, column("note", "varchar", nullable=True), column("code", "integer")]) == []


def test_narrowed_type_is_breaking():
    assert changes([column("id", "integer"), *BASE[1:]]) == ["column id type narrowed from bigint to integer"]


def test_widened_type_is_not_breaking():
    assert changes([column("id"), column("amount", "decimal(18,2)", nullable=True), BASE[2]]) == []


def test_nullable_to_required_is_breaking():
    assert changes([*BASE[:2], column("phone", "varchar", nullable=False)]) == [
        "column phone became required (nullable: true -> false)"]


def test_required_to_nullable_is_not_breaking():
    assert changes([column("id"), column("amount", "decimal(15,2)", nullable=True),
                    column("phone", "varchar", nullable=True)],
                   old_columns=[column("id"), column("amount", "decimal(15,2)", nullable=False), BASE[2]]) == []


def test_changed_primary_key_is_breaking():
    assert changes(BASE, primary_key=("id", "phone")) == ["primary key changed from [id] to [id, phone]"]


def test_reordered_primary_key_is_not_breaking():
    assert changes(BASE, primary_key=("phone", "id"), old_key=("id", "phone")) == []


def test_dropped_primary_key_is_breaking():
    assert changes(BASE, primary_key=()) == ["primary key changed from [id] to []"]


def test_declaring_a_first_primary_key_is_not_breaking():
    assert changes(BASE, primary_key=("id",), old_key=()) == []


def test_removed_port_is_breaking_and_added_port_is_not():
    old = product(BASE, ports=("orders", "lines"))
    new = product(BASE, ports=("orders", "returns"))
    assert breaking_changes(old, new) == [BreakingChange("lines", "output port lines removed (or renamed)")]


def test_every_change_is_reported_with_its_port():
    new = product([column("id", "varchar"), column("amount", "integer", nullable=False)], primary_key=("amount",))
    assert breaking_changes(product(BASE), new) == [
        BreakingChange("orders", "column amount type narrowed from decimal(15,2) to integer"),
        BreakingChange("orders", "column amount became required (nullable: true -> false)"),
        BreakingChange("orders", "column phone removed (or renamed)"),
        BreakingChange("orders", "primary key changed from [id] to [amount]"),
    ]


# --- type widening ---------------------------------------------------------------------------------


@pytest.mark.parametrize("old, new", [
    ("bigint", "bigint"), ("date", "date"), ("decimal(15,2)", "decimal(15,2)"),
    ("tinyint", "smallint"), ("smallint", "integer"), ("integer", "bigint"), ("tinyint", "bigint"),
    ("tinyint", "float"), ("smallint", "float"), ("float", "double"),
    ("integer", "double"), ("bigint", "double"), ("decimal(15,2)", "double"),
    ("integer", "decimal(10,0)"), ("integer", "decimal(12,2)"), ("bigint", "decimal(19,0)"), ("tinyint", "decimal(3,0)"),
    ("decimal(15,2)", "decimal(18,2)"), ("decimal(15,2)", "decimal(16,3)"),
    ("boolean", "varchar"), ("timestamptz", "varchar"), ("double", "varchar"), ("decimal(38,10)", "varchar"),
])
def test_widenings(old, new):
    assert is_type_widening(old, new)


@pytest.mark.parametrize("old, new", [
    ("bigint", "integer"), ("integer", "smallint"), ("smallint", "tinyint"), ("double", "float"),
    ("integer", "float"), ("bigint", "float"), ("double", "bigint"), ("float", "integer"),
    ("integer", "decimal(9,0)"), ("integer", "decimal(10,1)"), ("bigint", "decimal(18,0)"),
    ("decimal(15,2)", "decimal(15,3)"), ("decimal(15,2)", "decimal(14,2)"), ("decimal(15,2)", "decimal(18,1)"),
    ("decimal(5,0)", "integer"), ("decimal(15,2)", "float"), ("double", "decimal(38,10)"),
    ("date", "timestamp"), ("timestamp", "timestamptz"), ("timestamptz", "timestamp"), ("timestamp", "date"),
    ("varchar", "bigint"), ("varchar", "date"), ("boolean", "tinyint"), ("tinyint", "boolean"),
])
def test_narrowings(old, new):
    assert not is_type_widening(old, new)


# --- versions --------------------------------------------------------------------------------------




@pytest.mark.parametrize("old, new, bumped", [
    ("1.0.0", "2.0.0", True), ("1.9.9", "2.0.0", True), ("1.0.0", "3.1.0", True), ("1.2.3", "2.0.0-rc.1", True),
    ("1.0.0", "1.1.0", False), ("1.0.0", "1.0.1", False), ("1.0.0", "1.0.0", False), ("2.0.0", "1.0.0", False),
    ("2.0.0-rc.1", "2.0.0", False), ("9.0.0", "10.0.0", True),
])
def test_major_bumped(old, new, bumped):
    assert major_bumped(old, new) is bumped


def test_major_bumped_rejects_a_non_semver():
    with pytest.raises(ValueError, match="not a semantic version"):
        major_bumped("1.0", "2.0.0")


# --- manifests at a git revision -------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.name", "Test")
    git(repo, "config", "user.email", "test@example.com")
    git(repo, "config", "commit.gpgsign", "false")
    return repo


def commit(repo: Path, relative: str, content: str, message: str) -> str:
    path = repo / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    git(repo, "add", relative)
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def test_manifest_at_revision_reads_the_committed_version(repo):
    relative = "shop/products/orders.yaml"
    first = commit(repo, relative, yaml.safe_dump(product_dict(BASE, version="1.0.0")), "first")
    commit(repo, relative, yaml.safe_dump(product_dict(BASE[:2], version="2.0.0")), "second")
    old = manifest_at_revision(repo, repo / relative, first)
    assert old is not None and old.version == "1.0.0"
    assert [c.name for c in old.output_ports[0].contract.columns] == ["id", "amount", "phone"]
    # A relative path is relative to repo_root; HEAD~1 is the same commit as first.
    assert manifest_at_revision(repo, Path(relative), "HEAD~1").model_dump() == old.model_dump()
    assert manifest_at_revision(repo, Path(relative), "HEAD").version == "2.0.0"


def test_manifest_at_revision_is_none_when_the_file_did_not_exist(repo):
    first = commit(repo, "README.md", "shop\n", "first")
    commit(repo, "orders.yaml", yaml.safe_dump(product_dict(BASE)), "second")
    assert manifest_at_revision(repo, repo / "orders.yaml", first) is None


def test_manifest_at_revision_is_none_when_the_old_file_is_invalid(repo):
    first = commit(repo, "orders.yaml", "id: shop.orders\nname: Orders\n", "first")
    assert manifest_at_revision(repo, repo / "orders.yaml", first) is None
    second = commit(repo, "orders.yaml", "id: [unclosed\n", "second")
    assert manifest_at_revision(repo, repo / "orders.yaml", second) is None


def test_manifest_at_revision_rejects_an_unknown_revision(repo):
    commit(repo, "orders.yaml", yaml.safe_dump(product_dict(BASE)), "first")
    with pytest.raises(ValueError, match=r"'origin/main' is unknown.*git fetch"):
        manifest_at_revision(repo, repo / "orders.yaml", "origin/main")


def test_manifest_at_revision_rejects_a_directory_outside_git(tmp_path, monkeypatch):
    # Keeps git from finding an enclosing repository should the temporary directory sit inside one.
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    (tmp_path / "orders.yaml").write_text(yaml.safe_dump(product_dict(BASE)))
    with pytest.raises(ValueError, match="not in a git repository"):
        manifest_at_revision(tmp_path, tmp_path / "orders.yaml", "HEAD")
