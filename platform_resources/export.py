"""`mesh export`: every product as an ODPS v1.0.0 document, every output port as an ODCS v3.1.0 contract.

The manifest stays the single declaration; these documents are derived from it (and from the registry, for
consumers and the contracts of input ports) so catalogs and contract tools that speak the open standards
can read the mesh. Only the platform's own vocabulary is mapped here; nothing is taken from the standards'
schema files, which the tests use to validate the output.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

from platform_resources.manifest import Column, Freshness, Manifest, OutputPort
from platform_resources.registry import Registry

ODPS_API_VERSION = "v1.0.0"
ODCS_API_VERSION = "v3.1.0"
ODPS_FOLDER, ODPS_SUFFIX = "odps", ".odps.yaml"
ODCS_FOLDER, ODCS_SUFFIX = "odcs", ".odcs.yaml"

# Our lifecycle statuses and the status words both standards use. Spelled out, so that a new status in the
# manifest fails here (KeyError) instead of leaking an unknown word into the documents.
STATUS = {"draft": "draft", "active": "active", "deprecated": "deprecated", "retired": "retired"}

# Contract column types -> (ODCS logical type, logical type options).
_INTEGER_WIDTH = {"tinyint": "i8", "smallint": "i16", "integer": "i32", "bigint": "i64"}
_FLOAT_WIDTH = {"float": "f32", "double": "f64"}

_UNIT_WORDS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_DURATION = re.compile(r"^(\d+)\s*([smhd])$")

PROCESSING_TIME_DESCRIPTION = ("Processing time: when the mesh served this row. Added by the platform to every "
                               "output port; read an older processing time for time travel.")


# --- small helpers -----------------------------------------------------------------------------------


def contract_id(port_id: str) -> str:
    """The ODCS contract id of an output port: its port id, domain.product.port."""
    return port_id


def contract_version(manifest: Manifest, port: OutputPort) -> str:
    return port.contract.version or manifest.version


def logical_type(column_type: str) -> tuple[str, dict]:
    """The ODCS logical type (and its options) of a contract column type."""
    if column_type in _INTEGER_WIDTH:
        return "integer", {"format": _INTEGER_WIDTH[column_type]}
    if column_type in _FLOAT_WIDTH:
        return "number", {"format": _FLOAT_WIDTH[column_type]}
    if column_type.startswith("decimal("):
        return "number", {}  # precision and scale are in the physical type
    if column_type == "varchar":
        return "string", {}
    if column_type == "boolean":
        return "boolean", {}
    if column_type == "date":
        return "date", {}
    if column_type == "timestamp":
        return "timestamp", {"timezone": False}
    if column_type == "timestamptz":
        return "timestamp", {"timezone": True}
    raise ValueError(f"no ODCS logical type for column type '{column_type}'; add it to platform_resources.export")


def _duration(text: str) -> tuple[int, str]:
    amount, unit = _DURATION.match(text.strip()).groups()  # type: ignore[union-attr]
    return int(amount), _UNIT_WORDS[unit]


def _number(value: float) -> int | float:
    value = round(value, 10)
    return int(value) if value == int(value) else value


def _custom(**properties) -> list[dict]:
    """ODPS/ODCS custom properties from keyword arguments, leaving out empty values."""
    return [{"property": k, "value": v} for k, v in properties.items() if v not in (None, [], {}, "")]


def _manifest_link(registry: Registry, manifest: Manifest) -> list[dict]:
    path = registry.files.get(manifest.id)
    if path is None or not Path(path).is_absolute():  # published from another repository: no local file to link
        return []
    return [{"type": "implementation", "url": Path(path).resolve().as_uri(),
             "description": "The product's manifest, the declaration this document is generated from."}]


def _support(manifest: Manifest) -> list[dict]:
    return [{"channel": f"{manifest.owner.team} team mailbox", "url": f"mailto:{manifest.owner.email}",
             "tool": "email", "scope": "issues"}]


def _team(manifest: Manifest) -> dict:
    return {"name": manifest.owner.team,
            "members": [{"username": manifest.owner.email, "role": "owner",
                         "description": f"Team mailbox of {manifest.owner.team}, the owner of {manifest.id}."}]}


def _access_note(manifest: Manifest, port: OutputPort) -> str | None:
    port_id = f"{manifest.id}.{port.name}"
    if port.visibility == "restricted":
        return (f"{port_id} is restricted: only products of domain '{manifest.domain}' and approved consumers read it. "
                f"To request access, declare an input port 'from: {port_id}' with an access_request in your manifest, "
                f"and ask {manifest.owner.label} to add an approved_access entry.")
    if port.visibility == "internal":
        return f"{port_id} is internal: only products of domain '{manifest.domain}' read it."
    return None


def _source_version(registry: Registry, port_id: str) -> str:
    try:
        producer, port = registry.port(port_id)
    except LookupError:
        return "unknown"  # an unresolvable input port; the registry reports it as a problem of the product
    return contract_version(producer, port)


# --- ODPS ------------------------------------------------------------------------------------------


def _odps_input_port(registry: Registry, manifest: Manifest, input_port) -> dict:
    if input_port.source:
        return {"name": input_port.name, "version": _source_version(registry, input_port.source),
                "contractId": contract_id(input_port.source),
                "customProperties": _custom(
                    sourceType="outputPort",
                    accessRequest=input_port.access_request.reason if input_port.access_request else None)}
    # An operational system publishes no contract: the id names its table, and the properties say so.
    return {"name": input_port.name, "version": "unversioned", "contractId": input_port.operational,
            "customProperties": _custom(sourceType="operationalSystem", operationalSource=input_port.operational)}


def _odps_output_port(registry: Registry, manifest: Manifest, port: OutputPort) -> dict:
    from platform_resources.ports import table_name

    port_id = f"{manifest.id}.{port.name}"
    inputs, seen = [], set()
    for input_port in manifest.input_ports:
        if input_port.source and input_port.source not in seen:
            seen.add(input_port.source)
            inputs.append({"id": contract_id(input_port.source), "version": _source_version(registry, input_port.source)})
    document = {"name": port.name, "description": port.description, "type": "iceberg",
                "version": contract_version(manifest, port), "contractId": contract_id(port_id)}
    if inputs:
        document["inputContracts"] = inputs
    document["customProperties"] = _custom(
        visibility=port.visibility, table=table_name(port_id), consumers=registry.consumers(port_id),
        approvedConsumers=[a.consumer for a in port.approved_access])
    return document


def odps_document(manifest: Manifest, registry: Registry) -> dict:
    """The Open Data Product Standard (v1.0.0) document of a product."""
    limitations = [note for note in (_access_note(manifest, p) for p in manifest.output_ports) if note]
    description = {"purpose": manifest.description.strip(),
                   "usage": "Consume an output port by declaring an input port 'from: <port id>' in your product's "
                            "manifest; read one ad hoc with 'mesh read <port id>', or as an Iceberg table from any engine."}
    if limitations:
        description["limitations"] = " ".join(limitations)
    document = {
        "apiVersion": ODPS_API_VERSION,
        "kind": "DataProduct",
        "id": manifest.id,
        "name": manifest.name,
        "version": manifest.version,
        "status": STATUS[manifest.status],
        "domain": manifest.domain,
        "description": description,
        "authoritativeDefinitions": _manifest_link(registry, manifest),
        "tags": list(manifest.tags),
        "inputPorts": [_odps_input_port(registry, manifest, p) for p in manifest.input_ports],
        "outputPorts": [_odps_output_port(registry, manifest, p) for p in manifest.output_ports],
        "support": _support(manifest),
        "team": _team(manifest),
        "customProperties": _custom(archetype=manifest.archetype, problems=registry.problems.get(manifest.id)),
    }
    return {k: v for k, v in document.items() if v not in (None, [], {})}


# --- ODCS ------------------------------------------------------------------------------------------


def _odcs_property(column: Column, primary_key: list[str], completeness: dict[str, float], severity: str) -> dict:
    logical, options = logical_type(column.type)
    prop: dict = {"name": column.name, "logicalType": logical}
    if options:
        prop["logicalTypeOptions"] = options
    prop |= {"physicalType": column.type, "description": column.description, "required": not column.nullable}
    if column.name in primary_key:
        prop |= {"primaryKey": True, "primaryKeyPosition": primary_key.index(column.name) + 1}
    if column.classification:
        prop["classification"] = column.classification
    if column.masking:
        prop["customProperties"] = [{"property": "masking", "value": column.masking,
                                     "description": "Served masked; checked on the data before every publish."}]
    if column.name in completeness:
        share = completeness[column.name]
        prop["quality"] = [{
            "name": f"completeness_{column.name}", "type": "library", "dimension": "completeness",
            "metric": "nullValues", "mustBeLessOrEqualTo": _number((1 - share) * 100), "unit": "percent",
            "severity": severity,
            "description": f"At least {_number(share * 100)}% of the rows have a value in {column.name} (completeness SLO)."}]
    return prop


def _processing_time_property() -> dict:
    return {"name": "_processing_time", "logicalType": "timestamp", "logicalTypeOptions": {"timezone": True},
            "physicalType": "timestamptz", "description": PROCESSING_TIME_DESCRIPTION, "required": True,
            "classification": "public", "customProperties": _custom(addedBy="platform")}


def _schema_quality(manifest: Manifest, port: OutputPort) -> list[dict]:
    rules: list[dict] = [{
        "name": "primary_key", "type": "library", "dimension": "uniqueness", "metric": "duplicateValues",
        "arguments": {"properties": list(port.contract.primary_key)}, "mustBe": 0, "unit": "rows", "severity": "error",
        "description": f"The primary key ({', '.join(port.contract.primary_key)}) is unique; checked before every "
                       "publish, a failing result is not published."}]
    slos = port.slos
    if slos.timeliness:
        where = "the snapshot" if port.actual_time == "snapshot" else f"the newest {port.actual_time}"
        rules.append({"name": "timeliness", "type": "text", "dimension": "timeliness", "severity": slos.timeliness.severity,
                      "description": f"At most {slos.timeliness.max_delay} between {where} and the processing time "
                                     "of each publish (timeliness SLO)."})
    if slos.completeness and slos.completeness.rows_vs_input:
        ratio = slos.completeness.rows_vs_input
        source = next((p.source for p in manifest.input_ports if p.name == ratio.input_port), ratio.input_port)
        rules.append({"name": "completeness_rows_vs_input", "type": "text", "dimension": "completeness",
                      "severity": slos.completeness.severity,
                      "description": f"Each publish has at least {ratio.min_ratio:g} times as many rows as input port "
                                     f"{ratio.input_port} ({source}) (completeness SLO).",
                      "customProperties": _custom(inputPort=source, minRatio=ratio.min_ratio)})
    volume = slos.volume
    if volume and (volume.min_rows is not None or volume.max_rows is not None):
        low, high = volume.min_rows, volume.max_rows
        if low is not None and high is not None:
            bound = {"mustBe": low} if low == high else {"mustBeBetween": [low, high]}
            said = f"exactly {low}" if low == high else f"between {low} and {high}"
        elif low is not None:
            bound, said = {"mustBeGreaterOrEqualTo": low}, f"at least {low}"
        else:
            bound, said = {"mustBeLessOrEqualTo": high}, f"at most {high}"
        rules.append({"name": "volume_rows", "type": "library", "dimension": "completeness", "metric": "rowCount",
                      **bound, "unit": "rows", "severity": volume.severity,
                      "description": f"Each publish has {said} row{'' if said.endswith(' 1') else 's'} (volume SLO)."})
    if volume and volume.max_change is not None:
        rules.append({"name": "volume_change", "type": "text", "dimension": "consistency", "severity": volume.severity,
                      "description": f"The row count changes by at most {volume.max_change:.0%} from one publish to "
                                     "the next (volume SLO).",
                      "customProperties": _custom(maxRelativeChange=volume.max_change)})
    return rules


def _sla_properties(port: OutputPort) -> list[dict]:
    sla: list[dict] = []
    freshness: Freshness | None = port.freshness
    if freshness and freshness.max_age:
        amount, unit = _duration(freshness.max_age)
        sla.append({"property": "frequency", "value": amount, "unit": unit, "driver": "operational",
                    "description": f"A new version is published at most {freshness.max_age} after the previous one "
                                   "(freshness SLO; older is a failure)."})
        if freshness.warn_after:
            amount, unit = _duration(freshness.warn_after)
            sla.append({"property": "frequencyWarning", "value": amount, "unit": unit, "driver": "operational",
                        "description": f"A warning is raised when the latest version is older than {freshness.warn_after}."})
    elif freshness and freshness.cron:
        amount, unit = _duration(freshness.cron_window)
        sla.append({"property": "frequency", "value": amount, "unit": unit, "driver": "operational",
                    "scheduler": "cron", "schedule": freshness.cron,
                    "description": f"By each tick of '{freshness.cron}' ({freshness.cron_timezone}), a version published "
                                   f"within the preceding {freshness.cron_window} is served (freshness SLO)."})
    if port.slos.timeliness:
        amount, unit = _duration(port.slos.timeliness.max_delay)
        latency = {"property": "latency", "value": amount, "unit": unit, "driver": "analytics",
                   "description": "The largest gap between the actual time of the data and its processing time "
                                  "(timeliness SLO)."}
        if port.actual_time != "snapshot":
            latency["element"] = f"{port.name}.{port.actual_time}"
        sla.append(latency)
    return sla


def _roles(manifest: Manifest, port: OutputPort) -> list[dict]:
    if port.visibility == "public":
        return []
    roles = [{"role": manifest.domain, "access": "read",
              "description": f"Every product of domain '{manifest.domain}', the owning domain."}]
    for approval in port.approved_access:
        roles.append({"role": approval.consumer, "access": "read", "description": approval.reason,
                      "firstLevelApprovers": manifest.owner.team})
    return roles


def _server(port_id: str) -> dict:
    from platform_resources.ports import CATALOG_NAME, default_location, table_identifier

    namespace, table = table_identifier(port_id)
    server = {"server": "mesh-iceberg", "type": "custom", "format": "iceberg", "catalog": CATALOG_NAME,
              "schema": namespace,
              "description": f"Iceberg table {namespace}.{table} in the mesh's catalog '{CATALOG_NAME}'."}
    location = default_location(port_id)
    if location is not None:
        server["location"] = location
    server["customProperties"] = _custom(table=f"{namespace}.{table}")
    return server


def odcs_contract(manifest: Manifest, port: OutputPort, registry: Registry) -> dict:
    """The Open Data Contract Standard (v3.1.0) contract of one output port."""
    from platform_resources.ports import table_name

    port_id = f"{manifest.id}.{port.name}"
    slos = port.slos
    completeness = slos.completeness.columns if slos.completeness else {}
    severity = slos.completeness.severity if slos.completeness else "warning"
    primary_key = list(port.contract.primary_key)
    properties = [_odcs_property(c, primary_key, completeness, severity) for c in port.contract.columns]
    properties.append(_processing_time_property())
    schema_object = {
        "name": port.name,
        "physicalName": table_name(port_id),
        "physicalType": "table",
        "logicalType": "object",
        "description": port.description,
        "dataGranularityDescription": f"One row per {', '.join(primary_key)}"
                                      + (" in each snapshot." if port.actual_time == "snapshot" else "."),
        "properties": properties,
        "quality": _schema_quality(manifest, port),
    }
    description = {"purpose": port.description,
                   "usage": f"Declare an input port 'from: {port_id}' in your product's manifest, or read it with "
                            f"'mesh read {port_id}'; engines read the Iceberg table {table_name(port_id)}."}
    note = _access_note(manifest, port)
    if note:
        description["limitations"] = note
    cron_timezone = port.freshness.cron_timezone if port.freshness and port.freshness.cron else None
    contract = {
        "apiVersion": ODCS_API_VERSION,
        "kind": "DataContract",
        "id": contract_id(port_id),
        "name": f"{manifest.name}: {port.name}",
        "version": contract_version(manifest, port),
        "status": STATUS[manifest.status],
        "domain": manifest.domain,
        "dataProduct": manifest.id,
        "description": description,
        "tags": list(manifest.tags),
        "servers": [_server(port_id)],
        "schema": [schema_object],
        "slaProperties": _sla_properties(port),
        "roles": _roles(manifest, port),
        "team": _team(manifest),
        "support": _support(manifest),
        "authoritativeDefinitions": _manifest_link(registry, manifest),
        "customProperties": _custom(visibility=port.visibility, actualTime=port.actual_time,
                                    consumers=registry.consumers(port_id), freshnessTimezone=cron_timezone),
    }
    return {k: v for k, v in contract.items() if v not in (None, [], {})}


# --- files and command -----------------------------------------------------------------------------


def _write(path: Path, document: dict, source: Path | None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# Generated by `mesh export`" + (f" from {source}" if source else "") + "; edit the manifest, not this file.\n"
    path.write_text(header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=120))
    return path


def export_all(registry: Registry, out: Path) -> list[Path]:
    """Write DIR/odps/<product>.odps.yaml per product and DIR/odcs/<port>.odcs.yaml per output port."""
    out = Path(out)
    written: list[Path] = []
    for product_id in sorted(registry.products):
        manifest = registry.products[product_id]
        source = registry.files.get(product_id)
        written.append(_write(out / ODPS_FOLDER / f"{product_id}{ODPS_SUFFIX}", odps_document(manifest, registry), source))
        for port in manifest.output_ports:
            port_id = f"{product_id}.{port.name}"
            written.append(_write(out / ODCS_FOLDER / f"{port_id}{ODCS_SUFFIX}",
                                  odcs_contract(manifest, port, registry), source))
    return written


def run_export(args: argparse.Namespace) -> int:
    from platform_resources.home import prepare_home
    from platform_resources.registry import load_registry

    prepare_home()
    registry = load_registry()
    paths = export_all(registry, Path(args.out))
    for path in paths:
        print(path)
    for product_id, errors in sorted(registry.broken.items()):
        print(f"skipped {product_id}: its manifest does not load ({errors.errors[0]})", file=sys.stderr)
    products = sum(1 for p in paths if p.name.endswith(ODPS_SUFFIX))
    print(f"exported {products} data products (ODPS {ODPS_API_VERSION}) and {len(paths) - products} "
          f"output-port contracts (ODCS {ODCS_API_VERSION}) to {Path(args.out)}")
    return 0


def add_command(commands, help: str) -> None:
    """Add `mesh export --out DIR` to the `mesh` command's subparsers."""
    export = commands.add_parser("export", help=help)
    export.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder to write odps/ and odcs/ into")
    export.set_defaults(handler=run_export)
