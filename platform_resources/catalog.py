"""Discovery: every data product describes itself from its manifest and what the mesh observed of it.

A discovery document is built from the registry (the products' own declarations: owner, docs, contract,
SLOs, graph) and the platform's records (processing times from the ports, metrics and SLO results from
every publish), so nobody keeps a hand-made catalog entry. `search` filters documents; `mesh catalog`
prints them. The JSON form is versioned: platform_resources/schemas/discovery-document-<version>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from platform_resources.manifest import Manifest, OutputPort
    from platform_resources.ports import PortVersion
    from platform_resources.registry import Registry

SCHEMA_VERSION = "1.0.0"
SCHEMA_ID = f"https://mesh.example.com/spec/discovery-document-{SCHEMA_VERSION}.json"
SCHEMA_PATH = Path(__file__).parent / "schemas" / f"discovery-document-{SCHEMA_VERSION}.json"
POLYSEME_PREFIX = "polyseme_"
# Overall SLO status of a port (and, the worst of its ports, of a product), from best to worst.
SLO_STATUSES = ("ok", "unknown", "warning", "breached")


def discovery_schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


DAGSTER_URL_VARIABLE = "MESH_DAGSTER_URL"  # where people open the mesh's Dagster UI (`mesh dev` serves it locally)
DEFAULT_DAGSTER_URL = "http://localhost:3000"


def dagster_asset_url(*key_path: str) -> str:
    """The Dagster UI page of an asset (a port: domain, product, port), or of every asset under a key prefix (a
    product: domain, product), as the UI addresses them: <base>/assets/<key path joined by />."""
    base = (os.environ.get(DAGSTER_URL_VARIABLE) or DEFAULT_DAGSTER_URL).rstrip("/")
    return f"{base}/assets/" + "/".join(quote(part, safe="") for part in key_path)


# --- polysemes -------------------------------------------------------------------------------------

def polyseme_keys(registry: Registry) -> dict[str, dict]:
    """Each polyseme of the mesh -> its key columns and the products that define it.

    A product defines a polyseme with a `polyseme_<name>` tag; the polyseme's keys are the single-column
    primary keys of that product's ports (crm.customers -> customer: c_custkey)."""
    found: dict[str, dict] = {}
    for manifest in registry.products.values():
        for tag in manifest.tags:
            if tag.startswith(POLYSEME_PREFIX) and len(tag) > len(POLYSEME_PREFIX):
                entry = found.setdefault(tag.removeprefix(POLYSEME_PREFIX), {"keys": set(), "defined_by": set()})
                entry["defined_by"].add(manifest.id)
                entry["keys"] |= {p.contract.primary_key[0] for p in manifest.output_ports
                                  if len(p.contract.primary_key) == 1}
    return found


def _polysemes(manifest: Manifest, known: dict[str, dict]) -> list[dict]:
    """The polysemes a product carries: by its own tag, or by serving a polyseme's key column."""
    columns = {c.name for p in manifest.output_ports for c in p.contract.columns}
    result = []
    for name, entry in sorted(known.items()):
        tagged = f"{POLYSEME_PREFIX}{name}" in manifest.tags
        keys = sorted(entry["keys"] & columns)
        if tagged or keys:
            result.append({"name": name, "tag": f"{POLYSEME_PREFIX}{name}", "keys": sorted(entry["keys"]),
                           "defined_by": sorted(entry["defined_by"]), "via": "tag" if tagged else "key"})
    return result


# --- observed state of a port ----------------------------------------------------------------------

def last_version(port_id: str) -> PortVersion | None:
    from platform_resources import ports

    try:
        return ports.resolve_version(port_id)
    except LookupError:
        return None


def _slo_result(raw: dict, evaluated: str) -> dict:
    """One SLO result in the document's shape, whatever keys the record happens to carry."""
    name = str(raw.get("name") or "unnamed").removeprefix("slo_")
    passed = raw.get("passed")
    return {"name": name, "passed": passed if isinstance(passed, bool) else None,
            "severity": raw.get("severity") if raw.get("severity") in ("warning", "error") else "warning",
            "summary": str(raw.get("summary") or ""), "evaluated": evaluated}


