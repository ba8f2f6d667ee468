"""Policy MESH-ACC-002 on the real Dagster asset graph of a code location, not on what the manifests claim.

A dbt model or a hand-written asset can read anything its code location can see. The manifests say which
upstream ports a product may read; the asset graph says which ones its assets really read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from dagster import AssetKey, AssetsDefinition, Definitions

from platform_resources.governance.context import AssetGraph, ProductContext
from platform_resources.governance.policy import Violation, policy


def graph_of_assets(assets: Iterable[AssetsDefinition]) -> AssetGraph:
    graph: AssetGraph = {}
    for assets_def in assets:
        for key, deps in assets_def.asset_deps.items():
            graph.setdefault(key, set()).update(deps)
    return graph


def graph_of_definitions(defs: Definitions) -> AssetGraph:
    """Every asset a loaded code location defines -> what it depends on."""
    asset_graph = defs.resolve_asset_graph()
    return {key: set(asset_graph.get(key).parent_keys) for key in asset_graph.get_all_asset_keys()
            if asset_graph.get(key).is_materializable}


def _feeds(graph: AssetGraph, targets: set[AssetKey]) -> set[AssetKey]:
    """The targets and every asset of the graph upstream of them."""
    seen, stack = set(), list(targets)
    while stack:
        key = stack.pop()
        if key in seen:
            continue
        seen.add(key)
        stack.extend(graph.get(key, ()))
    return seen & set(graph)


def _port_keys(ctx: ProductContext) -> set[AssetKey]:
    return {AssetKey([ctx.manifest.domain, ctx.manifest.product, p.name]) for p in ctx.manifest.output_ports}


@policy("MESH-ACC-002", "The code location reads only what its products may read",
        "Access rules hold for the code that runs, not only for the manifests.", "error", needs="asset_graph")
def asset_graph_respects_access(ctx: ProductContext, params: dict[str, Any]) -> Iterator[Violation]:
    graph = ctx.asset_graph
    location = ctx.location
    ports = _port_keys(ctx)
    # This product's assets, plus assets that feed no product at all: nobody else answers for those.
    fed_products = _feeds(graph, {k for k in graph if len(k.path) == 3 and k.path[0] == location and k.path[1] != "internal"})
    mine = _feeds(graph, ports) | (set(graph) - fed_products)
    declared = {p.source: (i, p) for i, p in enumerate(ctx.manifest.input_ports) if p.source}
    port_ids = set(ctx.registry.port_ids())
    for key in sorted(mine, key=lambda k: k.to_user_string()):
        for dep in sorted(graph[key], key=lambda k: k.to_user_string()):
            owner = dep.path[0]
            if owner == location:
                continue
            name = key.to_user_string()
            if len(dep.path) > 1 and dep.path[1] == "internal":
                yield Violation(f"asset {name} depends on {dep.to_user_string()}, an internal asset of domain '{owner}'; "
                                f"read one of {owner}'s output ports through an input port instead", ("input_ports",))
                continue
            port_id = ".".join(dep.path)
            if port_id not in port_ids:
                if ".".join(dep.path[:2]) in ctx.registry.broken:
                    continue  # its manifest is broken: MESH-REG-001 reports that
                if owner in ctx.registry.domains:  # another domain's asset that it does not serve as a port
                    yield Violation(f"asset {name} depends on {dep.to_user_string()}, an asset of domain '{owner}' "
                                    f"that is not one of its output ports; read {owner}'s ports through an input "
                                    "port instead", ("input_ports",))
                continue
            _, port = ctx.registry.port(port_id)
            if port.visibility == "public":
                continue
            if port_id not in declared:
                yield Violation(f"asset {name} reads {port.visibility} port {port_id}, which {ctx.manifest.id} does not "
                                f"declare as an input port; only products with an approved access request may read it",
                                ("input_ports",))
            elif port.visibility == "internal":
                yield Violation(f"asset {name} reads {port_id}, which is internal to domain '{owner}'",
                                ("input_ports", declared[port_id][0]))
            elif declared[port_id][1].access_request is None or \
                    not port.approves(ctx.manifest.id):
                yield Violation(f"asset {name} reads restricted {port_id} without an approved access request; add an "
                                f"access_request and ask the owner for approved_access", ("input_ports", declared[port_id][0]))


@policy("MESH-DBT-001", "Every output port has the dbt model that builds it",
        "A port is built by the dbt model of its name (or `model:`); without it the product cannot publish.",
        "error", needs="asset_graph")
def ports_have_models(ctx: ProductContext, params: dict[str, Any]) -> Iterator[Violation]:
    from platform_resources import dbt, dbt_prepare  # dagster-dbt is loaded only where policies see asset graphs

    domain = ctx.registry.domains.get(ctx.location)
    missing_project = dbt_prepare.missing_project(domain) if domain and domain.is_local else None
    for i, port in ctx.ports():
        if dbt.internal_key(ctx.location, port.dbt_model) in ctx.asset_graph:
            continue
        at = ("output_ports", i, "model") if port.model else ("output_ports", i, "name")
        if missing_project:
            yield Violation(f"port {port.name} needs dbt model '{port.dbt_model}', but {missing_project}", at)
            continue
        where = f"{domain.dbt_project}/models/{port.dbt_model}.sql" if domain and domain.dbt_project else \
            f"models/{port.dbt_model}.sql"
        yield Violation(f"port {port.name} is built by dbt model '{port.dbt_model}', which the dbt project does not "
                        f"have; add {where}, or set `model:` on the port to the model that builds it", at)
