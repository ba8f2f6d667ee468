"""Policy MESH-ACC-003 on the SQL a product's dbt models run: every relation and every file it reads.

A consumer domain's DuckDB holds the inputs of all its products side by side, and DuckDB can read files by path.
The manifests say which inputs a product may read; `source()` says which ones a model admits to. Only the SQL says
what it really reads, so the SQL is parsed (sqlglot): each relation must be one of the domain's own models or an
input the product declared, and no model reads a file or a table function. `mesh validate` checks the models as
written (Jinja rendered with ref/source); every publish checks the SQL that dbt compiled and ran.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import sqlglot
from sqlglot import exp

from platform_resources.governance.context import ProductContext
from platform_resources.governance.policy import Violation, policy
from platform_resources.manifest import Manifest
from platform_resources.registry import Registry

Relation = tuple[str, str]  # (schema, name), lower case; DuckDB's default schema is main
# Functions that read files, or other relations by name (query_table, query): never in a model's SQL.
READING_FUNCTIONS = ("read_", "glob", "sniff_csv", "parquet_", "iceberg_", "delta_scan", "duckdb_", "query",
                     "getvariable", "current_setting")
# The only table functions a model may call: they make rows out of values, not out of relations or files.
VALUE_TABLE_FUNCTIONS = {"unnest", "range", "generate_series"}


@dataclass(frozen=True)
class Read:
    model: str
    what: str  # a relation "schema.name", or a function like "read_parquet(...)"
    relation: Relation | None  # None: a file or a table function, never allowed


def _relation(table: exp.Table, database: str) -> Relation | None:
    if table.catalog and table.catalog.lower() != database.lower():
        return None  # another (attached) database
    return ((table.db or "main").lower(), table.name.lower())


@functools.lru_cache(maxsize=512)
def reads_of(model: str, sql: str, database: str) -> list[Read]:
    """Every relation and file function the SQL of `model` reads. SQL that cannot be parsed counts as a read of
    something unknown: the platform does not publish what it cannot check."""
    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except sqlglot.errors.SqlglotError as exc:
        return [Read(model, f"SQL the platform cannot parse ({str(exc).splitlines()[0][:120]})", None)]
    reads = []
    for statement in statements:
        ctes = {cte.alias_or_name.lower() for cte in statement.find_all(exp.CTE)}
        for function in statement.find_all(exp.Func):
            name = _function_name(function)
            if name.startswith(READING_FUNCTIONS) or name.endswith("_scan"):
                reads.append(Read(model, f"{name}(...)", None))
        for table in statement.find_all(exp.Table):
            if isinstance(table.this, exp.Func):
                name = _function_name(table.this)
                if name not in VALUE_TABLE_FUNCTIONS and not name.startswith(READING_FUNCTIONS):
                    reads.append(Read(model, f"table function {name}(...)", None))  # allow-listed, not deny-listed
                continue
            if not table.name:
                continue
            if not table.db and not table.catalog and table.name.lower() in ctes:
                continue
            relation = _relation(table, database)
            reads.append(Read(model, table.sql(dialect="duckdb"), relation))
    return reads


def _function_name(function: exp.Func) -> str:
    return (function.name if isinstance(function, exp.Anonymous) else function.sql_name()).lower()


def _render(node: Mapping[str, Any], dbt_manifest: Mapping[str, Any]) -> str | None:
    """A model's SQL as written, with ref() and source() resolved the way dbt compiles them; None when it uses
    Jinja beyond that (the compiled SQL is checked at publish)."""
    models = {n["name"]: n["relation_name"] for n in dbt_manifest["nodes"].values() if n["resource_type"] == "model"}
    sources = {(s["source_name"], s["name"]): s["relation_name"] for s in dbt_manifest["sources"].values()}

    def source(source_name: str, table: str) -> str:
        return sources.get((source_name, table)) or f'"{source_name}"."{table}"'

    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    context = {"ref": lambda *names: models.get(names[-1], names[-1]), "source": source, "config": lambda **_: "",
               "is_incremental": lambda: False, "this": node["relation_name"],
               "var": lambda name, default=None: default if default is not None else name}
    try:
        return env.from_string(node["raw_code"]).render(context)
    except Exception:  # noqa: BLE001  any Jinja this cannot render (a macro, an unusual call) is checked compiled
        return None


def _model_nodes(dbt_manifest: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {n["name"]: n for n in dbt_manifest["nodes"].values() if n["resource_type"] == "model"}


def declared_inputs(manifest: Manifest) -> set[Relation]:
    """The relations of a domain's DuckDB that a product may read: its input ports, as the platform loads them."""
    from platform_resources.dbt_prepare import input_schema

    relations = set()
    for port in manifest.input_ports:
        if port.source:
            up_domain, up_product, up_port = port.source.split(".")
            relations.add((input_schema(f"{up_domain}.{up_product}").lower(), up_port.lower()))
        elif port.operational:
            system, table = port.operational.split(".")
            relations.add((system.lower(), table.lower()))
    return relations


