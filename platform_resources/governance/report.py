"""`mesh report`: a compliance report per domain and product, as Markdown or one self-contained HTML page.

Per product: the policies it passed, failed and had waived, and whether it may publish; per output port: the
last publish, the SLO results, its consumers and the reads in the access log. `build_report` gathers plain
data (the policy engine's report plus the platform's records); `to_markdown` and `to_html` only render it.
Every product and port links to its page in the Dagster UI (MESH_DAGSTER_URL, default http://localhost:3000).
"""

from __future__ import annotations

import argparse
import html
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from platform_resources.governance.engine import PolicyReport
from platform_resources.governance.policy import Finding

if TYPE_CHECKING:
    from platform_resources.manifest import Manifest, OutputPort
    from platform_resources.ports import PortVersion
    from platform_resources.registry import Registry

COMPLIANCE = ("compliant", "warnings", "blocked")  # best to worst
COMPLIANCE_LABEL = {"compliant": "compliant", "warnings": "with warnings", "blocked": "blocked"}
FORMATS = {"markdown": "md", "html": "html"}
# Why a policy did not run, by what it needs (Policy.needs); the engine lists it under PolicyReport.not_run.
NOT_RUN_BECAUSE = {"base": "needs a base revision; run mesh validate --base <revision>",
                   "asset_graph": "code locations not loaded: --manifests-only"}


# --- data ------------------------------------------------------------------------------------------

def build_report(registry: Registry, policy_report: PolicyReport, today: date, *,
                 location_failures: dict[str, str] | None = None, now: datetime | None = None) -> dict[str, Any]:
    """The report as plain data: domain -> product -> policies and ports.

    location_failures: domain -> why its code location did not load (its asset-graph policy did not run).
    """
    now = now or datetime.now(UTC)
    location_failures = location_failures or {}
    domains: dict[str, dict[str, Any]] = {}
    not_run: dict[str, str] = {}  # policy id -> why, over the whole mesh
    for domain in registry.domains:
        reasons = dict(NOT_RUN_BECAUSE)
        if domain in location_failures:
            reasons["asset_graph"] = f"the code location failed to load: {location_failures[domain]}"
        skipped = {p.id: reasons[p.needs] for m in registry.products_of(domain)
                   for p in policy_report.not_run.get(m.id, [])}
        not_run.update({pid: why for pid, why in skipped.items() if domain not in location_failures})
        products = {m.id: _product(registry, policy_report, m, skipped, now) for m in registry.products_of(domain)}
        domains[domain] = {"name": domain, "location_error": location_failures.get(domain), "products": products}
    for product_id, domain in _unloaded(registry, policy_report).items():
        entry = domains.setdefault(domain, {"name": domain, "location_error": None, "products": {}})
        entry["products"][product_id] = _unloaded_product(registry, policy_report, product_id)
    for entry in domains.values():
        entry["summary"] = _counts(entry["products"].values())
    return {
        "generated": today.isoformat(),
        "generated_at": now.isoformat(timespec="seconds"),
        "workspace": str(registry.workspace),
        "not_run": not_run,
        "totals": {"domains": len(domains), **_counts(p for d in domains.values() for p in d["products"].values())},
        "domains": domains,
    }


def _counts(products) -> dict[str, int]:
    products = list(products)
    return {"products": len(products), **{c: sum(p["compliance"] == c for p in products) for c in COMPLIANCE}}


def _relative(registry: Registry, file: str | Path) -> str:
    """A path relative to the repository when it is inside it (shorter, and the same on every machine)."""
    try:
        return str(Path(file).relative_to(registry.workspace.parent))
    except ValueError:
        return str(file)


def _row(registry: Registry, finding: Finding) -> dict[str, Any]:
    return {"policy": finding.policy, "title": finding.title, "severity": finding.severity, "message": finding.message,
            "location": f"{_relative(registry, finding.file)}:{finding.line}"}


