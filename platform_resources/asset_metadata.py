"""What the Dagster UI shows of a port or a dbt model beyond its key: column schema with the primary key, column
lineage, how to get access, and values in people's units. The port and dbt assets (port_asset, build) use these."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from dagster import (
    AssetKey,
    MetadataValue,
    Output,
    TableColumn,
    TableColumnConstraints,
    TableColumnDep,
    TableColumnLineage,
    TableConstraints,
    TableSchema,
)

from platform_resources.home import REPO_ROOT, domain_duckdb_path, workspace_file
from platform_resources.lineage.column_lineage import column_lineage
from platform_resources.lineage.duckdb_schema import relation_columns
from platform_resources.manifest import Manifest, OutputPort

PRIMARY_KEY_TAG = "mesh/primary_key"


def column_schema(port: OutputPort) -> TableSchema:
    """The contract's columns; every primary-key column is marked, a composite key's too (as a constraint, which the
    UI shows on the column, and a tag to filter on); unique only where the key is that one column."""
    key = port.contract.primary_key
    key_text = f"primary key ({', '.join(key)})" if len(key) > 1 else "primary key"
    columns = []
    for column in port.contract.columns:
        in_key = column.name in key
        tags = {"classification": column.classification or "unclassified", **({PRIMARY_KEY_TAG: ""} if in_key else {})}
        constraints = TableColumnConstraints(nullable=column.nullable and not in_key, unique=key == [column.name],
                                             other=[key_text] if in_key else None)
        columns.append(TableColumn(column.name, column.type, description=column.description, tags=tags,
                                   constraints=constraints))
    return TableSchema(columns=columns, constraints=TableConstraints(other=[f"primary key ({', '.join(key)})"])
                       if key else None)


def port_column_lineage(port: OutputPort, model_key: AssetKey) -> TableColumnLineage:
    """A port serves its dbt model's columns as they are: each column comes from the model's column of its name."""
    return TableColumnLineage(deps_by_column={
        column.name: [TableColumnDep(asset_key=model_key, column_name=column.name)] for column in port.contract.columns})


def display_path(path: Path | str) -> str:
    """A manifest's path as the people who share the repository see it: relative to the workspace (or the
    repository), never this machine's absolute path."""
    path = Path(path)
    if not path.is_absolute():
        return path.as_posix()
    for root in (workspace_file().parent, REPO_ROOT):
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            continue
    return path.name


def how_to_read(manifest: Manifest, port: OutputPort, port_id: str, manifest_file: str) -> MetadataValue:
    """What works for the reader: a command for public ports; for others who may read and how to ask."""
    if port.visibility == "public":
        return MetadataValue.md(f"Public: anyone may read it.\n\n`mesh read {port_id} --limit 10`")
    if port.visibility == "internal":
        return MetadataValue.md(f"Internal to {manifest.domain}: products of {manifest.domain} read it, as themselves:"
                                f"\n\n`mesh read {port_id} --limit 10 --as {manifest.domain}.<product>`")
    approved = "\n".join(f"- `{a.consumer}`: {a.reason}" for a in port.approved_access) or "- nobody yet"
    first = port.approved_access[0].consumer if port.approved_access else "<your.product>"
    return MetadataValue.md(
        f"**Restricted**: only the products {manifest.owner.label} approved may read it.\n\n"
        f"Approved consumers:\n{approved}\n\n"
        f"An approved product reads it as itself: `mesh read {port_id} --limit 10 --as {first}`.\n\n"
        f"**To request access**: in your product's manifest, read the port with a reason,\n\n"
        f"```yaml\ninput_ports:\n  - name: {port.name}\n    from: {port_id}\n    access_request: "
        f"{{reason: <why your product needs it>}}\n```\n\n"
        f"and ask the owner ({manifest.owner.label}) to add your product under `approved_access` of port "
        f"`{port.name}` in `{manifest_file}`. Until both are merged, reads fail with a policy error.")


# --- dbt models ------------------------------------------------------------------------------------

def _unquoted(relation: str) -> str:
    return ".".join(part.strip('"') for part in relation.split(".")).lower()


def _relation_columns(domain: str) -> dict[str, dict[str, str]]:
    """relation (db.schema.table, lower case) -> {column: type}, for every table and view of the domain's DuckDB."""
    path = domain_duckdb_path(domain)
    return relation_columns(path) if path.exists() else {}


def model_metadata(domain: str, dbt_manifest: Mapping[str, Any], translator) -> dict[str, dict]:
    """Per dbt model (unique id) that dbt compiled in this run: its column schema as built and its column lineage
    (sqlglot on the compiled SQL, every source column named by its Dagster asset: model, ingestion or upstream port).
    Read after the dbt build, when the domain's DuckDB is closed again."""
    columns = _relation_columns(domain)
    nodes = {**dbt_manifest.get("sources", {}), **dbt_manifest["nodes"]}
    keys = {_unquoted(n["relation_name"]): translator.get_asset_key(n) for n in nodes.values()
            if n.get("relation_name") and n["resource_type"] in ("model", "source")}
    metadata = {}
    for unique_id, node in dbt_manifest["nodes"].items():
        if node["resource_type"] != "model" or not node.get("compiled_code"):
            continue
        own = columns.get(_unquoted(node["relation_name"]), {})
        entry: dict = {}
        if own:
            entry["dagster/column_schema"] = TableSchema(columns=[
                TableColumn(name, kind, description=node.get("columns", {}).get(name, {}).get("description") or None)
                for name, kind in own.items()])
        parents = [nodes[p] for p in node["depends_on"]["nodes"] if p in nodes and nodes[p].get("relation_name")]
        schema = {p["relation_name"]: columns.get(_unquoted(p["relation_name"]), {}) for p in parents}
        traced = column_lineage(node["compiled_code"], {k: v for k, v in schema.items() if v})
        deps = {column: [TableColumnDep(asset_key=keys[table.lower()], column_name=source)
                         for table, source in sources if table.lower() in keys]
                for column, sources in traced.items()}
        if any(deps.values()):
            entry["dagster/column_lineage"] = TableColumnLineage(deps_by_column={c: d for c, d in deps.items() if d})
        if entry:
            metadata[unique_id] = entry
    return metadata


def with_model_metadata(events: Iterable, metadata_of) -> Iterator:
    """The dbt step's events, each model's materialization with the metadata `metadata_of()` reads once dbt has
    finished (the dbt process holds the domain's DuckDB until then, so the events wait for it)."""
    held = []
    try:
        for event in events:
            held.append(event)
    except BaseException:
        yield from held  # what dbt reported before the error still reaches Dagster
        raise
    try:
        metadata = metadata_of()
    except Exception:  # noqa: BLE001 (column metadata is for the UI; it never fails a run)
        metadata = {}
    for event in held:
        unique_id = getattr(event, "metadata", {}).get("unique_id") if isinstance(event, Output) else None
        extra = metadata.get(getattr(unique_id, "value", unique_id))
        yield event.with_metadata({**event.metadata, **extra}) if extra else event