def undeclared_reads(manifest: Manifest, dbt_manifest: Mapping[str, Any], sql_of: Mapping[str, str | None],
                     database: str) -> Iterator[str]:
    """What the models building `manifest`'s ports read beyond its declared inputs (one message each).

    sql_of: model name -> the SQL to check (compiled, or rendered); a model missing from it is not checked.
    """
    models = _model_nodes(dbt_manifest)
    model_relations = {_key(node["relation_name"]): name for name, node in models.items()}
    allowed = declared_inputs(manifest)
    seen: set[str] = set()
    stack = [p.dbt_model for p in manifest.output_ports]
    while stack:
        name = stack.pop()
        if name in seen or name not in models:
            continue
        seen.add(name)
        stack += [parent.split(".")[-1] for parent in dbt_manifest["parent_map"].get(models[name]["unique_id"], [])
                  if parent.startswith("model.")]
        sql = sql_of.get(name)
        for read in reads_of(name, sql, database) if sql else []:
            if read.relation is None:
                yield (f"dbt model {name} reads {read.what}: a model may read only its domain's models (ref) and "
                       f"the declared input ports (source); remove it")
            elif read.relation in model_relations:
                stack.append(model_relations[read.relation])
            elif read.relation not in allowed:
                yield (f"dbt model {name} reads {read.what}, which {manifest.id} does not declare as an input port; "
                       f"declare it under input_ports (with an approved access request if it is restricted) and "
                       f"select it with source(), or remove the read")


def _key(relation_name: str) -> Relation:
    table = exp.to_table(relation_name, dialect="duckdb")
    return ((table.db or "main").lower(), table.name.lower())


def compiled_sql(dbt_manifest: Mapping[str, Any]) -> dict[str, str | None]:
    """The SQL dbt ran (a run's manifest.json), else the model as written (a prepared manifest has no compiled
    SQL: `mesh validate` and the code location check the models as written)."""
    return {name: node.get("compiled_code") or _render(node, dbt_manifest)
            for name, node in _model_nodes(dbt_manifest).items()}


def run_manifest_path(project_dir: Path, step: str, run_id: str) -> Path | None:
    """The manifest.json of the dbt invocation of `step` in run `run_id` (dagster-dbt's target path), else the
    latest one of the step; None if dbt never ran here."""
    target = project_dir / "target"
    found = sorted(target.glob(f"{step}-{run_id[:7]}-*/manifest.json")) or \
        sorted(target.glob(f"{step}-*/manifest.json"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def _project_sql(path: Path) -> tuple[dict[str, Any], dict[str, str | None]]:
    return _project_sql_at(str(path), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _project_sql_at(path: str, mtime_ns: int) -> tuple[dict[str, Any], dict[str, str | None]]:
    """A dbt manifest and its models' SQL (compiled where dbt ran them, else as written), once per version of the
    file: policies run per product, the publish check per port."""
    dbt_manifest = json.loads(Path(path).read_text())
    return dbt_manifest, compiled_sql(dbt_manifest)


@policy("MESH-ACC-003", "A product's dbt models read only its declared inputs",
        "The access rule holds for what the SQL reads: a relation loaded for another product of the domain, or a "
        "file read by path, would carry data the product was never approved for.", "error", needs="asset_graph")
def models_read_only_declared_inputs(ctx: ProductContext, params: dict[str, Any]) -> Iterator[Violation]:
    from platform_resources import dbt_prepare

    domain = ctx.registry.domains.get(ctx.location)
    if domain is None or not domain.is_local or dbt_prepare.missing_project(domain) or \
            not dbt_prepare.manifest_path(domain).exists():
        return
    dbt_manifest, sql = _project_sql(dbt_prepare.manifest_path(domain))
    for message in undeclared_reads(ctx.manifest, dbt_manifest, sql, ctx.location):
        yield Violation(message, ("input_ports",))


def leaks_at_publish(registry: Registry, manifest: Manifest, run_id: str) -> list[str]:
    """What the SQL dbt ran for this product (in run `run_id`, else its latest dbt run) read beyond its inputs."""
    from platform_resources import dbt_prepare

    domain = registry.domains[manifest.domain]
    if dbt_prepare.missing_project(domain):
        return []
    path = run_manifest_path(domain.dbt_project, f"{manifest.domain}_dbt_models", run_id) or dbt_prepare.manifest_path(domain)
    if not path.exists():
        dbt_prepare.load_manifest_json(domain)  # raises: the project was never prepared, says how to fix it
    dbt_manifest, sql = _project_sql(path)
    return list(undeclared_reads(manifest, dbt_manifest, sql, manifest.domain))