def _policies(registry: Registry, policy_report: PolicyReport, product_id: str,
              skipped: dict[str, str]) -> dict[str, Any]:
    findings = policy_report.for_product(product_id)
    found = {f.policy for f in findings}
    passed, not_run, seen = [], [], set()
    for policy in policy_report.evaluated.get(product_id, []):
        if policy.phase != "static" or policy.id in seen:
            continue  # runtime policies are checked at publish; they are listed on the ports
        seen.add(policy.id)
        if policy.id in skipped:
            not_run.append({"id": policy.id, "title": policy.title, "reason": skipped[policy.id]})
        elif policy.id not in found:
            passed.append({"id": policy.id, "title": policy.title})
    failed = [_row(registry, f) for f in findings if not f.waived]
    waived = [{**_row(registry, f), "reason": f.waived_reason,
               "until": f.waived_until.isoformat() if f.waived_until else None} for f in findings if f.waived]
    return {"compliance": policy_report.status(product_id),
            "blocked_reason": policy_report.blocked.get(product_id),
            "passed": passed, "failed": failed, "waived": waived, "not_run": not_run}


def _product(registry: Registry, policy_report: PolicyReport, manifest: Manifest, skipped: dict[str, str],
             now: datetime) -> dict[str, Any]:
    from platform_resources.catalog import dagster_asset_url

    return {"id": manifest.id, "name": manifest.name, "owner": manifest.owner.label, "status": manifest.status,
            "version": manifest.version, "manifest": _relative(registry, registry.files[manifest.id]),
            "dagster_url": dagster_asset_url(manifest.domain, manifest.product),
            **_policies(registry, policy_report, manifest.id, skipped),
            "ports": {p.name: _port(registry, policy_report, manifest, p, now) for p in manifest.output_ports}}


def _unloaded(registry: Registry, policy_report: PolicyReport) -> dict[str, str]:
    """Products with findings that the registry could not load (broken or duplicate manifests) -> their domain."""
    ids = {f.product: f.domain for f in policy_report.findings if f.product not in registry.products}
    return dict(sorted(ids.items()))


def _unloaded_product(registry: Registry, policy_report: PolicyReport, product_id: str) -> dict[str, Any]:
    findings = policy_report.for_product(product_id)
    return {"id": product_id, "name": product_id, "owner": "unknown", "status": "not loaded", "version": "-",
            "dagster_url": None,
            "manifest": _relative(registry, findings[0].file) if findings else "-",
            "compliance": "blocked",
            "blocked_reason": policy_report.blocked.get(product_id) or "the manifest could not be loaded",
            "passed": [], "not_run": [],
            "failed": [_row(registry, f) for f in findings if not f.waived],
            "waived": [], "ports": {}}


def _last_publish(version: PortVersion | None, observed: dict) -> dict[str, Any] | None:
    if observed["last_processing_time"] is None and observed["metrics"] is None:
        return None
    # No version with metrics recorded: the table is gone (another catalog, or a wiped warehouse).
    return {"processing_time": observed["last_processing_time"] or observed["slo_status"]["processing_time"],
            "snapshot_id": version.snapshot_id if version else None, "rows": (observed["metrics"] or {}).get("row_count")}


def _reads(port_id: str) -> dict[str, Any]:
    from platform_resources import access_log

    log = access_log.entries(port_id=port_id)
    denied = [e for e in log if not e.allowed]  # newest first
    return {"allowed": len(log) - len(denied), "denied": len(denied),
            "last_denied": denied[0].consumer if denied else None,
            "last_denied_reason": denied[0].reason if denied else None}


def _port(registry: Registry, policy_report: PolicyReport, manifest: Manifest, port: OutputPort,
          now: datetime) -> dict[str, Any]:
    from platform_resources.catalog import dagster_asset_url, last_version, observe
    from platform_resources.governance.runtime import checks_of

    port_id = f"{manifest.id}.{port.name}"
    version = last_version(port_id)
    observed = observe(port_id, port, version, now)
    return {
        "id": port_id, "name": port.name, "visibility": port.visibility,
        "dagster_url": dagster_asset_url(manifest.domain, manifest.product, port.name),
        "last_publish": _last_publish(version, observed),
        "slo_status": observed["slo_status"]["overall"],
        "slos": observed["slo_status"]["results"],
        "runtime_checks": list(dict.fromkeys(c.policy.id for c in checks_of(manifest, port))),
        "consumers": [{"id": c, "blocked": c in policy_report.blocked} for c in registry.consumers(port_id)],
        "approved_access": [a.consumer for a in port.approved_access],
        "reads": _reads(port_id),
    }


