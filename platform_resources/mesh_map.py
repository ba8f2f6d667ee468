"""The mesh map: one static, self-contained HTML page of the whole mesh, drawn from the registry.

Domains are columns in dependency order (a domain stands right of every domain it reads from); inside
each are its products with owner, archetype, status, SLO status, policy status and output ports; arrows
run from each upstream product to each product of another domain that reads it. Inline CSS and SVG only:
no JavaScript, no network, no external assets, so the file opens anywhere (and can be attached to a mail).
Each product and port links to its page in the Dagster UI (MESH_DAGSTER_URL, default http://localhost:3000).
"""

from __future__ import annotations

import argparse
import html
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from platform_resources.catalog import dagster_asset_url, port_observations, worst_status

if TYPE_CHECKING:
    from platform_resources.governance.engine import PolicyReport
    from platform_resources.manifest import Manifest
    from platform_resources.registry import Registry

# Geometry, in CSS pixels.
MARGIN = 28            # around the map; also room for same-domain arrows left of a column
COLUMN_WIDTH = 470
GUTTER = 380           # between columns, where the cross-domain arrows run
DOMAIN_HEADER = 60
DOMAIN_PADDING = 12
DOMAIN_GAP = 22
PRODUCT_GAP = 12
PRODUCT_BASE = 108     # a product box without its ports
PORT_LINE = 22

# Per-domain colours for domain headers and the arrows leaving them (Okabe-Ito, colour-blind safe).
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#8C6D1F", "#6A3D9A", "#555555"]

SLO_LABEL = {"ok": "\u2713 SLO ok", "warning": "! SLO warning", "breached": "\u2717 SLO breached",
             "unknown": "? SLO unknown"}
PORT_SLO_LABEL = {"ok": "\u2713 ok", "warning": "! warning", "breached": "\u2717 breached", "unknown": "? unknown"}


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


@dataclass
class _Box:
    x: int
    y: int
    width: int
    height: int

    @property
    def right(self) -> int:
        return self.x + self.width


@dataclass
class _Layout:
    columns: list[list[str]]                      # domains per column, left to right
    domains: dict[str, _Box] = field(default_factory=dict)
    products: dict[str, _Box] = field(default_factory=dict)
    broken: dict[str, _Box] = field(default_factory=dict)
    width: int = 0
    height: int = 0


def _columns(registry: Registry) -> tuple[list[list[str]], str | None]:
    """Domains grouped in columns by dependency depth; (columns, problem) when the domains form a cycle."""
    dependencies = registry.domain_dependencies()
    try:
        order = registry.domain_order()
    except LookupError as exc:  # a cycle between domains: one column per domain, in workspace order
        return [[d] for d in registry.domains], str(exc)
    depth: dict[str, int] = {}
    for domain in order:
        depth[domain] = 1 + max((depth[d] for d in dependencies.get(domain, ()) if d in depth), default=-1)
    columns: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    workspace_order = list(registry.domains)
    for domain in sorted(order, key=workspace_order.index):  # within a column, as the workspace lists them
        columns[depth[domain]].append(domain)
    return columns, None


def _product_height(manifest: Manifest) -> int:
    return PRODUCT_BASE + PORT_LINE * len(manifest.output_ports)


def _layout(registry: Registry, columns: list[list[str]]) -> _Layout:
    layout = _Layout(columns)
    top = MARGIN
    for index, domains in enumerate(columns):
        x = MARGIN + index * (COLUMN_WIDTH + GUTTER)
        y = top
        for domain in domains:
            inner_y = y + DOMAIN_HEADER
            for manifest in sorted(registry.products_of(domain), key=lambda m: m.id):
                height = _product_height(manifest)
                layout.products[manifest.id] = _Box(x + DOMAIN_PADDING, inner_y, COLUMN_WIDTH - 2 * DOMAIN_PADDING, height)
                inner_y += height + PRODUCT_GAP
            for broken_id in sorted(b for b in registry.broken if b.split(".")[0] == domain):
                layout.broken[broken_id] = _Box(x + DOMAIN_PADDING, inner_y, COLUMN_WIDTH - 2 * DOMAIN_PADDING, 64)
                inner_y += 64 + PRODUCT_GAP
            height = inner_y - y + DOMAIN_PADDING - PRODUCT_GAP
            layout.domains[domain] = _Box(x, y, COLUMN_WIDTH, max(height, DOMAIN_HEADER + DOMAIN_PADDING))
            y += layout.domains[domain].height + DOMAIN_GAP
        layout.height = max(layout.height, y - DOMAIN_GAP + MARGIN)
    layout.width = MARGIN * 2 + len(columns) * COLUMN_WIDTH + max(len(columns) - 1, 0) * GUTTER
    return layout


