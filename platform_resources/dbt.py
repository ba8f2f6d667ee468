"""The per-domain dbt integration: a domain's dbt models are its private transformations.

The dbt manifest is prepared ahead of time (platform_resources.dbt_prepare: `mesh prepare`, and at the start of
`mesh run`), so loading a code location only reads a JSON file: no dbt parse at import time.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from packaging import version
from dagster import AssetKey, AutomationCondition
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliInvocation, DbtCliResource, DbtProject

from platform_resources import dbt_sandbox
from platform_resources.dbt_fork import forked_dbt_commands
from platform_resources.dbt_prepare import PLATFORM_PROFILE, PLATFORM_PROFILES_DIR, database_environment, environment_set, input_schema
from platform_resources.home import domain_duckdb_path
from platform_resources.manifest import Manifest
from platform_resources.registry import Domain


def internal_key(domain: str, *name: str) -> AssetKey:
    """Internal assets of a domain live under [domain, 'internal', ...]; no other domain may use them."""
    return AssetKey([domain, "internal", *name])


def duckdb_pool(domain: str) -> str:
    """The Dagster concurrency pool of every step that opens the domain's DuckDB file, which takes one writer at a
    time: two runs of one domain (mesh run and the daemon's automation, say) take turns instead of failing."""
    return f"{domain}_duckdb"


def project(domain: Domain) -> DbtProject:
    """The domain's dbt project, the dagster-dbt way, run with the platform's profile rather than its own."""
    return DbtProject(project_dir=domain.dbt_project, profiles_dir=PLATFORM_PROFILES_DIR, profile=PLATFORM_PROFILE)


def models_not_feeding(dbt_manifest: Mapping[str, Any], kept: set[str]) -> list[str]:
    """Names of the models that none of the `kept` models needs (a product without its inputs, a broken manifest)."""
    nodes = _models(dbt_manifest)
    return sorted(nodes[n]["name"] for n in set(nodes) - _upstream(dbt_manifest, kept))


def models_only_feeding(dbt_manifest: Mapping[str, Any], wanted: set[str], others: set[str]) -> list[str]:
    """Names of the models the `wanted` models need (themselves included) that none of the `others` needs."""
    nodes = _models(dbt_manifest)
    return sorted(nodes[n]["name"] for n in _upstream(dbt_manifest, wanted) - _upstream(dbt_manifest, others))


def _models(dbt_manifest: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {node_id: node for node_id, node in dbt_manifest["nodes"].items() if node["resource_type"] == "model"}


def _upstream(dbt_manifest: Mapping[str, Any], names: set[str]) -> set[str]:
    """The node ids of the named models and of every model they read, directly or not."""
    nodes = _models(dbt_manifest)
    by_name = {node["name"]: node_id for node_id, node in nodes.items()}
    seen, stack = set(), [by_name[n] for n in names if n in by_name]
    while stack:
        node_id = stack.pop()
        if node_id not in seen:
            seen.add(node_id)
            stack += [p for p in dbt_manifest["parent_map"].get(node_id, []) if p in nodes]
    return seen


def sources_read(dbt_manifest: Mapping[str, Any], translator: "MeshDbtTranslator", only: list[str] | None,
                 exclude: list[str] | None) -> set[str]:
    """The upstream port ids the models read (`only` these models, or all but `exclude`)."""
    models = [n for n in _models(dbt_manifest).values()
              if (only is None or n["name"] in only) and n["name"] not in (exclude or ())]
    sources = dbt_manifest.get("sources", {})
    keys = {translator.get_asset_key(sources[s]) for m in models for s in m["depends_on"]["nodes"] if s in sources}
    return {".".join(k.path) for k in keys if len(k.path) == 3 and k.path[1] != "internal"}


class MeshDbtCliResource(DbtCliResource):
    """dagster-dbt's resource, told the dbt version instead of asking: it runs `dbt --version` (a process that
    imports dbt, about 2 s) before every invocation, and the platform's dbt is always the dbt-core installed here."""

    @functools.cached_property
    def _cli_version(self) -> version.Version:
        return version.parse(importlib.metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:
        """No adapter: dagster-dbt loads dbt's project, profile and every macro in this process before each command
        (1-2 s) only for fetch_column_metadata and fetch_row_counts, which the platform does not use (asset_metadata
        reads the models' columns itself)."""
        return None

    def cli(self, args: Sequence[str], *, context=None, target_path: Path | None = None,
            **kwargs: Any) -> DbtCliInvocation:
        """dagster-dbt's invocation, its dbt command run in a fork of this process (dbt_fork): dbt is imported.

        A command with `--vars` (a partition window) starts from the parse state of its step's last such command:
        dbt parses the whole project again whenever the vars differ from those of the state it starts from, and
        the prepared state has none. dbt checks the state itself (files, vars, profile) and parses what changed."""
        if context is not None and target_path is None and "--vars" in args:
            target_path = Path(self.project_dir) / self._get_unique_target_path(context=context)
            state = _parse_state_of_step(Path(self.project_dir), context.op.name)
            if state.exists():
                target_path.mkdir(parents=True, exist_ok=True)
                shutil.copy(state, target_path / PARTIAL_PARSE)
        domain = os.environ[dbt_sandbox.DOMAIN]  # set by the step with the sandbox
        with environment_set(database_environment(domain)), \
                forked_dbt_commands(working_dir=domain_duckdb_path(domain).parent):
            return super().cli(args, context=context, target_path=target_path, **kwargs)


PARTIAL_PARSE = "partial_parse.msgpack"


def _parse_state_of_step(project_dir: Path, step: str) -> Path:
    return project_dir / "target" / f"partial_parse.{step}.msgpack"


def keep_parse_state(invocation: DbtCliInvocation, step: str) -> None:
    """After a command with `--vars`: its parse state is where the step's next one starts (MeshDbtCliResource.cli)."""
    state = invocation.target_path / PARTIAL_PARSE
    if "--vars" in invocation.process.args and state.exists():
        kept = _parse_state_of_step(invocation.project_dir, step)
        partial = kept.with_name(f"{kept.name}.{os.getpid()}")
        shutil.copy(state, partial)
        os.replace(partial, kept)  # at once: another run of the domain may be reading it


# dagster-dbt gives every dbt command a target folder of its own (`<step>-<run id>-<id>`, about 1 MB: manifest,
# run results, compiled SQL): a step keeps its latest ones to look into, not one per run for ever.
KEPT_INVOCATIONS = 5
RUNNING_SECONDS = 24 * 3600  # younger than this, a folder may belong to a run of the step still going


def prune_invocations(target: Path, step: str) -> list[Path]:
    """Remove the step's older invocation folders from the project's `target` (its KEPT_INVOCATIONS latest stay,
    and any younger than RUNNING_SECONDS); the ones removed."""
    modified = {}
    for folder in target.glob(f"{step}-*-*"):
        with contextlib.suppress(FileNotFoundError):  # another run of the step pruning it meanwhile
            if folder.is_dir():
                modified[folder] = folder.stat().st_mtime
    oldest_kept = time.time() - RUNNING_SECONDS
    removed = [f for f in sorted(modified, key=modified.get, reverse=True)[KEPT_INVOCATIONS:] if modified[f] < oldest_kept]
    for folder in removed:
        shutil.rmtree(folder, ignore_errors=True)  # another run pruning it too: gone either way
    return removed


def dbt_resource(domain: Domain) -> DbtCliResource:
    return MeshDbtCliResource(project_dir=project(domain), global_config_flags=["--no-use-colors"],
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
            # A source no healthy product declares (kept while its manifest is broken): internal, and never built.
            return self.sources.get(declared) or internal_key(self.domain, "undeclared_source", *declared)
        return internal_key(self.domain, dbt_resource_props["name"])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str:
        return f"{self.domain}_internal"

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> list[str]:
        return self.owners

    def get_tags(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, str]:
        return {**super().get_tags(dbt_resource_props), "mesh/visibility": "domain-internal"}

    def get_automation_condition(self, dbt_resource_props: Mapping[str, Any]) -> AutomationCondition:
        return AutomationCondition.eager()