def overall_status(results: list[dict], observed: bool) -> str:
    """breached (an error-severity SLO failed), warning (a warning one failed), ok, or unknown."""
    if not observed or not results:
        return "unknown"
    failed = [r for r in results if r["passed"] is False]
    if any(r["severity"] == "error" for r in failed):
        return "breached"
    if failed:
        return "warning"
    if any(r["passed"] is None for r in results):
        return "unknown"
    return "ok"


def worst_status(statuses: list[str]) -> str:
    return max(statuses, key=SLO_STATUSES.index, default="unknown")


def port_observations(port_id: str, port: OutputPort, now: datetime | None = None) -> dict:
    """What the mesh observed of a port: last processing time, latest metrics and the SLO status."""
    return observe(port_id, port, last_version(port_id), now)


def observe(port_id: str, port: OutputPort, version: PortVersion | None, now: datetime | None = None) -> dict:
    """port_observations, for a caller that already resolved the version served (None: never published).

    The SLO results are those recorded at the latest publish (timeliness, completeness, volume) plus
    freshness evaluated now, the way Dagster's FreshnessPolicy judges it. A port never published and
    without a metrics record has status 'unknown'."""
    from platform_resources import metrics

    now = now or datetime.now(timezone.utc)
    served = version.processing_time if version else None
    record = metrics.latest(port_id)
    results = [_slo_result(r, "publish") for r in (record or {}).get("slos") or []]
    if served is not None and port.freshness is not None:
        fresh = _freshness(port, served, now)
        if fresh is not None:
            results.insert(0, _slo_result(fresh, "now"))
    observed = served is not None or record is not None
    values = (record or {}).get("metrics")
    return {
        "last_processing_time": served.isoformat() if served else None,
        "metrics": values if isinstance(values, dict) else None,
        "slo_status": {"overall": overall_status(results, observed), "results": results,
                       "processing_time": (record or {}).get("processing_time"), "evaluated_at": now.isoformat()},
    }


def _freshness(port: OutputPort, served: datetime, now: datetime) -> dict | None:
    from platform_resources.slo import freshness_status

    result = freshness_status(port, served, now)
    return vars(result) if result is not None else None


# --- documents -------------------------------------------------------------------------------------

def how_to_read(port_id: str, visibility: str, domain: str) -> dict:
    """Ways to read a port that work as written (restricted and internal ports need your product's id)."""
    consumer = {"public": None, "restricted": "<your.product>", "internal": f"{domain}.<product>"}[visibility]
    as_flag = f" --as {consumer}" if consumer else ""
    # The mesh reader enforces the access policy and writes CSV; DuckDB (the Python package the platform ships,
    # no duckdb CLI needed) runs SQL over it as table `stdin`. DuckDB cannot re-read a pipe it has sniffed, so
    # the CSV is buffered first. (DuckDB's iceberg extension would need a download; the platform reads
    # Iceberg with pyiceberg.)
    query = ("import duckdb, io, sys; stdin = duckdb.read_csv(io.BytesIO(sys.stdin.buffer.read())); "
             'duckdb.sql("SELECT * FROM stdin LIMIT 10").show()')
    return {
        "mesh": f"mesh read {port_id} --limit 10{as_flag}",
        "duckdb_sql": f"mesh read {port_id} --format csv{as_flag} | python -c {shlex.quote(query)}",
        "python": "\n".join([
            "import duckdb",
            "from platform_resources.access import read_port",
            "from platform_resources.registry import load_registry",
            f"port, version = read_port(load_registry(), {port_id!r}, consumer={consumer!r})",
            'duckdb.sql("SELECT * FROM port LIMIT 10").show()',
        ]),
        "note": ("run in the platform's Python environment (.venv/bin/mesh, .venv/bin/python); "
                 + ("public port: anyone may read it" if visibility == "public" else
                    f"{visibility} port: replace {consumer} with the reading product"
                    + (", which needs an access_request in its manifest and an approved_access entry here"
                       if visibility == "restricted" else ""))),
    }