def summary_line(data: dict[str, Any]) -> str:
    totals = data["totals"]
    return (f"{totals['domains']} domains, {totals['products']} products: {totals['compliant']} compliant, "
            f"{totals['warnings']} with warnings, {totals['blocked']} blocked")


# --- text pieces shared by both formats ------------------------------------------------------------

def _slo_text(slo: dict[str, Any]) -> str:
    when = " (now)" if slo.get("evaluated") == "now" else ""
    verdict = {True: "passed", False: f"breached ({slo['severity']})", None: "unknown"}[slo["passed"]]
    return f"{slo['name']}{when} {verdict}"


def _publish_text(port: dict[str, Any]) -> str:
    last = port["last_publish"]
    if last is None:
        return "never published"
    rows = "?" if last["rows"] is None else f"{last['rows']:,}"
    snapshot = "?" if last["snapshot_id"] is None else last["snapshot_id"]
    return f"{last['processing_time']}, snapshot {snapshot}, {rows} rows"


def _reads_text(reads: dict[str, Any]) -> str:
    text = f"{reads['allowed']} allowed, {reads['denied']} denied"
    return text + (f" (last denied: {reads['last_denied']})" if reads["last_denied"] else "")


def _consumers_text(port: dict[str, Any]) -> str:
    return ", ".join(c["id"] + (" (blocked)" if c["blocked"] else "") for c in port["consumers"]) or "none"


def _slos_text(port: dict[str, Any]) -> str:
    if port["last_publish"] is None:
        return "-"
    return "; ".join(_slo_text(s) for s in port["slos"]) or "none declared"


# --- Markdown --------------------------------------------------------------------------------------

def _md(value: object) -> str:
    """Text from manifests as Markdown: pipes would end a table cell, newlines a row, '<' open an HTML tag."""
    text = str(value).replace("\\", "\\\\")
    for char in "|<*`":
        text = text.replace(char, "\\" + char)
    return text.replace("\n", " ")


def _md_table(header: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows] + [""]


def to_markdown(data: dict[str, Any]) -> str:
    lines = ["# Mesh compliance report", "", f"Generated {data['generated_at']}: {summary_line(data)}.", ""]
    lines += [_md(f"Not run: {policy} ({why}).") for policy, why in data["not_run"].items()]
    lines += ["", "## Summary", ""]
    lines += _md_table(["Domain", "Products", "Compliant", "With warnings", "Blocked"],
                       [[d["name"], *(d["summary"][k] for k in ("products", *COMPLIANCE))]
                        for d in data["domains"].values()])
    for domain in data["domains"].values():
        lines += [f"## Domain {domain['name']}", ""]
        if domain["location_error"]:
            lines += [_md(f"Code location failed to load: {domain['location_error']}"), ""]
        for product in domain["products"].values():
            lines += _md_product(product)
    return "\n".join(lines).rstrip() + "\n"


def _md_product(product: dict[str, Any]) -> list[str]:
    in_dagster = f" [In Dagster]({product['dagster_url']})." if product["dagster_url"] else ""
    lines = [f"### {product['id']}: {COMPLIANCE_LABEL[product['compliance']]}", "",
             _md(f"Owner {product['owner']}, status {product['status']}, version {product['version']}, ")
             + f"manifest `{product['manifest']}`.{in_dagster}", "",
             (f"Policies: {len(product['passed'])} passed, {len(product['failed'])} failed, "
             f"{len(product['waived'])} waived."), ""]
    if product["blocked_reason"]:
        lines += [f"**Blocked** (may not publish): {_md(product['blocked_reason'])}", ""]
    if product["failed"]:
        lines += ["Failed:", ""]
        lines += _md_table(["Policy", "Severity", "Finding", "Where"],
                           [[f"{f['policy']} {f['title']}", f["severity"], f["message"], f["location"]]
                            for f in product["failed"]])
    if product["waived"]:
        lines += ["Waived:", ""]
        lines += _md_table(["Policy", "Finding", "Reason", "Until"],
                           [[f"{f['policy']} {f['title']}", f["message"], f["reason"], f["until"]]
                            for f in product["waived"]])
    if product["passed"]:
        lines += ["Passed: " + ", ".join(p["id"] for p in product["passed"]), ""]
    if product["not_run"]:
        lines += ["Not run: " + ", ".join(p["id"] for p in product["not_run"]), ""]
    if product["ports"]:
        lines += _md_table(["Port", "Visibility", "Last publish", "SLOs", "Consumers", "Reads", "Publish checks"],
                           [[f"[{p['id']}]({p['dagster_url']})", p["visibility"], _publish_text(p), _slos_text(p), _consumers_text(p),
                             _reads_text(p["reads"]), ", ".join(p["runtime_checks"])]
                            for p in product["ports"].values()])
    return lines


