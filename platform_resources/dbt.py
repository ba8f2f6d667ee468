"""The per-domain dbt integration: a domain's dbt models are its private transformations.

The dbt manifest is prepared ahead of time (`mesh prepare`, and at the start of `mesh run`), so loading a
code location only reads a JSON file: no dbt parse at import time.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster import AssetKey, AutomationCondition
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource

from platform_resources.home import REPO_ROOT, mesh_home
from platform_resources.manifest import Manifest

DBT_PROJECTS = REPO_ROOT / "dbt_projects"


class DbtNotPreparedError(RuntimeError):
    pass


def project_dir(domain: str) -> Path:
    return DBT_PROJECTS / domain


def manifest_path(domain: str) -> Path:
    return project_dir(domain) / "target" / "manifest.json"


def internal_key(domain: str, *name: str) -> AssetKey:
    """Internal assets of a domain live under [domain, 'internal', ...]; no other domain may use them."""
    return AssetKey([domain, "internal", *name])


def input_schema(product_id: str) -> str:
    """DuckDB schema (and dbt source name) a consumer sees an upstream product's ports in."""
    return product_id.replace(".", "_")


def _project_files(domain: str) -> list[Path]:
    root = project_dir(domain)
    files = [root / "dbt_project.yml", root / "profiles.yml"]
    return files + [p for p in (root / "models").rglob("*") if p.is_file()]


def is_prepared(domain: str) -> bool:
    manifest = manifest_path(domain)
    if not manifest.exists():
        return False
    built = manifest.stat().st_mtime
    return all(p.stat().st_mtime <= built for p in _project_files(domain) if p.exists())


def prepare(domains: list[str]) -> list[str]:
    """Run `dbt parse` for every domain whose manifest is missing or older than its project. Returns those parsed."""
    stale = [domain for domain in domains if not is_prepared(domain)]
    if not stale:
        return []
    from dbt.cli.main import dbtRunner  # imported here, and only when needed: dbt is slow to import

    os.environ.setdefault("MESH_HOME", str(mesh_home()))
    parsed = []
    for domain in stale:
        folder = str(project_dir(domain))
        result = dbtRunner().invoke(["--quiet", "--no-use-colors", "parse", "--project-dir", folder, "--profiles-dir", folder])
        if not result.success:
            raise DbtNotPreparedError(f"dbt parse failed for {folder}: {result.exception or 'see the dbt output above'}")
        parsed.append(domain)
    return parsed


def load_manifest_json(domain: str) -> dict[str, Any]:
    path = manifest_path(domain)
    if not path.exists():
        raise DbtNotPreparedError(f"{path} is missing: the dbt project of '{domain}' has not been prepared. "
                                  f"Run `mesh prepare` (mesh run does it for you).")
    return json.loads(path.read_text())


def dbt_models_only_feeding(dbt_manifest: Mapping[str, Any], blocked: set[str], kept: set[str]) -> list[str]:
    """Names of the models upstream of (or among) `blocked` models that no `kept` model needs."""
    nodes = {node_id: node for node_id, node in dbt_manifest["nodes"].items() if node["resource_type"] == "model"}
    by_name = {node["name"]: node_id for node_id, node in nodes.items()}

    def upstream(names: set[str]) -> set[str]:
        seen, stack = set(), [by_name[n] for n in names if n in by_name]
        while stack:
            node_id = stack.pop()
            if node_id not in seen:
                seen.add(node_id)
                stack += [p for p in dbt_manifest["parent_map"].get(node_id, []) if p in nodes]
        return seen

    return sorted(nodes[n]["name"] for n in upstream(blocked) - upstream(kept))


def dbt_resource(domain: str) -> DbtCliResource:
    folder = project_dir(domain)
    return DbtCliResource(project_dir=str(folder), profiles_dir=str(folder), global_config_flags=["--no-use-colors"],
                          dbt_executable=str(Path(sys.executable).parent / "dbt"))


def model_relations(dbt_manifest: Mapping[str, Any]) -> dict[str, str]:
    """dbt model name -> the DuckDB relation it builds."""
    return {node["name"]: node["relation_name"] for node in dbt_manifest["nodes"].values()
            if node["resource_type"] == "model"}


class MeshDbtTranslator(DagsterDbtTranslator):
    """Models become internal assets of the domain; sources become the upstream ports or the ingestion assets."""

    def __init__(self, domain: str, products: list[Manifest]):
        super().__init__(DagsterDbtTranslatorSettings(enable_code_references=False))
        self.domain = domain
        self.owners = sorted({o for m in products for o in m.owner.dagster_owners if o.startswith("team:")})
        self.sources: dict[tuple[str, str], AssetKey] = {}
        for manifest in products:
            for port in manifest.input_ports:
                if port.source:
                    up_domain, up_product, up_port = port.source.split(".")
                    self.sources[(input_schema(f"{up_domain}.{up_product}"), up_port)] = AssetKey([up_domain, up_product, up_port])
                else:
                    system, table = port.operational.split(".")  # type: ignore[union-attr]
                    self.sources[(system, table)] = internal_key(domain, system, table)

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            declared = (dbt_resource_props["source_name"], dbt_resource_props["name"])
            if declared not in self.sources:
                raise ValueError(
                    f"dbt_projects/{self.domain}: source '{declared[0]}.{declared[1]}' is not an input port of any "
                    f"{self.domain} product. Declare it in a product manifest (from: domain.product.port, or "
                    f"operational: system.table), or remove it from the dbt sources.")
            return self.sources[declared]
        return internal_key(self.domain, dbt_resource_props["name"])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str:
        return f"{self.domain}_internal"

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> list[str]:
        return self.owners

    def get_tags(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, str]:
        return {**super().get_tags(dbt_resource_props), "mesh/visibility": "domain-internal"}

    def get_automation_condition(self, dbt_resource_props: Mapping[str, Any]) -> AutomationCondition:
        return AutomationCondition.eager()