def _manifest_file(registry: Registry, product_id: str) -> str | None:
    path = registry.files.get(product_id)
    if path is None:
        return None
    try:  # local manifests relative to the workspace; published ones are already relative to their repository
        return str(Path(path).relative_to(registry.workspace.parent.resolve())) if Path(path).is_absolute() else str(path)
    except ValueError:
        return str(path)


def downstream_products(registry: Registry, product_id: str) -> list[str]:
    return sorted({m.id for m in registry.products.values() if m.id != product_id
                   and any(p.source and p.source.rsplit(".", 1)[0] == product_id for p in m.input_ports)})


def _retention(port_id: str, port: OutputPort) -> dict:
    """The declared retention (null: every version kept) and the epoch, the oldest data still readable."""
    from platform_resources import metrics

    return {"retention": port.retention.model_dump(exclude_none=True) if port.retention else None,
            "epoch": metrics.epoch(port_id)}


def _port_document(registry: Registry, manifest: Manifest, port: OutputPort, now: datetime) -> dict:
    port_id = f"{manifest.id}.{port.name}"
    slos = {}
    if port.freshness is not None:
        slos["freshness"] = port.freshness.model_dump(exclude_none=True, exclude_defaults=True)
    slos.update(port.slos.model_dump(exclude_none=True))
    return {
        "id": port_id,
        "name": port.name,
        "description": port.description,
        "visibility": port.visibility,
        "schema": [{"name": c.name, "type": c.type, "description": c.description, "nullable": c.nullable,
                    "classification": c.classification} for c in port.contract.columns],
        "primary_key": list(port.contract.primary_key),
        "contract_version": port.contract.version,
        "actual_time": port.actual_time,
        # How to read a partition: `mesh read <port> --partition <key>`; null for a port published whole.
        "partitioning": ({**port.partitioning.model_dump(mode="json", exclude_none=True, exclude_defaults=True),
                          "column": port.partition_column} if port.partitioning else None),
        "slos": slos,
        **port_observations(port_id, port, now),
        **_retention(port_id, port),
        "consumers": registry.consumers(port_id),
        "approved_access": [{"consumer": a.consumer, "reason": a.reason} for a in port.approved_access],
        "how_to_read": how_to_read(port_id, port.visibility, manifest.domain),
    }


def discovery_document(registry: Registry, product_id: str, *, now: datetime | None = None,
                       _polyseme_keys: dict | None = None) -> dict:
    """Everything a consumer needs to find, understand, trust and read one data product."""
    manifest = registry.products.get(product_id)
    if manifest is None:
        known = ", ".join(sorted(registry.products)) or "none"
        raise LookupError(f"unknown data product {product_id}; known products: {known}")
    now = now or datetime.now(timezone.utc)
    known_polysemes = _polyseme_keys if _polyseme_keys is not None else polyseme_keys(registry)
    return {
        "id": manifest.id,
        "name": manifest.name,
        "description": manifest.description,
        "owner": {"team": manifest.owner.team, "email": manifest.owner.email},
        "archetype": manifest.archetype,
        "status": manifest.status,
        "replaced_by": manifest.replaced_by,
        "deprecation_date": str(manifest.deprecation_date) if manifest.deprecation_date else None,
        "version": manifest.version,
        "tags": list(manifest.tags),
        "domain": manifest.domain,
        "polysemes": _polysemes(manifest, known_polysemes),
        "input_ports": [{"name": p.name, "from": p.source, "operational": p.operational,
                         "access_request": p.access_request.reason if p.access_request else None}
                        for p in manifest.input_ports],
        "ports": [_port_document(registry, manifest, p, now) for p in manifest.output_ports],
        "upstream_products": sorted(registry.upstream_products(manifest.id)),
        "downstream_products": downstream_products(registry, manifest.id),
        "manifest_file": _manifest_file(registry, manifest.id),
        "problems": list(registry.problems.get(manifest.id, [])),
    }