def mesh_edges(registry: Registry) -> dict[tuple[str, str], list[str]]:
    """(upstream product, consumer product) -> the upstream ports the consumer reads, for every product pair."""
    edges: dict[tuple[str, str], list[str]] = {}
    for manifest in registry.products.values():
        for input_port in manifest.input_ports:
            if input_port.source:
                upstream = input_port.source.rsplit(".", 1)[0]
                if upstream in registry.products and upstream != manifest.id:
                    ports = edges.setdefault((upstream, manifest.id), [])
                    if input_port.source not in ports:
                        ports.append(input_port.source)
    return dict(sorted(edges.items()))


def _spread(box: _Box, count: int, index: int) -> float:
    """The index-th of count points spread down the middle part of a box's side."""
    top, bottom = box.y + 28, box.y + box.height - 12
    return top + (bottom - top) * (index + 1) / (count + 1)


def _edges_svg(registry: Registry, layout: _Layout, colours: dict[str, str]) -> tuple[str, int]:
    edges = mesh_edges(registry)
    outgoing: dict[str, list[tuple[str, str]]] = {}
    incoming: dict[str, list[tuple[str, str]]] = {}
    for pair in edges:
        outgoing.setdefault(pair[0], []).append(pair)
        incoming.setdefault(pair[1], []).append(pair)
    # Fewer crossings: leave a box in the order of the targets' height, arrive in the order of the sources'.
    for pairs in outgoing.values():
        pairs.sort(key=lambda p: (layout.products[p[1]].y, p[1]))
    for pairs in incoming.values():
        pairs.sort(key=lambda p: (layout.products[p[0]].y, p[0]))
    paths, cross = [], 0
    for (upstream, consumer), ports in edges.items():
        source, target = layout.products[upstream], layout.products[consumer]
        up_domain, down_domain = upstream.split(".")[0], consumer.split(".")[0]
        y1 = _spread(source, len(outgoing[upstream]), outgoing[upstream].index((upstream, consumer)))
        y2 = _spread(target, len(incoming[consumer]), incoming[consumer].index((upstream, consumer)))
        colour = colours.get(up_domain, PALETTE[-1])
        tip = f"{upstream} \u2192 {consumer}: reads {', '.join(ports)}"
        if up_domain == down_domain:  # same domain: a dashed loop left of the column
            x = source.x - 2
            d = f"M {x} {y1:.1f} C {x - 40} {y1:.1f}, {x - 40} {y2:.1f}, {x} {y2:.1f}"
            kind = "edge-internal"
        else:
            x1, x2 = source.right, target.x
            bend = max(abs(x2 - x1) * 0.45, 60)
            direction = 1 if x2 >= x1 else -1
            d = (f"M {x1} {y1:.1f} C {x1 + direction * bend:.1f} {y1:.1f}, {x2 - direction * bend:.1f} {y2:.1f}, "
                 f"{x2 - direction * 2} {y2:.1f}")
            kind = "edge"
            cross += 1
        paths.append(f'<path class="{kind}" data-from="{_e(upstream)}" data-to="{_e(consumer)}" d="{d}" '
                     f'stroke="{colour}" marker-end="url(#arrow-{_e(up_domain)})"><title>{_e(tip)}</title></path>')
    markers = "".join(
        f'<marker id="arrow-{_e(domain)}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" markerHeight="8" '
        f'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="{colour}"/></marker>'
        for domain, colour in colours.items())
    svg = (f'<svg class="edges" width="{layout.width}" height="{layout.height}" viewBox="0 0 {layout.width} '
           f'{layout.height}" role="img" aria-label="cross-domain dependencies">'
           f'<defs>{markers}</defs>{"".join(paths)}</svg>')
    return svg, cross


