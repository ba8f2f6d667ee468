"""Read access to output ports: who may read what, decided before any data is read, and logged either way."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa

from platform_resources import access_log, ports
from platform_resources.registry import Registry


class AccessDenied(PermissionError):
    """A read refused by the mesh's access policy."""


def check_read_access(registry: Registry, port_id: str, consumer: str | None) -> None:
    """Raise AccessDenied unless `consumer` (a product id, a domain, or None for anyone) may read `port_id`."""
    producer, port = registry.port(port_id)
    if port.visibility == "public":
        return
    consumer_domain = registry.location_of(consumer) if consumer else None
    if consumer_domain == registry.location_of(producer.id):
        return
    who = consumer or "an anonymous reader"
    if port.visibility == "internal":
        raise AccessDenied(f"policy: {port_id} is internal to domain '{producer.domain}'; {who} may not read it. "
                           f"Read one of {producer.id}'s public ports instead.")
    consumer_manifest = registry.products.get(consumer or "")
    requested = consumer_manifest is not None and any(
        p.source == port_id and p.access_request for p in consumer_manifest.input_ports)
    approved = port.approves(consumer)
    if requested and approved:
        return
    missing = []
    if not requested:
        missing.append(f"an input port 'from: {port_id}' with an access_request in the manifest of "
                       f"{consumer or 'your product'}")
    if not approved:
        missing.append(f"an approved_access entry for {consumer or 'your product'} on port {port.name} in the manifest "
                       f"of {producer.id} (owner {producer.owner.label})")
    raise AccessDenied(f"policy: {port_id} is restricted; {who} has no approved access request. "
                       f"Needed: {' and '.join(missing)}.")


def authorize(registry: Registry, port_id: str, consumer: str | None) -> None:
    """check_read_access, with a denial written to the access log."""
    try:
        check_read_access(registry, port_id, consumer)
    except AccessDenied as denied:
        access_log.record(consumer, port_id, False, None, str(denied))
        raise


def open_port(registry: Registry, port_id: str, consumer: str | None, as_of: datetime | None = None,
              how: str = "read") -> ports.PortVersion:
    """The version of the port to read at `as_of` (latest when None), once the access policy allows it.

    The decision goes to the access log: a denied read before anything is resolved, an allowed one with the
    processing time it will serve.
    """
    authorize(registry, port_id, consumer)
    version = ports.resolve_version(port_id, as_of)
    access_log.record(consumer, port_id, True, version.processing_time, how)
    return version


def read_port(registry: Registry, port_id: str, consumer: str | None, as_of: datetime | None = None,
              limit: int | None = None) -> tuple[pa.Table, ports.PortVersion]:
    """What the port served at `as_of` (latest when None), after the access check."""
    version = open_port(registry, port_id, consumer, as_of)
    return ports.scan_version(port_id, version, limit), version