# --- HTML ------------------------------------------------------------------------------------------

def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


_CSS = """
body{font-family:"DejaVu Sans",Arial,sans-serif;margin:24px;color:#1d2329;background:#f6f8fa}
h1{margin:0 0 4px}h2{margin:28px 0 8px;border-bottom:2px solid #c9d1db}h3{margin:18px 0 6px}
.meta{color:#555;font-size:13px;margin:2px 0 8px}
table{border-collapse:collapse;font-size:13px;background:#fff;margin:6px 0 10px}
td,th{border:1px solid #d5dbe3;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5}td.n{text-align:right}
.product{background:#fff;border:1px solid #c9d1db;border-radius:8px;padding:4px 14px 8px;margin:10px 0}
.card-blocked{border:2px solid #b00020}.card-warnings{border-left:6px solid #d18b00}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:bold;border:1px solid}
.compliant,.passed{background:#e3f4e8;color:#145a2a;border-color:#2e8b57}
.warnings,.warning{background:#fff3d6;color:#7a4b00;border-color:#d18b00}
.blocked,.breached,.error{background:#fde8eb;color:#8a0019;border-color:#b00020}
.unknown{background:#eceff3;color:#3c4650;border-color:#8894a0}
.why{color:#8a0019}.ids{font-family:"DejaVu Sans Mono",monospace;font-size:12px;color:#333}
footer{margin-top:24px;color:#666;font-size:12px}
"""