def _style(box: _Box) -> str:
    return f"left:{box.x}px;top:{box.y}px;width:{box.width}px;height:{box.height}px"


def _product_html(registry: Registry, manifest: Manifest, box: _Box, now: datetime,
                  report: PolicyReport) -> tuple[str, str]:
    """The product's box, and its overall SLO status."""
    port_items, statuses = [], []
    for port in manifest.output_ports:
        port_id = f"{manifest.id}.{port.name}"
        observed = port_observations(port_id, port, now)
        status = observed["slo_status"]["overall"]
        statuses.append(status)
        served = observed["last_processing_time"]
        when = f"last published {served[:19].replace('T', ' ')} UTC" if served else "never published"
        tip = f"{port_id}: {port.description} ({port.visibility}; {when}; SLO {status})"
        port_items.append(
            f'<li title="{_e(tip)}"><span class="vis vis-{_e(port.visibility)}">{_e(port.visibility)}</span>'
            f'<a class="port-name" href="{_e(dagster_asset_url(manifest.domain, manifest.product, port.name))}">'
            f'{_e(port.name)}</a>'
            f'<span class="pslo slo-{status}">{_e(PORT_SLO_LABEL[status])}</span></li>')
    slo = worst_status(statuses)
    problems = [f"{f.policy}: {f.message}" for f in report.for_product(manifest.id) if f.blocking]
    if not problems and manifest.id in report.blocked:
        problems = [report.blocked[manifest.id]]
    policy = (f'<span class="badge policy-errors" title="{_e("; ".join(problems))}">\u2717 policy: '
              f'{len(problems)} error{"s" if len(problems) != 1 else ""}</span>' if problems
              else '<span class="badge policy-ok">\u2713 policy ok</span>')
    classes = "product has-errors" if problems else "product"
    body = (
        f'<div class="{classes}" id="product-{_e(manifest.id)}" style="{_style(box)}" title="{_e(manifest.description)}">'
        f'<div class="title"><a class="pid" href="{_e(dagster_asset_url(manifest.domain, manifest.product))}" '
        f'title="{_e(manifest.id)} in Dagster">{_e(manifest.id)}</a> <span class="pname">{_e(manifest.name)}</span></div>'
        f'<div class="line">owner <b>{_e(manifest.owner.team)}</b> \u00b7 {_e(manifest.owner.email)}</div>'
        f'<div class="line">{_e(manifest.archetype)} \u00b7 {_e(manifest.status)} \u00b7 v{_e(manifest.version)}</div>'
        f'<div class="badges"><span class="badge slo-{slo}">{_e(SLO_LABEL[slo])}</span>{policy}</div>'
        f'<ul class="ports">{"".join(port_items)}</ul></div>')
    return body, slo


def _legend(colours: dict[str, str], sources: set[str]) -> str:
    slo = "".join(f'<span class="badge slo-{s}">{_e(SLO_LABEL[s])}</span>' for s in ("ok", "warning", "breached", "unknown"))
    vis = "".join(f'<span class="vis vis-{v}">{v}</span>' for v in ("public", "restricted", "internal"))
    arrows = "".join(f'<span class="swatch"><svg width="34" height="10" aria-hidden="true"><line x1="0" y1="5" x2="34" '
                     f'y2="5" stroke="{c}" stroke-width="3"/></svg>{_e(d)}</span>' for d, c in colours.items() if d in sources)
    return (f'<div class="legend"><div><b>SLO status</b> (worst port; freshness now, others at the last publish) {slo}</div>'
            f'<div><b>Policy</b> <span class="badge policy-ok">\u2713 policy ok</span>'
            f'<span class="badge policy-errors">\u2717 policy: errors</span> (error findings of `mesh validate`; blocked) '
            f'<b>Port visibility</b> {vis}</div>'
            f'<div><b>Arrows</b>: upstream product \u2192 consuming product of another domain, coloured by the '
            f'upstream domain: {arrows}</div></div>')


def _problems_html(report: PolicyReport) -> str:
    items = [f"<li><b>{_e(pid)}</b> may not publish: {_e(why)}</li>" for pid, why in sorted(report.blocked.items())]
    if not items:
        return '<h2>Problems</h2><p class="none">\u2713 No policy errors: every product may publish.</p>'
    return f'<h2>Problems</h2><ul class="problems">{"".join(items)}</ul>'


