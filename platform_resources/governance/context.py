"""What a static policy sees of one product: its manifest, the mesh around it, and its code location's assets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import yaml
from dagster import AssetKey

from platform_resources.home import REPO_ROOT
from platform_resources.manifest import Manifest, OutputPort
from platform_resources.registry import Registry

# An asset graph: every asset key a code location defines -> the asset keys it depends on.
AssetGraph = dict[AssetKey, set[AssetKey]]

TEAMS_FILE = Path("governance") / "teams.yaml"


@dataclass(frozen=True)
class ProductContext:
    manifest: Manifest
    registry: Registry
    teams: frozenset[str]
    today: date
    asset_graph: AssetGraph | None = None  # the product's code location, when it was loaded
    base: Manifest | None = None  # the same product at the base revision (mesh validate --base)

    @property
    def location(self) -> str:
        return self.registry.location_of(self.manifest.id)

    def ports(self) -> list[tuple[int, OutputPort]]:
        return list(enumerate(self.manifest.output_ports))


def teams_file(registry: Registry) -> Path:
    """The governance group's list of known teams: next to the workspace, else the platform checkout's (a workspace
    of code servers, like `mesh serve`'s in the mesh home, has no governance folder beside it)."""
    beside = registry.workspace.parent / TEAMS_FILE
    return beside if beside.exists() or not (REPO_ROOT / TEAMS_FILE).exists() else REPO_ROOT / TEAMS_FILE


def load_teams(registry: Registry) -> frozenset[str]:
    path = teams_file(registry)
    if not path.exists():
        return frozenset()
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not valid YAML ({exc}); fix the file, like: "
                         "teams: [{name: crm, email: crm-data@example.com}]") from None
    teams = document.get("teams") if isinstance(document, dict) else None
    if not isinstance(teams, list) or not all(isinstance(t, dict) and t.get("name") for t in teams):
        raise ValueError(f"{path}: 'teams' must be a list of entries with a 'name' (and 'email'); "
                         "fix the file, like: teams: [{name: crm, email: crm-data@example.com}]")
    return frozenset(str(t["name"]) for t in teams)
