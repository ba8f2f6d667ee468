"""A domain deployed alone: its own code location and dbt project, the platform installed, no other domain's files.

It finds the mesh through the registry store the producers published to, reads their ports and publishes.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from platform_resources import ports
from platform_resources.registry import load_registry

REPO_ROOT = Path(__file__).resolve().parent.parent
MESH = Path(sys.executable).parent / "mesh"


def marketing_alone(root: Path) -> Path:
    """marketing's repository, as its team would have it: code location, dbt project, governance's teams file."""
    skip = shutil.ignore_patterns("__pycache__", "target", "logs", "_mesh_sources.yml")
    for folder in ("mesh_code_locations/marketing", "dbt_projects/marketing", "governance"):
        shutil.copytree(REPO_ROOT / folder, root / folder, ignore=skip)
    workspace = root / "workspace.yaml"
    workspace.write_text("load_from:\n  - python_module: {module_name: marketing_domain.definitions, "
                         "location_name: marketing, working_directory: mesh_code_locations/marketing}\n")
    return workspace


def test_a_consumer_domain_deployed_alone_loads_resolves_its_inputs_reads_the_producers_and_publishes(
        tmp_path, mesh_run):
    workspace = marketing_alone(tmp_path)
    assert sorted(p.name for p in (tmp_path / "mesh_code_locations").iterdir()) == ["marketing"]
    assert sorted(p.name for p in (tmp_path / "dbt_projects").iterdir()) == ["marketing"]
    registry = load_registry(workspace)
    assert registry.domains["marketing"].is_local and not registry.domains["crm"].is_local
    assert not registry.problems, registry.problems  # crm and sales resolve through the registry store
    marketing_ports = [f"{m.id}.{p.name}" for m in registry.products_of("marketing") for p in m.output_ports]
    before = {p: ports.resolve_version(p).processing_time for p in marketing_ports}

    env = {**os.environ, "MESH_WORKSPACE": str(workspace)}
    result = subprocess.run([str(MESH), "run", "--domain", "marketing"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for port_id in marketing_ports:
        assert ports.resolve_version(port_id).processing_time > before[port_id]
        assert f"{port_id:<45}" in result.stdout and "published" in result.stdout
    # dbt ran in the copy: the sources it read were generated there from marketing's own manifests.
    assert list((tmp_path / "dbt_projects/marketing/target").rglob("run_results.json"))
    sources = (tmp_path / "dbt_projects/marketing/models/_mesh_sources.yml").read_text()
    assert "crm_customers" in sources and "sales_orders" in sources