def _edges_table(registry: Registry) -> str:
    rows = "".join(f"<tr><td>{_e(u)}</td><td>\u2192</td><td>{_e(c)}</td><td>{_e(', '.join(p))}</td></tr>"
                   for (u, c), p in mesh_edges(registry).items() if u.split(".")[0] != c.split(".")[0])
    return ("<h2>Cross-domain dependencies</h2><table class=\"edge-table\"><tr><th>upstream product</th><th></th>"
            f"<th>consumer</th><th>ports read</th></tr>{rows}</table>")


_CSS = """
*{box-sizing:border-box}
body{margin:0;font:14px/1.35 "DejaVu Sans","Liberation Sans",Arial,sans-serif;color:#1d232a;background:#f3f5f8}
header{padding:18px 28px 6px}
h1{margin:0 0 4px;font-size:24px}
h2{font-size:18px;margin:22px 28px 8px}
.summary{color:#444;margin-bottom:8px}
.warning-banner{margin:6px 28px;padding:8px 12px;border:2px solid #b00020;background:#fde8eb;color:#7a0016;font-weight:bold}
.legend{display:flex;flex-direction:column;gap:4px;font-size:13px;color:#333}
.legend .badge,.legend .vis{margin-left:6px}
.swatch{display:inline-flex;align-items:center;gap:4px;margin-left:10px}
.map{position:relative;margin:4px 0 0}
.domain{position:absolute;z-index:0;background:#fff;border:1px solid #c9d1db;border-radius:10px;border-top-width:6px}
.domain-head{padding:6px 12px;height:54px}
.domain-name{font-size:19px;font-weight:bold}
.domain-meta{font-size:12px;color:#555;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
svg.edges{position:absolute;left:0;top:0;z-index:1;overflow:visible}
svg.edges path.edge,svg.edges path.edge-internal{fill:none;stroke-width:2.2;opacity:.85}
svg.edges path.edge-internal{stroke-dasharray:6 4}
.product,.broken{position:absolute;z-index:2;background:#fbfcfe;border:1px solid #9aa7b6;border-radius:8px;padding:6px 10px;overflow:hidden}
.product.has-errors,.broken{border:2px solid #b00020;background:#fff6f7}
.title{white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.pid{font-weight:bold;font-size:15px;color:inherit}
.pname{color:#555}
.line{font-size:13px;color:#333;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.badges{margin:5px 0 4px;white-space:nowrap}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:bold;margin-right:6px;border:1px solid}
.slo-ok,.policy-ok{background:#e3f4e8;color:#145a2a;border-color:#2e8b57}
.slo-warning{background:#fff3d6;color:#7a4b00;border-color:#d18b00}
.slo-breached,.policy-errors{background:#fde8eb;color:#8a0019;border-color:#b00020}
.slo-unknown{background:#eceff3;color:#3c4650;border-color:#8894a0}
ul.ports{list-style:none;margin:0;padding:4px 0 0;border-top:1px dashed #c9d1db}
ul.ports li{height:22px;display:flex;align-items:center;gap:8px;font-size:13px;white-space:nowrap}
.port-name{color:inherit;font-family:"DejaVu Sans Mono",monospace;flex:1;overflow:hidden;text-overflow:ellipsis}
.vis{display:inline-block;min-width:74px;text-align:center;font-size:11px;border-radius:4px;padding:0 4px;border:1px solid}
.vis-public{color:#145a2a;border-color:#2e8b57;background:#eef8f1}
.vis-restricted{color:#7a4b00;border-color:#d18b00;background:#fff6e0;font-weight:bold}
.vis-internal{color:#3c4650;border-color:#8894a0;background:#eceff3}
.pslo{font-size:11px;border-radius:4px;padding:0 5px;border:1px solid}
.broken .line{white-space:normal;color:#7a0016}
.problems,.none{margin:0 28px 8px;font-size:13px}
table.edge-table{margin:0 28px 28px;border-collapse:collapse;font-size:13px;background:#fff}
.edge-table td,.edge-table th{border:1px solid #d5dbe3;padding:3px 8px;text-align:left}
footer{margin:0 28px 24px;color:#666;font-size:12px}
"""