# --- search ----------------------------------------------------------------------------------------

def _search_text(manifest: Manifest, polysemes: list[dict]) -> str:
    parts = [manifest.id, manifest.name, manifest.description, *manifest.tags,
             *(p["tag"] for p in polysemes), *(p["name"] for p in polysemes)]
    for port in manifest.output_ports:
        parts += [port.name, f"{manifest.id}.{port.name}", port.description]
        for column in port.contract.columns:
            parts += [column.name, column.description]
    return "\n".join(parts).lower()


def search(registry: Registry, query: str | None = None, domain: str | None = None, owner: str | None = None,
           tag: str | None = None, classification: str | None = None) -> list[dict]:
    """Discovery documents of the products matching every given filter, by product id.

    query: every word appears (case-insensitive) in the id, name, description, tags, polysemes, or a port's
    or column's name or description. owner: the team or the email. tag: a tag of the product, or the tag of
    a polyseme it carries (polyseme_customer). classification: of any column of any port."""
    known = polyseme_keys(registry)
    words = (query or "").lower().split()
    matches = []
    for product_id in sorted(registry.products):
        manifest = registry.products[product_id]
        polysemes = _polysemes(manifest, known)
        if domain and manifest.domain.lower() != domain.lower():
            continue
        if owner and owner.lower() not in ((manifest.owner.team or "").lower(), (manifest.owner.email or "").lower()):
            continue
        if tag and tag.lower() not in {t.lower() for t in [*manifest.tags, *(p["tag"] for p in polysemes)]}:
            continue
        if classification and classification.lower() not in {
                c.classification for p in manifest.output_ports for c in p.contract.columns}:
            continue
        text = _search_text(manifest, polysemes)
        if not all(word in text for word in words):
            continue
        matches.append(product_id)
    now = datetime.now(timezone.utc)
    return [discovery_document(registry, pid, now=now, _polyseme_keys=known) for pid in matches]


# --- text ------------------------------------------------------------------------------------------

_STATUS_WORD = {"ok": "ok", "warning": "WARNING", "breached": "BREACHED", "unknown": "unknown (no publish observed)"}


def _slo_declared(slos: dict) -> str:
    def one(name: str, spec: dict) -> str:
        inner = ", ".join(f"{k} {json.dumps(v) if isinstance(v, (dict, list)) else v}" for k, v in spec.items())
        return f"{name} ({inner})"
    return "; ".join(one(n, s) for n, s in slos.items()) or "none declared"


def _lifecycle_lines(doc: dict) -> list[str]:
    """Where a deprecated or retired product's consumers go, and by when."""
    if not (doc.get("replaced_by") or doc.get("deprecation_date")):
        return []
    return [f"  {doc['status']}: replaced by {doc.get('replaced_by') or '(no replacement named)'}, deprecation date "
            f"{doc.get('deprecation_date') or '(none declared)'}"]


