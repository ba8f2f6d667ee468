"""`mesh export`: every product as an ODPS v1.0.0 document, every output port as an ODCS v3.2.0 contract.

The manifest stays the single declaration; these documents are derived from it (and from the registry, for
consumers and the contracts of input ports) so catalogs and contract tools that speak the open standards
can read the mesh. A contract carries what the platform enforces at every publish (key, required columns,
masking, the domain's rows_satisfy policies, the SLOs) as rules `datacontract test` runs on the served Iceberg
table. Contracts are built with the open-data-contract-standard models and checked against the JSON schema
that package ships; the ODPS documents are checked by the tests against the published ODPS schema.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import yaml
from jsonschema import Draft201909Validator
from open_data_contract_standard.model import (AuthoritativeDefinition, CustomProperty, DataQuality, Description,
                                               OpenDataContractStandard, Role, SchemaObject, SchemaProperty, Server,
                                               ServiceLevelAgreementProperty, Support, Team)
from pyiceberg.utils.config import Config

from platform_resources.governance.runtime import (HASHED, MASKED, NOT_EMPTY, PRIMARY_KEY, REDACTED_VISIBLE,
                                                   local_check_name)
from platform_resources.home import mesh_home, postgres_url
from platform_resources.manifest import Column, Freshness, LocalPolicy, Manifest, OutputPort
from platform_resources.ports import CATALOG_NAME, PROCESSING_TIME_COLUMN, default_location, table_identifier, table_name
from platform_resources.registry import Registry
from platform_resources.sql_sandbox import UnsafeCondition, condition_sql

ODPS_API_VERSION = "v1.0.0"
ODCS_API_VERSION = "v3.2.0"
SERVER_NAME = "mesh-iceberg"
ODPS_FOLDER, ODPS_SUFFIX = "odps", ".odps.yaml"
ODCS_FOLDER, ODCS_SUFFIX = "odcs", ".odcs.yaml"

# Our lifecycle statuses and the status words both standards use. Spelled out, so that a new status in the
# manifest fails here (KeyError) instead of leaking an unknown word into the documents.
STATUS = {"draft": "draft", "active": "active", "deprecated": "deprecated", "retired": "retired"}

# Contract column types -> (ODCS logical type, logical type options).
_INTEGER_WIDTH = {"tinyint": "i8", "smallint": "i16", "integer": "i32", "bigint": "i64"}
_FLOAT_WIDTH = {"float": "f32", "double": "f64"}

# Iceberg has no 8- or 16-bit integers: a port serves those columns as 32-bit integers.
_SERVED_TYPE = {"tinyint": "integer", "smallint": "integer"}

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
# The contract is built from the standard's own pydantic models (open-data-contract-standard) and checked
# against the JSON schema that package ships before it is written.


def _rule(name: str, policy: str | None = None, customProperties: list[CustomProperty] = (), **fields) -> DataQuality:
    """One ODCS quality rule; `policy` names the platform policy that checks it before every publish."""
    return DataQuality(name=name, customProperties=_properties(policy=policy) + list(customProperties) or None, **fields)


def _properties(**values) -> list[CustomProperty]:
    return [CustomProperty(**p) for p in _custom(**values)]


def _required(column: Column, primary_key: list[str]) -> bool:
    """Required in the contract: a non-nullable column (MESH-DATA-003) or a key column (MESH-DATA-002: not null)."""
    return not column.nullable or column.name in primary_key


def _masking_rule(column: Column) -> DataQuality:
    """MESH-DATA-005 as a rule on the served values: hashed is SHA-256 hex, redacted shows at most a few characters."""
    if column.masking == "hashed":
        return _rule(f"masking_{column.name}", MASKED.id, type="library", dimension="conformity",
                     metric="invalidValues", arguments={"pattern": HASHED}, mustBe=0, unit="rows", severity="error",
                     description=f"{column.name} is served hashed: every value is a SHA-256 hex digest (masking).")
    value = "CAST(${column} AS VARCHAR)"
    return _rule(f"masking_{column.name}", MASKED.id, type="sql", dimension="conformity", mustBe=0, unit="rows",
                 severity="error",
                 query=f"SELECT COUNT(*) FROM ${{table}} WHERE ${{column}} IS NOT NULL AND (length(regexp_replace("
                       f"{value}, '[^A-Za-z0-9]', '', 'g')) > {REDACTED_VISIBLE} OR NOT contains({value}, '*'))",
                 description=f"{column.name} is served redacted: every value shows mask characters ('*') and at most "
                             f"{REDACTED_VISIBLE} letters or digits (masking).")


def _completeness_rule(column: Column, share: float, severity: str) -> DataQuality:
    return _rule(f"completeness_{column.name}", type="library", dimension="completeness", metric="nullValues",
                 mustBeLessOrEqualTo=_number((1 - share) * 100), unit="percent", severity=severity,
                 description=f"At least {_number(share * 100)}% of the rows have a value in {column.name} "
                             "(completeness SLO).")


def _odcs_property(column: Column, primary_key: list[str], completeness: dict[str, float], severity: str,
                   partitioning: tuple[str, str] | None = None) -> SchemaProperty:
    """partitioning: (column, by) of a partitioned port, whose partition column ODCS marks."""
    logical, options = logical_type(column.type)
    rules = []
    if column.masking:
        rules.append(_masking_rule(column))
    if column.name in completeness:
        rules.append(_completeness_rule(column, completeness[column.name], severity))
    key = column.name in primary_key
    partitioned = partitioning is not None and column.name == partitioning[0]
    return SchemaProperty(
        name=column.name, logicalType=logical, logicalTypeOptions=options or None,
        physicalType=_SERVED_TYPE.get(column.type, column.type), description=column.description,
        required=_required(column, primary_key), primaryKey=key or None,
        primaryKeyPosition=primary_key.index(column.name) + 1 if key else None,
        classification=column.classification,
        partitioned=True if partitioned else None, partitionKeyPosition=1 if partitioned else None,
        customProperties=_properties(masking=column.masking, partitionedBy=partitioning[1] if partitioned else None,
                                     contractType=column.type if column.type in _SERVED_TYPE else None) or None,
        quality=rules or None)


def _processing_time_property() -> SchemaProperty:
    return SchemaProperty(name=PROCESSING_TIME_COLUMN, logicalType="timestamp", logicalTypeOptions={"timezone": True},
                          physicalType="timestamptz", description=PROCESSING_TIME_DESCRIPTION, required=True,
                          classification="public", customProperties=_properties(addedBy="platform"))


def _local_runtime_policies(manifest: Manifest, port: OutputPort) -> list[LocalPolicy]:
    """The manifest's rows_satisfy policies that run on this port (the ones runtime.checks_of runs)."""
    return [p for p in manifest.governance.policies
            if p.rows_satisfy is not None and (p.ports is None or port.name in p.ports)]


