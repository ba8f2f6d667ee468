"""`mesh validate`: grouped report, JSON, and --base comparing contracts with a git revision."""

import json
import subprocess

import yaml
from workspaces import make_workspace, manifest_file, product

from platform_resources.governance.validate import format_json, format_text, validate
from platform_resources.registry import load_registry


def git(root, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=root, check=True,
                   capture_output=True)


def shop_orders(version: str, columns: list[str]) -> dict:
    manifest = product("shop.orders", fresh=True)
    manifest["version"] = version
    manifest["output_ports"][0]["contract"]["columns"] += [
        {"name": name, "type": "varchar", "description": f"The {name}.", "classification": "internal"}
        for name in columns]
    return manifest


def test_base_revision_finds_a_breaking_change_without_a_major_bump(tmp_path):
    workspace = make_workspace(tmp_path, {"shop/orders.yaml": shop_orders("1.0.0", ["status", "note"])},
                               teams=("shop",))
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "base")
    path = manifest_file(tmp_path, "shop/orders.yaml")
    path.write_text(yaml.safe_dump(shop_orders("1.1.0", ["status"]), sort_keys=False))  # note removed

    report, failures = validate(load_registry(workspace, published=False), base="HEAD", load_locations=False)
    finding = next(f for f in report.errors if f.policy == "MESH-VER-001")
    assert "column note removed" in finding.message and "bump the major version (to 2.0.0)" in finding.message
    version_line = next(i for i, line in enumerate(path.read_text().splitlines(), 1) if line.startswith("version:"))
    assert (finding.file, finding.line) == (str(path), version_line)
    assert not failures

    path.write_text(yaml.safe_dump(shop_orders("2.0.0", ["status"]), sort_keys=False))
    report, _ = validate(load_registry(workspace, published=False), base="HEAD", load_locations=False)
    assert not report.findings


def test_the_text_report_groups_by_domain_and_severity_and_json_says_ok(tmp_path):
    broken = product("shop.orders")
    broken["output_ports"][0]["contract"]["columns"][0].pop("classification")  # error
    workspace = make_workspace(tmp_path, {"shop/orders.yaml": broken, "geo/nations.yaml": product("geo.nations")},
                               teams=("shop", "geo"))
    registry = load_registry(workspace, published=False)
    report, failures = validate(registry, load_locations=False)
    text = format_text(report, failures, registry)
    assert "shop: 1 products, 1 errors, 1 warnings, 0 waived" in text
    assert "geo: 1 products, 0 errors, 1 warnings, 0 waived" in text  # no freshness on a public port
    errors_at = text.index("  errors:")
    assert text.index("MESH-CLS-001", errors_at) < text.index("  warnings:", errors_at)
    assert "shop.orders: MESH-CLS-001" in text.split("cannot publish until fixed:")[1]
    as_json = json.loads(format_json(report, failures, registry))
    assert not as_json["ok"] and as_json["domains"]["shop"]["errors"][0]["policy"] == "MESH-CLS-001"
    assert as_json["domains"]["geo"]["errors"] == [] and len(as_json["domains"]["geo"]["warnings"]) == 1


def test_a_workspace_entry_that_loads_nothing_fails_validate_with_its_line(tmp_path, fresh_home, monkeypatch, capsys):
    from platform_resources.cli import main

    workspace = make_workspace(tmp_path, {"shop/orders.yaml": product("shop.orders", fresh=True)}, teams=("shop",))
    workspace.write_text(workspace.read_text() + "- python_module: {location_name: geo}\n")
    registry = load_registry(workspace, published=False)
    report, failures = validate(registry, load_locations=False)
    assert not report.errors and not failures
    text = format_text(report, failures, registry)
    line = len(workspace.read_text().splitlines())
    assert f"{workspace}: 1 entries load no code location" in text
    assert f"  {workspace}:{line}: field 'load_from.1.python_module.module_name': is missing." in text
    assert text.rstrip().endswith("1 errors, 0 warnings, 0 waived")
    as_json = json.loads(format_json(report, failures, registry))
    assert not as_json["ok"] and "module_name" in as_json["workspace_errors"][0]
    monkeypatch.setenv("MESH_WORKSPACE", str(workspace))
    assert main(["validate", "--manifests-only"]) == 1 and "entries load no code location" in capsys.readouterr().out