def format_document(doc: dict) -> str:
    """A readable block for one product."""
    lines = [f"{doc['id']} - {doc['name']}  [{doc['archetype']}, {doc['status']}, v{doc['version']}]",
             f"  {doc['description']}",
             f"  owner:      {doc['owner']['team']} <{doc['owner']['email']}>",
             f"  domain:     {doc['domain']}",
             *_lifecycle_lines(doc),
             f"  tags:       {', '.join(doc['tags']) or '-'}"]
    if doc["polysemes"]:
        lines.append("  polysemes:  " + ", ".join(f"{p['name']} (key {', '.join(p['keys']) or '-'}, by {p['via']})"
                                                 for p in doc["polysemes"]))
    lines += [f"  upstream:   {', '.join(doc['upstream_products']) or '-'}",
              f"  downstream: {', '.join(doc['downstream_products']) or '-'}",
              f"  manifest:   {doc['manifest_file']}",
              "  policy:     " + ("ERRORS: " + "; ".join(doc["problems"]) if doc["problems"] else "ok")]
    for port in doc["ports"]:
        status = port["slo_status"]
        lines += ["", f"  port {port['id']}  [{port['visibility']}]",
                  f"    {port['description']}",
                  f"    actual time: {port['actual_time']}; "
                  + f"last processing time: {port['last_processing_time'] or 'never published'}",
                  f"    SLOs: {_slo_declared(port['slos'])}",
                  f"    SLO status: {_STATUS_WORD.get(status['overall'], status['overall'])}"]
        for result in status["results"]:
            verdict = "ok" if result["passed"] else ("?" if result["passed"] is None else f"FAILED ({result['severity']})")
            lines.append(f"      {result['name']}: {verdict}  {result['summary']}")
        if port["metrics"] and "row_count" in port["metrics"]:
            lines.append(f"    rows: {port['metrics']['row_count']}")
        if port.get("epoch"):
            lines.append(f"    epoch: processing time {port['epoch']['processing_time']}, "
                         f"actual time {port['epoch']['actual_time'] or '-'}")
        if port.get("retention"):
            lines.append("    retention: " + ", ".join(f"{k}: {v}" for k, v in port["retention"].items()))
        if port.get("partitioning"):
            lines.append("    partitioned: " + ", ".join(f"{k}: {v}" for k, v in port["partitioning"].items()))
        lines.append(f"    consumers: {', '.join(port['consumers']) or '-'}")
        if port["approved_access"]:
            lines.append("    approved access: " + ", ".join(a["consumer"] for a in port["approved_access"]))
        lines.append("    columns:")
        width = max(len(c["name"]) for c in port["schema"])
        for column in port["schema"]:
            key = " PK" if column["name"] in port["primary_key"] else ""
            null = "null" if column["nullable"] else "not null"
            lines.append(f"      {column['name']:<{width}}  {column['type']:<14} {null:<8} {column['classification']:<12}"
                         f"{key:<3} {column['description']}")
        read = port["how_to_read"]
        lines += ["    how to read:", f"      {read['mesh']}", f"      {read['duckdb_sql']}", "      python:"]
        lines += [f"        {line}" for line in read["python"].splitlines()]
        lines.append(f"      ({read['note']})")
    return "\n".join(lines)


# --- command ---------------------------------------------------------------------------------------

def _catalog(args: argparse.Namespace) -> int:
    from platform_resources.home import prepare_home
    from platform_resources.registry import load_registry

    prepare_home()
    registry = load_registry()
    documents = search(registry, args.query, domain=args.domain, owner=args.owner, tag=args.tag,
                       classification=args.classification)
    if args.json:
        print(json.dumps(documents, indent=1, default=str))
        return 0
    if not documents:
        print("no products match")
    else:
        print("\n\n".join(format_document(d) for d in documents))
    if registry.broken:
        print(f"\nbroken manifests (not in the catalog until fixed): {', '.join(sorted(registry.broken))}")
    return 0


def add_command(commands: argparse._SubParsersAction, help: str) -> argparse.ArgumentParser:
    """`mesh catalog [QUERY] [--domain D] [--owner O] [--tag T] [--classification C] [--json]`."""
    catalog = commands.add_parser("catalog", help=help)
    catalog.add_argument("query", nargs="?", help="words that must all appear in the product's id, name, docs, tags, ports or columns")
    catalog.add_argument("--domain", help="only products of this domain")
    catalog.add_argument("--owner", help="only products of this owner team or email")
    catalog.add_argument("--tag", help="only products with this tag (polyseme_<name> also finds products serving its key)")
    catalog.add_argument("--classification", choices=["public", "internal", "confidential", "pii"],
                         help="only products with a column of this classification")
    catalog.add_argument("--json", action="store_true",
                         help=f"a JSON list of discovery documents ({SCHEMA_ID})")
    catalog.set_defaults(handler=_catalog)
    return catalog