def _rows_satisfy_rule(policy: LocalPolicy, port: OutputPort) -> DataQuality:
    fields = {"dimension": "accuracy", "severity": policy.severity,
              "description": f"{policy.id} {policy.title}: every row satisfies {policy.rows_satisfy}. {policy.rationale}"}
    try:
        condition = condition_sql(policy.rows_satisfy, [c.name for c in port.contract.columns])
    except UnsafeCondition as refused:  # the platform never runs it, so nothing publishes: say so, run nothing
        return _rule(local_check_name(policy), policy.id, type="text",
                     **fields | {"description": f"{fields['description']} Not run: {refused} (MESH-SQL-001)."})
    return _rule(local_check_name(policy), policy.id, type="sql", mustBe=0, unit="rows",
                 query=f"SELECT COUNT(*) FROM ${{table}} WHERE NOT COALESCE(({condition}), FALSE)", **fields)


def _schema_quality(manifest: Manifest, port: OutputPort) -> list[DataQuality]:
    key = list(port.contract.primary_key)
    rules = [_rule("primary_key", PRIMARY_KEY.id, type="library", dimension="uniqueness", metric="duplicateValues",
                   arguments={"properties": key}, mustBe=0, unit="rows", severity="error",
                   description=f"The primary key ({', '.join(key)}) is unique; checked before every publish, a "
                               "failing result is not published.")]
    if not port.may_be_empty:
        # SQL rather than a second rowCount rule: datacontract-cli 1.2.8 cannot run two rowCount rules on one table.
        rules.append(_rule("row_count", NOT_EMPTY.id, type="sql", dimension="completeness",
                           query="SELECT COUNT(*) FROM ${table}", mustBeGreaterThan=0, unit="rows", severity="error",
                           description="Every publish has rows; the port does not declare may_be_empty."))
    rules += [_rows_satisfy_rule(p, port) for p in _local_runtime_policies(manifest, port)]
    slos = port.slos
    if slos.timeliness:
        where = "the snapshot" if port.actual_time == "snapshot" else f"the newest {port.actual_time}"
        rules.append(_rule("timeliness", type="text", dimension="timeliness", severity=slos.timeliness.severity,
                           description=f"At most {slos.timeliness.max_delay} between {where} and the processing "
                                       "time of each publish (timeliness SLO)."))
    if slos.completeness and slos.completeness.rows_vs_input:
        ratio = slos.completeness.rows_vs_input
        rules.append(_rule("completeness_rows_vs_input", type="text", dimension="completeness",
                           severity=slos.completeness.severity,
                           description=f"Each publish has at least {ratio.min_ratio:g} times as many rows as input port "
                                       f"{ratio.input_port} ({_input_source(manifest, ratio.input_port)}) "
                                       "(completeness SLO).",
                           customProperties=_properties(inputPort=_input_source(manifest, ratio.input_port),
                                                        minRatio=ratio.min_ratio)))
    volume = slos.volume
    if volume and (volume.min_rows is not None or volume.max_rows is not None):
        bound, said = _row_bounds(volume.min_rows, volume.max_rows)
        rules.append(_rule("volume_rows", type="library", dimension="completeness", metric="rowCount", **bound,
                           unit="rows", severity=volume.severity,
                           description=f"Each publish has {said} row{'' if said.endswith(' 1') else 's'} (volume SLO)."))
    if volume and volume.max_change is not None:
        rules.append(_rule("volume_change", type="text", dimension="consistency", severity=volume.severity,
                           description=f"The row count changes by at most {volume.max_change:.0%} from one publish "
                                       "to the next (volume SLO).",
                           customProperties=_properties(maxRelativeChange=volume.max_change)))
    return rules


