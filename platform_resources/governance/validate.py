"""`mesh validate`: every static policy over every domain, on the manifests and the loaded code locations."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from datetime import date

from dagster import Definitions

from platform_resources.governance.asset_graph import graph_of_definitions
from platform_resources.governance.context import AssetGraph
from platform_resources.governance.contract_changes import manifest_at_revision
from platform_resources.governance.engine import PolicyReport, evaluate
from platform_resources.governance.policy import GLOBAL, Finding
from platform_resources.manifest import Manifest
from platform_resources.registry import Domain, Registry, published_registry


def load_asset_graphs(registry: Registry) -> tuple[dict[str, AssetGraph], dict[str, str]]:
    """The real asset graph of every code location, and the locations that failed to load (with why)."""
    from platform_resources import dbt_prepare
    from platform_resources.dagster_fixes import component_library_once

    component_library_once()  # the same for every location
    graphs, failures = {}, {}
    for name, domain in registry.domains.items():
        if not domain.is_local:
            continue
        try:  # one broken location is reported; the others are still checked
            dbt_prepare.prepare(registry, [name])
            if domain.module is not None:  # else served by a code server: its own deployment checks its graph
                graphs[name] = graph_of_definitions(load_definitions(domain))
        except Exception as exc:
            failures[name] = location_failure(registry, name, exc)
    return graphs, failures


def location_failure(registry: Registry, domain: str, exc: Exception) -> str:
    """Why a code location failed to load, naming its broken manifest first: that is what its owners fix."""
    first = next((errors.errors[0] for errors in registry.broken_in(domain).values()), None)
    cause = f"{first.file}:{first.line} is a broken manifest ({first.problem}); fix it first. Then " if first else ""
    return f"{cause}{type(exc).__name__}: {exc}"


def load_definitions(domain: Domain) -> Definitions:
    """A local domain's code location, imported the way its workspace entry says (module from its working directory)."""
    if domain.working_directory and str(domain.working_directory) not in sys.path:
        sys.path.insert(0, str(domain.working_directory))
    return importlib.import_module(domain.module).defs


def base_manifests(registry: Registry, revision: str) -> dict[str, Manifest]:
    root = registry.workspace.parent
    found = {}
    for product_id, path in registry.files.items():
        old = manifest_at_revision(root, path, revision)
        if old is not None:
            found[product_id] = old
    return found


def validate(registry: Registry, base: str | None = None, load_locations: bool = True,
             today: date | None = None) -> tuple[PolicyReport, dict[str, str]]:
    graphs, failures = load_asset_graphs(registry) if load_locations else ({}, {})
    report = evaluate(registry, asset_graphs=graphs, base=base_manifests(registry, base) if base else None, today=today)
    return report, failures


def _groups(findings: list[Finding]) -> dict[str, list[Finding]]:
    """A domain's findings as the report shows them: errors, open warnings, waived."""
    return {"errors": [f for f in findings if f.blocking], "warnings": [f for f in findings if f.open_warning],
            "waived": [f for f in findings if f.waived]}


def format_text(report: PolicyReport, failures: dict[str, str], registry: Registry) -> str:
    lines = []
    grouped = report.by_domain()
    for domain in registry.domains:
        groups = _groups(grouped.get(domain, []))
        errors, warnings, waived = groups["errors"], groups["warnings"], groups["waived"]
        products = len(registry.products_of(domain))
        lines.append(f"{domain}: {products} products, {len(errors)} errors, {len(warnings)} warnings, {len(waived)} waived")
        if domain in failures:
            lines.append(f"  code location failed to load: {failures[domain]}")
        for title, group in groups.items():
            if group:
                lines.append(f"  {title}:")
                lines += [f"    {f.as_text()}" for f in group]
    if registry.workspace_errors:
        lines.append(f"{registry.workspace}: {len(registry.workspace_errors)} entries load no code location")
        lines += [f"  {e}" for e in registry.workspace_errors]
    if report.blocked:
        lines.append("")
        lines.append("cannot publish until fixed:")
        lines += [f"  {product}: {why}" for product, why in sorted(report.blocked.items())]
    lines.append("")
    total_errors = len(report.errors) + len(failures) + len(registry.workspace_errors)
    lines.append(f"{len(registry.products)} products checked against {len(GLOBAL.static())} global static policies: "
                 f"{total_errors} errors, {sum(f.open_warning for f in report.findings)} warnings"
                 f", {sum(f.waived for f in report.findings)} waived")
    return "\n".join(lines)


def format_json(report: PolicyReport, failures: dict[str, str], registry: Registry) -> str:
    grouped = report.by_domain()
    return json.dumps({
        "domains": {domain: {
            **{title: [f.as_dict() for f in group] for title, group in _groups(grouped.get(domain, [])).items()},
            "location_error": failures.get(domain),
        } for domain in registry.domains},
        "blocked": report.blocked,
        "workspace_errors": [str(e) for e in registry.workspace_errors],
        "ok": not report.errors and not failures and not registry.workspace_errors,
    }, indent=1)


def format_policies() -> str:
    lines = [f"{'id':<16} {'severity':<8} {'phase':<8} title"]
    for policy in GLOBAL.policies.values():
        lines.append(f"{policy.id:<16} {policy.severity:<8} {policy.phase:<8} {policy.title}: {policy.rationale}")
        lines += [f"{'':<35}threshold {p.name} = {p.default!r} (may only go {p.stricter}): {p.help}"
                  for p in policy.parameters]
    return "\n".join(lines)


def _validate(args: argparse.Namespace) -> int:
    from platform_resources.governance import runtime  # noqa: F401  lists the runtime policies too
    from platform_resources.home import prepare_home

    if args.policies:
        print(format_policies())
        return 0
    prepare_home()
    registry = published_registry()
    report, failures = validate(registry, base=args.base, load_locations=not args.manifests_only)
    print((format_json if args.format == "json" else format_text)(report, failures, registry))
    return 1 if report.errors or failures or registry.workspace_errors else 0


def add_command(commands: argparse._SubParsersAction, help: str) -> None:
    parser = commands.add_parser("validate", help=help)
    parser.add_argument("--base", help="git revision to compare contracts with (breaking changes need a major bump)")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    parser.add_argument("--manifests-only", action="store_true",
                        help="do not load the code locations (skips the asset-graph policy MESH-ACC-002)")
    parser.add_argument("--policies", action="store_true", help="list the policies and their thresholds, then exit")
    parser.set_defaults(handler=_validate)
