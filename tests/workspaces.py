"""Temporary workspaces of manifests for registry, policy and report tests (imported as `workspaces`)."""

import shutil
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent


def copy_sample_mesh(root: Path) -> Path:
    """The repository's workspace, code locations, dbt projects (prepared: their target/ comes along) and governance
    folder under `root`, to change; its workspace.yaml."""
    for folder in ("mesh_code_locations", "dbt_projects", "governance"):
        shutil.copytree(REPO_ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__", "logs"))
    for file in ("workspace.yaml", "dg.toml"):
        shutil.copy(REPO_ROOT / file, root / file)
    return root / "workspace.yaml"


def product(product_id: str, inputs: list[str] = (), ports: tuple[str, ...] = ("main",), fresh: bool = False) -> dict:
    """A minimal manifest that loads and passes every policy, but MESH-SLO-001 unless `fresh` (26h freshness)."""
    domain = product_id.split(".")[0]
    freshness = {"freshness": {"max_age": "26h"}} if fresh else {}
    return {
        "id": product_id, "name": product_id, "description": f"The {product_id} product.",
        "owner": {"team": domain, "email": f"{domain}@example.com"},
        "archetype": "aggregate" if inputs else "source-aligned", "status": "active", "version": "1.0.0",
        "input_ports": [{"name": f"in_{i}", "from": source} for i, source in enumerate(inputs)]
        or [{"name": "system", "operational": f"{domain}_db.things"}],
        "output_ports": [{
            "name": port, "description": "A port.", "visibility": "public", "actual_time": "snapshot", **freshness,
            "contract": {"primary_key": ["id"], "columns": [
                {"name": "id", "type": "bigint", "description": "Key.", "classification": "public"}]},
        } for port in ports],
    }


def manifest_file(root: Path, name: str) -> Path:
    domain, file = name.split("/")
    return root / "locations" / domain / "products" / file


def make_workspace(root: Path, manifests: dict[str, dict | str], teams: tuple[str, ...] = ()) -> Path:
    """manifests: 'domain/file.yaml' -> manifest dict (or raw text for broken files); teams: the teams file."""
    domains = sorted({name.split("/")[0] for name in manifests})
    for name, content in manifests.items():
        path = manifest_file(root, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False))
    if teams:
        (root / "governance").mkdir(exist_ok=True)
        (root / "governance" / "teams.yaml").write_text(yaml.safe_dump(
            {"teams": [{"name": t, "email": f"{t}@example.com"} for t in teams]}))
    workspace = root / "workspace.yaml"
    workspace.write_text(yaml.safe_dump({"load_from": [
        {"python_module": {"module_name": f"locations.{d}.definitions", "location_name": d, "working_directory": "."}}
        for d in domains]}))
    return workspace