def _input_source(manifest: Manifest, input_port: str) -> str:
    return next((p.source for p in manifest.input_ports if p.name == input_port), input_port)


def _row_bounds(low: int | None, high: int | None) -> tuple[dict, str]:
    if low is not None and high is not None:
        return ({"mustBe": low}, f"exactly {low}") if low == high else \
            ({"mustBeBetween": [low, high]}, f"between {low} and {high}")
    if low is not None:
        return {"mustBeGreaterOrEqualTo": low}, f"at least {low}"
    return {"mustBeLessOrEqualTo": high}, f"at most {high}"


def _sla(property: str, description: str, severity: str, **fields) -> ServiceLevelAgreementProperty:
    """One SLA property; the severity of the SLO's check goes along as a custom property."""
    return ServiceLevelAgreementProperty(property=property, description=description,
                                         customProperties=_properties(severity=severity), **fields)


def _freshness_sla(port: OutputPort) -> list[ServiceLevelAgreementProperty]:
    freshness: Freshness | None = port.freshness
    if freshness and freshness.max_age:
        # `freshness` on the processing time is what contract tools test: the newest version is at most this old.
        sla = [_sla("freshness", **_duration_value(freshness.max_age), driver="operational", severity="error",
                    element=f"{port.name}.{PROCESSING_TIME_COLUMN}",
                    description=f"The version served was published at most {freshness.max_age} ago (freshness SLO; "
                                "older is a failure).")]
        if freshness.warn_after:
            sla.append(_sla("freshnessWarning", **_duration_value(freshness.warn_after), driver="operational",
                            severity="warning", element=f"{port.name}.{PROCESSING_TIME_COLUMN}",
                            description=f"A warning is raised when the version served is older than "
                                        f"{freshness.warn_after}."))
        return sla
    if freshness and freshness.cron:
        amount, unit = _duration(freshness.cron_window)
        return [_sla("frequency", value=amount, unit=unit, driver="operational", scheduler="cron", schedule=freshness.cron,
                     severity="error", element=f"{port.name}.{PROCESSING_TIME_COLUMN}",
                     description=f"By each tick of '{freshness.cron}' ({freshness.cron_timezone}), a version published "
                                 f"within the preceding {freshness.cron_window} is served (freshness SLO).")]
    return []