def _badge(text: str, kind: str) -> str:
    return f'<span class="badge {_e(kind)}">{_e(text)}</span>'


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    """rows hold cells already escaped (some carry markup)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def to_html(data: dict[str, Any]) -> str:
    summary = _html_table(
        ["Domain", "Products", "Compliant", "With warnings", "Blocked"],
        [[f'<a href="#domain-{_e(d["name"])}">{_e(d["name"])}</a>',
          *(f"{d['summary'][k]}" for k in ("products", *COMPLIANCE))] for d in data["domains"].values()])
    not_run = "".join(f'<p class="meta">Not run: {_e(p)} ({_e(why)}).</p>' for p, why in data["not_run"].items())
    body = "".join(_html_domain(d) for d in data["domains"].values())
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>Mesh compliance report</title><style>{_CSS}</style></head><body>'
            f'<h1>Mesh compliance report</h1><p class="meta">Generated {_e(data["generated_at"])}: '
            f'{_e(summary_line(data))}.</p>{not_run}<h2>Summary</h2>{summary}{body}'
            '<footer>From the product manifests, the policy engine and the platform\'s publish, metrics and '
            'access records. Regenerate with <code>mesh report --format html</code>.</footer></body></html>\n')


def _html_domain(domain: dict[str, Any]) -> str:
    error = f'<p class="why">Code location failed to load: {_e(domain["location_error"])}</p>' \
        if domain["location_error"] else ""
    return (f'<h2 id="domain-{_e(domain["name"])}">Domain {_e(domain["name"])}</h2>{error}'
            + "".join(_html_product(p) for p in domain["products"].values()))


def _html_product(product: dict[str, Any]) -> str:
    compliance = product["compliance"]
    name = (f'<a href="{_e(product["dagster_url"])}" title="{_e(product["id"])} in Dagster">{_e(product["id"])}</a>'
            if product["dagster_url"] else _e(product["id"]))
    parts = [(f'<h3 id="product-{_e(product["id"])}">{name} '
             f'{_badge(COMPLIANCE_LABEL[compliance], compliance)}</h3>'),
             (f'<p class="meta">Owner {_e(product["owner"])} \u00b7 status {_e(product["status"])} \u00b7 version '
             f'{_e(product["version"])} \u00b7 manifest <code>{_e(product["manifest"])}</code> \u00b7 policies: '
             f'{len(product["passed"])} passed, {len(product["failed"])} failed, {len(product["waived"])} waived</p>')]
    if product["blocked_reason"]:
        parts.append(f'<p class="why"><b>Blocked</b> (may not publish): {_e(product["blocked_reason"])}</p>')
    if product["failed"]:
        parts.append("<b>Failed</b>" + _html_table(
            ["Policy", "Severity", "Finding", "Where"],
            [[f"{_e(f['policy'])} {_e(f['title'])}", _badge(f["severity"], f["severity"]), _e(f["message"]),
              f"<code>{_e(f['location'])}</code>"] for f in product["failed"]]))
    if product["waived"]:
        parts.append("<b>Waived</b>" + _html_table(
            ["Policy", "Finding", "Reason", "Until"],
            [[f"{_e(f['policy'])} {_e(f['title'])}", _e(f["message"]), _e(f["reason"]), _e(f["until"])]
             for f in product["waived"]]))
    for label, key in (("Passed", "passed"), ("Not run", "not_run")):
        if product[key]:
            ids = ", ".join(f'<span title="{_e(p["title"])}">{_e(p["id"])}</span>' for p in product[key])
            parts.append(f'<p><b>{label}:</b> <span class="ids">{ids}</span></p>')
    if product["ports"]:
        parts.append(_html_table(["Port", "Visibility", "Last publish", "SLOs", "Consumers", "Reads", "Publish checks"],
                                 [_html_port(p) for p in product["ports"].values()]))
    return f'<div class="product card-{_e(compliance)}">{"".join(parts)}</div>'


def _html_port(port: dict[str, Any]) -> list[str]:
    if port["last_publish"] is None:
        slos = "-"
    else:
        kinds = {True: "passed", False: "breached", None: "unknown"}
        slos = "<br>".join(_badge(_slo_text(s), kinds[s["passed"]] if s["passed"] is not False else s["severity"])
                           for s in port["slos"]) or "none declared"
    consumers = ", ".join(_e(c["id"]) + (" " + _badge("blocked", "blocked") if c["blocked"] else "")
                          for c in port["consumers"]) or "none"
    reads = port["reads"]
    title = f' title="{_e(reads["last_denied_reason"])}"' if reads["last_denied_reason"] else ""
    return [f'<a href="{_e(port["dagster_url"])}"><code>{_e(port["id"])}</code></a>', _e(port["visibility"]), _e(_publish_text(port)), slos, consumers,
            f"<span{title}>{_e(_reads_text(reads))}</span>", f'<span class="ids">{_e(", ".join(port["runtime_checks"]))}</span>']


# --- command ---------------------------------------------------------------------------------------

def _format(args: argparse.Namespace) -> str:
    """--format wins; otherwise the output's suffix decides, and Markdown is the default."""
    if args.format:
        return args.format
    return "html" if args.output and args.output.suffix.lower() in (".html", ".htm") else "markdown"


def _report(args: argparse.Namespace) -> int:
    from platform_resources.governance.validate import validate
    from platform_resources.home import mesh_home, prepare_home
    from platform_resources.registry import load_registry

    prepare_home()
    registry = load_registry()
    today = date.today()
    policy_report, failures = validate(registry, load_locations=not args.manifests_only, today=today)
    data = build_report(registry, policy_report, today, location_failures=failures)
    kind = _format(args)
    path = Path(args.output or mesh_home() / f"compliance-report.{FORMATS[kind]}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text((to_html if kind == "html" else to_markdown)(data), encoding="utf-8")
    print(path)
    print(summary_line(data))
    return 0


def add_command(commands: argparse._SubParsersAction, help: str) -> argparse.ArgumentParser:
    """`mesh report [--format markdown|html] [--output PATH] [--manifests-only]`."""
    command = commands.add_parser("report", help=help)
    command.add_argument("--format", choices=list(FORMATS),
                         help="markdown or html (default: from the --output suffix, else markdown)")
    command.add_argument("--output", type=Path,
                         help="where to write it (default: <mesh home>/compliance-report.md or .html)")
    command.add_argument("--manifests-only", action="store_true",
                         help="do not load the code locations (skips the asset-graph policy MESH-ACC-002)")
    command.set_defaults(handler=_report)
    return command