def render_map(registry: Registry, now: datetime | None = None) -> str:
    """The mesh map as one self-contained HTML page."""
    now = now or datetime.now(timezone.utc)
    columns, cycle = _columns(registry)
    from platform_resources.governance.engine import evaluate  # imports Dagster: only when a map is drawn

    report = evaluate(registry)  # static policies on the manifests (`mesh validate` also checks the asset graphs)
    layout = _layout(registry, columns)
    colours = {domain: PALETTE[i % (len(PALETTE) - 1)] for i, domain in enumerate(d for c in columns for d in c)}
    dependencies = registry.domain_dependencies()
    parts, slo_counts = [], {s: 0 for s in SLO_LABEL}
    for domain, box in layout.domains.items():
        products = registry.products_of(domain)
        reads = ", ".join(sorted(dependencies.get(domain, ()))) or "operational systems only"
        parts.append(f'<section class="domain" id="domain-{_e(domain)}" style="{_style(box)};border-top-color:{colours[domain]}">'
                     f'<div class="domain-head"><div class="domain-name">{_e(domain)}</div>'
                     f'<div class="domain-meta">{len(products)} product{"s" if len(products) != 1 else ""} \u00b7 '
                     f'reads from: {_e(reads)}</div></div></section>')
    for product_id, box in layout.products.items():
        body, slo = _product_html(registry, registry.products[product_id], box, now, report)
        slo_counts[slo] += 1
        parts.append(body)
    for broken_id, box in layout.broken.items():
        errors = registry.broken[broken_id]
        first = errors.errors[0]
        parts.append(f'<div class="broken" style="{_style(box)}" title="{_e(errors)}"><div class="title">'
                     f'<span class="badge policy-errors">\u2717 broken manifest</span> <span class="pid">{_e(broken_id)}</span>'
                     f'</div><div class="line">{_e(first)}</div></div>')
    svg, cross = _edges_svg(registry, layout, colours)
    port_count = sum(len(m.output_ports) for m in registry.products.values())
    slo_summary = ", ".join(f"{n} {s}" for s, n in slo_counts.items() if n)
    blocked = len(report.blocked)  # broken manifests are blocked too (MESH-SCHEMA-001)
    banner = f'<div class="warning-banner">\u2717 {_e(cycle)}</div>' if cycle else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>Mesh map</title><style>{_CSS}</style></head><body>'
        f'<header><h1>Mesh map</h1><div class="summary">{len(registry.domains)} domains \u00b7 '
        f'{len(registry.products)} products \u00b7 {port_count} output ports \u00b7 {cross} cross-domain '
        f'dependenc{"ies" if cross != 1 else "y"} '
        f'\u00b7 SLO: {_e(slo_summary or "none")} \u00b7 policy: '
        f'{_e(f"{blocked} blocked" if blocked else "all ok")} \u00b7 generated {_e(now.strftime("%Y-%m-%d %H:%M UTC"))}'
        f'</div>{_legend(colours, {u.split(".")[0] for u, _ in mesh_edges(registry)})}</header>{banner}'
        f'<div class="map" style="width:{layout.width}px;height:{layout.height}px">{"".join(parts)}{svg}</div>'
        f'{_problems_html(report)}{_edges_table(registry)}'
        '<footer>Drawn from the product manifests (registry) and the platform\'s publish records; '
        'hover a product, port or arrow for details. Regenerate with <code>mesh map</code>.</footer>'
        '</body></html>\n')


def write_map(registry: Registry, path: Path | str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_map(registry), encoding="utf-8")
    return path


def _map(args: argparse.Namespace) -> int:
    from platform_resources.home import mesh_home, prepare_home
    from platform_resources.registry import load_registry

    prepare_home()
    print(write_map(load_registry(), args.out or mesh_home() / "mesh-map.html"))
    return 0


def add_command(commands: argparse._SubParsersAction, help: str) -> argparse.ArgumentParser:
    """`mesh map [--out PATH]`."""
    command = commands.add_parser("map", help=help)
    command.add_argument("--out", type=Path, help="where to write it (default: <mesh home>/mesh-map.html)")
    command.set_defaults(handler=_map)
    return command
