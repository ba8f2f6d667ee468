"""Manifest validation: good files load; every bad file names file, line, field and fix."""

from pathlib import Path

import pytest

from platform_resources.manifest import ManifestErrors, load_manifest

GOOD = Path(__file__).parent / "fixtures" / "good_manifest.yaml"


def write_variant(tmp_path: Path, old: str, new: str) -> Path:
    text = GOOD.read_text()
    assert old in text, f"fixture no longer contains {old!r}"
    path = tmp_path / "baskets.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def only_error(path: Path):
    with pytest.raises(ManifestErrors) as caught:
        load_manifest(path)
    assert len(caught.value.errors) == 1, str(caught.value)
    return caught.value.errors[0]


def test_good_manifest_loads_with_defaults_and_normalized_types():
    manifest = load_manifest(GOOD)
    assert manifest.id == "shop.baskets" and manifest.domain == "shop" and manifest.product == "baskets"
    port = manifest.output_port("baskets")
    assert port.dbt_model == "baskets"
    assert [c.type for c in port.contract.columns] == ["bigint", "timestamptz", "decimal(12,2)"]
    assert port.contract.columns[2].nullable is True
    assert port.freshness.to_timedelta(port.freshness.max_age).total_seconds() == 7200
    assert manifest.input_ports[0].operational == "shop_db.basket"


@pytest.mark.parametrize(
    ("old", "new", "line", "field", "problem", "fix"),
    [
        # Owner, descriptions, classification and primary key are governed by policies: see test_policies.py.
        ("owner: {team: shop, email: shop@example.com}", "owner: {team: shop, mail: shop@example.com}", 4,
         "owner.mail", "is not a manifest field", "check its spelling"),
        ("archetype: source-aligned", "archetype: source_aligned", 5, "archetype",
         "'source_aligned' is not allowed", "'source-aligned', 'aggregate' or 'consumer-aligned'"),
        ("id: shop.baskets", "id: shop-baskets", 1, "id", "not a product id", "domain.product in snake_case"),
        ("version: 1.2.0", "version: '1.2'", 7, "version", "not a semantic version", "MAJOR.MINOR.PATCH"),
        ("    freshness:", "    freshnes:", 16, "output_ports[0].freshnes", "is not a manifest field",
         "check its spelling"),
        ("primary_key: [basket_id]", "primary_key: [basket_key]", 18, "output_ports[0].contract.primary_key",
         "primary key columns ['basket_key'] are not among the declared columns", "declare the missing ones"),
        ("type: bigint", "type: int64", 20, "output_ports[0].contract.columns[0].type",
         "unknown column type 'int64'", "decimal(P,S)"),
        ("classification: internal", "classification: secret", 22,
         "output_ports[0].contract.columns[2].classification", "'secret' is not allowed", "'pii'"),
        ("{name: shop_system, operational: shop_db.basket}",
         "{name: shop_system, operational: shop_db.basket, from: a.b.c}", 10, "input_ports[0]",
         "reads either", "give exactly one"),
        ("actual_time: created_at", "actual_time: updated_at", 15, "output_ports[0].actual_time",
         "actual_time 'updated_at' is neither 'snapshot' nor a declared column", "write 'snapshot'"),
        ("max_age: 2h", "max_age: two hours", 16, "output_ports[0].freshness.max_age",
         "'two hours' is not a duration", "like 26h"),
    ],
)
def test_bad_manifest_errors_name_file_line_field_and_fix(tmp_path, old, new, line, field, problem, fix):
    error = only_error(write_variant(tmp_path, old, new))
    assert error.file == str(tmp_path / "baskets.yaml")
    assert (error.line, error.field) == (line, field)
    assert problem in error.problem
    assert fix in error.fix
    assert str(error).startswith(f"{tmp_path / 'baskets.yaml'}:{line}: field '{field}': ")


def test_invalid_yaml_points_at_the_syntax_error(tmp_path):
    error = only_error(write_variant(tmp_path, "status: active", "status: [active"))
    assert error.line >= 6 and "not valid YAML" in error.problem and "YAML syntax" in error.fix


def test_every_problem_of_a_file_is_reported_at_once(tmp_path):
    path = write_variant(tmp_path, "archetype: source-aligned\nstatus: active", "archetype: x\nstatus: y")
    with pytest.raises(ManifestErrors) as caught:
        load_manifest(path)
    assert [(e.field, e.line) for e in caught.value.errors] == [("archetype", 5), ("status", 6)]


def test_missing_file_is_a_clear_error(tmp_path):
    error = only_error(tmp_path / "nope.yaml")
    assert "cannot be read" in error.problem


def test_every_sample_mesh_manifest_is_valid():
    manifests = sorted((Path(__file__).parent.parent / "mesh_code_locations").glob("*/products/*.yaml"))
    assert len(manifests) == 14
    for path in manifests:
        assert load_manifest(path).domain == path.parent.parent.name