def _duration_value(text: str) -> dict:
    """value and unit of a duration; seconds as an ISO-8601 duration, which tools read without a unit."""
    amount, unit = _duration(text)
    return {"value": f"PT{amount}S"} if unit == "seconds" else {"value": amount, "unit": unit}


def _sla_properties(port: OutputPort) -> list[ServiceLevelAgreementProperty]:
    sla = _freshness_sla(port)
    slos = port.slos
    if slos.timeliness:
        amount, unit = _duration(slos.timeliness.max_delay)
        sla.append(_sla("latency", value=amount, unit=unit, driver="analytics", severity=slos.timeliness.severity,
                        element=f"{port.name}.{port.actual_time}" if port.actual_time != "snapshot" else None,
                        description="The largest gap between the actual time of the data and its processing time "
                                    "(timeliness SLO)."))
    if slos.completeness:
        for column, share in slos.completeness.columns.items():
            sla.append(_sla("completeness", value=_number(share * 100), unit="percent", element=f"{port.name}.{column}",
                            driver="analytics", severity=slos.completeness.severity,
                            description=f"At least {_number(share * 100)}% of the rows have a value in {column} "
                                        "(completeness SLO)."))
        if ratio := slos.completeness.rows_vs_input:
            sla.append(_sla("completenessVsInput", value=ratio.min_ratio, unit="ratio", element=port.name, driver="analytics",
                            severity=slos.completeness.severity,
                            description=f"Each publish has at least {ratio.min_ratio:g} times as many rows as input "
                                        f"port {ratio.input_port} (completeness SLO)."))
    volume = slos.volume
    if volume:
        for name, value, unit, said in (("volumeMinRows", volume.min_rows, "rows", "at least"),
                                        ("volumeMaxRows", volume.max_rows, "rows", "at most")):
            if value is not None:
                sla.append(_sla(name, value=value, unit=unit, element=port.name, driver="operational",
                                severity=volume.severity,
                                description=f"Each publish has {said} {value} row{'' if value == 1 else 's'} (volume SLO)."))
        if volume.max_change is not None:
            sla.append(_sla("volumeMaxChange", value=_number(volume.max_change * 100), unit="percent", element=port.name,
                            driver="operational", severity=volume.severity,
                            description=f"The row count changes by at most {volume.max_change:.0%} from one publish "
                                        "to the next (volume SLO)."))
    return sla


def _roles(manifest: Manifest, port: OutputPort) -> list[Role]:
    if port.visibility == "public":
        return []
    roles = [Role(role=manifest.domain, access="read",
                  description=f"Every product of domain '{manifest.domain}', the owning domain.")]
    roles += [Role(role=a.consumer, access="read", description=a.reason, firstLevelApprovers=manifest.owner.team)
              for a in port.approved_access]
    return roles


def catalog_connection() -> tuple[str, str | None, str | None]:
    """(pyiceberg catalog type, URL without its password, warehouse) of the catalog ports.catalog() opens; read from
    the configuration only, so exporting needs no catalog round trip."""
    config = Config().get_catalog_config(CATALOG_NAME)
    if config:  # configured the standard pyiceberg way: a REST catalog, say
        return config.get("type", "rest"), config.get("uri") and _without_password(config["uri"]), config.get("warehouse")
    home = mesh_home()
    url = postgres_url()
    return "sql", _without_password(url) if url else f"sqlite:///{home}/iceberg/catalog.db", f"file://{home}/iceberg/warehouse"


