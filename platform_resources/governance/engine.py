"""Run every static policy over the mesh: findings per product, waivers applied, and who may not publish."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date

from platform_resources.governance import asset_graph as _asset_graph  # noqa: F401  registers MESH-ACC-002
from platform_resources.governance import model_reads as _model_reads  # noqa: F401  registers MESH-ACC-003
from platform_resources.governance import sql_policies as _sql_policies  # noqa: F401  registers MESH-SQL-001
from platform_resources.governance import static_policies as _static_policies  # noqa: F401  registers 1-10
from platform_resources.governance.context import AssetGraph, ProductContext, load_teams
from platform_resources.governance.local_policies import as_policy
from platform_resources.governance.policy import GLOBAL, Catalog, Finding, Policy, Violation
from platform_resources.governance.settings import effective_settings
from platform_resources.manifest import Manifest
from platform_resources.registry import Registry

# Findings that come from the platform itself rather than from a policy function.
SCHEMA = Policy("MESH-SCHEMA-001", "Manifest is valid", "The platform can only build what it can read.", "error", "static")
RESOLVE = Policy("MESH-REG-001", "Input ports resolve",
                 "A product builds on ports that exist, without cycles or duplicate ids.", "error", "static")
SETTINGS = Policy("MESH-GOV-001", "Local governance only tightens",
                  "Federated governance: domains add rules, they do not opt out of the mesh's.", "error", "static")
EXPIRED = Policy("MESH-GOV-002", "Waivers are current", "A waiver is a dated exception, not a permanent one.", "error",
                 "static")
for _policy in (SCHEMA, RESOLVE, SETTINGS, EXPIRED):
    GLOBAL.add(_policy)


@dataclass
class PolicyReport:
    findings: list[Finding] = field(default_factory=list)
    blocked: dict[str, str] = field(default_factory=dict)  # product id -> why it may not publish
    evaluated: dict[str, list[Policy]] = field(default_factory=dict)  # product id -> policies that ran on it
    not_run: dict[str, list[Policy]] = field(default_factory=dict)  # product id -> policies lacking what they need

    def for_product(self, product_id: str) -> list[Finding]:
        return [f for f in self.findings if f.product == product_id]

    def status(self, product_id: str) -> str:
        """compliant, warnings (unwaived warning findings) or blocked (may not publish)."""
        if product_id in self.blocked:
            return "blocked"
        return "warnings" if any(not f.waived for f in self.for_product(product_id)) else "compliant"

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.blocking]

    def by_domain(self) -> dict[str, list[Finding]]:
        grouped: dict[str, list[Finding]] = defaultdict(list)
        for finding in self.findings:
            grouped[finding.domain].append(finding)
        return dict(grouped)


def evaluate(registry: Registry, *, asset_graphs: dict[str, AssetGraph] | None = None,
             base: dict[str, Manifest] | None = None, today: date | None = None, catalog: Catalog = GLOBAL) -> PolicyReport:
    """Every static policy on every product of the registry.

    asset_graphs: code location -> its real Dagster asset graph (MESH-ACC-002 runs only where given).
    base: product id -> its manifest at a base revision (MESH-VER-001 runs only where given).
    """
    today = today or date.today()
    report = PolicyReport()
    _schema_findings(registry, report)
    try:
        teams, teams_problem = load_teams(registry), None
    except ValueError as exc:
        teams, teams_problem = frozenset(), str(exc)
    for product_id, manifest in registry.products.items():
        location = registry.locations[product_id]
        context = ProductContext(manifest, registry, teams, today, (asset_graphs or {}).get(location),
                                 (base or {}).get(product_id))
        report.findings += _product_findings(context, catalog, report, teams_problem)
    for product_id, problems in registry.problems.items():
        manifest = registry.products.get(product_id)
        file, line = (str(registry.files[product_id]), manifest.line_of("input_ports")) if manifest else ("(registry)", 1)
        domain = registry.location_of(product_id)
        report.findings += [Finding(RESOLVE.id, RESOLVE.title, "error", product_id, domain, p, file, line) for p in problems]
    _propagate_blocks(registry, report)
    return report


def _schema_findings(registry: Registry, report: PolicyReport) -> None:
    for product_id, errors in registry.broken.items():
        for error in errors.errors:
            message = f"field '{error.field}': {error.problem}; {error.fix}"
            report.findings.append(Finding(SCHEMA.id, SCHEMA.title, "error", product_id, product_id.split(".")[0],
                                           message, error.file, error.line))


def _product_findings(ctx: ProductContext, catalog: Catalog, report: PolicyReport,
                      teams_problem: str | None) -> list[Finding]:
    manifest = ctx.manifest
    settings = effective_settings(manifest, catalog)
    local = [as_policy(p) for p in manifest.governance.policies]
    policies = [*catalog.static(), *local]
    report.evaluated[manifest.id] = policies  # local runtime policies too: they run as asset checks at publish
    found: list[tuple[Policy, str, Violation]] = []
    for policy in policies:
        if policy.check is None:
            continue
        if policy.needs and getattr(ctx, policy.needs) is None:
            report.not_run.setdefault(manifest.id, []).append(policy)
            continue
        severity = settings.severities.get(policy.id, policy.severity)
        for violation in policy.check(ctx, settings.params.get(policy.id, {})):
            found.append((policy, severity, violation))
    if teams_problem:
        found.append((catalog["MESH-OWN-001"], "error", Violation(f"the teams file is broken: {teams_problem}", ("owner",))))
    found += [(SETTINGS, "error", v) for v in settings.problems]
    waivers, waiver_problems = _valid_waivers(ctx, settings.severities, catalog, {p.id for p in local})
    found += waiver_problems
    findings = []
    for policy, severity, violation in found:
        waiver = waivers.get(policy.id) if severity == "warning" else None
        findings.append(Finding(policy.id, policy.title, severity, manifest.id, ctx.location, violation.message,
                                str(ctx.registry.files[manifest.id]), manifest.line_of(*violation.at),
                                waiver.reason if waiver else None, waiver.expires if waiver else None))
    return findings


def _valid_waivers(ctx: ProductContext, severities: dict, catalog: Catalog, local_ids: set[str]):
    """The waivers that apply, and the problems of those that do not (unknown, error policy, expired)."""
    valid, problems = {}, []
    for i, waiver in enumerate(ctx.manifest.governance.waivers):
        at = ("governance", "waivers", i)
        known = catalog.get(waiver.policy) is not None or waiver.policy in local_ids
        severity = severities.get(waiver.policy) or next(
            (p.severity for p in ctx.manifest.governance.policies if p.id == waiver.policy), None)
        if not known:
            problems.append((SETTINGS, "error", Violation(f"waiver names unknown policy {waiver.policy}; "
                                                          "fix the id or remove the waiver", at)))
        elif severity == "error":
            problems.append((SETTINGS, "error", Violation(f"waiver for {waiver.policy}, an error-severity policy; "
                                                          "errors cannot be waived, fix the finding instead", at)))
        elif waiver.expires < ctx.today:
            problems.append((EXPIRED, "error", Violation(f"the waiver of {waiver.policy} expired on {waiver.expires} "
                                                         f"({waiver.reason}); fix the finding, or renew the waiver "
                                                         "with a new date and reason", (*at, "expires"))))
        else:
            valid[waiver.policy] = waiver
    return valid, problems


def _propagate_blocks(registry: Registry, report: PolicyReport) -> None:
    """A product with an unwaived error finding may not publish, nor may anything that reads it."""
    for finding in report.errors:
        report.blocked.setdefault(finding.product, f"{finding.policy} {finding.title}: {finding.message}")
    readers: dict[str, set[str]] = defaultdict(set)
    for manifest in registry.products.values():
        for port in manifest.input_ports:
            if port.source:
                readers[port.source.rsplit(".", 1)[0]].add(manifest.id)
    queue = list(report.blocked)
    while queue:
        upstream = queue.pop()
        for reader in sorted(readers[upstream] - set(report.blocked)):
            report.blocked[reader] = f"upstream product {upstream} is blocked by policy findings"
            queue.append(reader)