def _without_password(url: str) -> str:
    """A contract is shared: a password in the catalog URL never goes into it (the tester supplies it)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}@{host}" if parts.username else host))


def _server(port_id: str) -> Server:
    namespace, table = table_identifier(port_id)
    catalog_type, url, warehouse = catalog_connection()
    described = f"Iceberg table {namespace}.{table} in the mesh's {catalog_type} catalog '{CATALOG_NAME}'."
    properties = _properties(catalogType=catalog_type, table=f"{namespace}.{table}", tableLocation=default_location(port_id))
    if url is None:  # a catalog without a URL (Glue, say): ODCS's iceberg server needs one, a custom server does not
        return Server(server=SERVER_NAME, type="custom", format="iceberg", catalog=CATALOG_NAME, schema=namespace,
                      description=described, customProperties=properties)
    return Server(server=SERVER_NAME, type="iceberg", catalog=CATALOG_NAME, catalogUrl=url, namespace=namespace,
                  warehouse=warehouse, description=described, customProperties=properties)


def odcs_contract(manifest: Manifest, port: OutputPort, registry: Registry) -> dict:
    """The Open Data Contract Standard (v3.2.0) contract of one output port, valid against the standard's schema."""
    port_id = f"{manifest.id}.{port.name}"
    namespace, table = table_identifier(port_id)
    slos = port.slos
    completeness = slos.completeness.columns if slos.completeness else {}
    severity = slos.completeness.severity if slos.completeness else "warning"
    primary_key = list(port.contract.primary_key)
    partitioning = (port.partition_column, port.partitioning.by) if port.partitioning else None
    properties = [_odcs_property(c, primary_key, completeness, severity, partitioning) for c in port.contract.columns]
    properties.append(_processing_time_property())
    schema_object = SchemaObject(
        name=port.name, physicalName=table, physicalType="table", logicalType="object", description=port.description,
        dataGranularityDescription=f"One row per {', '.join(primary_key)}"
                                   + (" in each snapshot." if port.actual_time == "snapshot" else "."),
        properties=properties, quality=_schema_quality(manifest, port))
    note = _access_note(manifest, port)
    description = Description(
        purpose=port.description, limitations=note,
        usage=f"Declare an input port 'from: {port_id}' in your product's manifest, or read it with "
              f"'mesh read {port_id}'; engines read the Iceberg table {namespace}.{table}.")
    cron_timezone = port.freshness.cron_timezone if port.freshness and port.freshness.cron else None
    contract = OpenDataContractStandard(
        apiVersion=ODCS_API_VERSION, kind="DataContract", id=contract_id(port_id),
        name=f"{manifest.name}: {port.name}", version=contract_version(manifest, port), status=STATUS[manifest.status],
        domain=manifest.domain, dataProduct=manifest.id, description=description, tags=list(manifest.tags) or None,
        servers=[_server(port_id)], schema=[schema_object], slaProperties=_sla_properties(port) or None,
        roles=_roles(manifest, port) or None, team=Team.model_validate(_team(manifest)),
        support=[Support(**s) for s in _support(manifest)],
        authoritativeDefinitions=[AuthoritativeDefinition(**d) for d in _manifest_link(registry, manifest)] or None,
        customProperties=_properties(visibility=port.visibility, actualTime=port.actual_time,
                                     consumers=registry.consumers(port_id), freshnessTimezone=cron_timezone))
    document = _readable(contract.model_dump(by_alias=True, exclude_none=True))
    problems = odcs_problems(document)
    if problems:  # the platform built it: a defect here, never the manifest author's mistake
        raise ValueError(f"the ODCS contract of {port_id} is not valid ODCS {ODCS_API_VERSION} (a defect of "
                         f"platform_resources.export; please report it): " + "; ".join(problems))
    return document


# Keys a reader looks for first, and the one that is only for tools last (the models dump in declaration order).
_FIRST_KEYS = ("apiVersion", "kind", "id", "name", "property", "server", "type", "version", "status")


def _readable(value):
    if isinstance(value, list):
        return [_readable(v) for v in value]
    if not isinstance(value, dict):
        return value
    order = [k for k in _FIRST_KEYS if k in value] + [k for k in value if k not in _FIRST_KEYS and k != "customProperties"]
    return {k: _readable(value[k]) for k in order + (["customProperties"] if "customProperties" in value else [])}


@functools.cache
def odcs_validator() -> Draft201909Validator:
    """A validator for the JSON schema open-data-contract-standard ships (its $refs are all local)."""
    schema = json.loads(resources.files("open_data_contract_standard").joinpath("schema.json").read_text())
    return Draft201909Validator(schema, format_checker=Draft201909Validator.FORMAT_CHECKER)


def odcs_problems(document: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
            for e in odcs_validator().iter_errors(document)]


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
