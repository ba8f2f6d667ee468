"""Read access to output ports: who may read what, decided before any data is read, and logged either way."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa

from platform_resources import access_log, ports
from platform_resources.registry import Registry


class AccessDenied(PermissionError):
    """A read refused by the mesh's access policy."""


class PortRetired(AccessDenied):
    """A read of a retired product's port: it serves nothing any more."""


def refuse_retired(registry: Registry, port_id: str) -> None:
    """A retired product's ports stop serving, whoever reads: say where its consumers go instead."""
    producer, _ = registry.port(port_id)
    if producer.status == "retired":
        instead = f"read its replacement {producer.replaced_by} instead" if producer.replaced_by else \
            "it names no replacement (replaced_by); ask its owner " + producer.owner.label
        raise PortRetired(f"lifecycle: {port_id} is not served: {producer.id} is retired; {instead}")


def check_read_access(registry: Registry, port_id: str, consumer: str | None) -> None:
    """Raise AccessDenied unless `consumer` (a product id of the mesh, or None for an anonymous reader) may read
    `port_id`.

    Public ports: anyone. Internal ports: the products of the producer's domain. Restricted ports: the producing
    product itself, and products whose input port requests access that the producer approved; a product of the
    same domain needs an approved request too. A reader that is no product of the mesh is refused.
    """
    producer, port = registry.port(port_id)
    if consumer is not None and consumer not in registry.products:
        broken = " (its manifest is broken: mesh validate says how to fix it)" if consumer in registry.broken else ""
        raise AccessDenied(f"policy: '{consumer}' is not a product of the mesh{broken}; read as a product id "
                           f"(domain.product, see mesh list), or without --as for public ports")
    if port.visibility == "public" or consumer == producer.id:
        return
    who = consumer or "an anonymous reader"
    if port.visibility == "internal":
        if consumer and registry.location_of(consumer) == registry.location_of(producer.id):
            return
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


@dataclass(frozen=True)
class Reader:
    """Who reads, and how the platform knows it (written to the access log with every decision)."""

    consumer: str | None
    established: str

    @staticmethod
    def claimed(consumer: str | None) -> "Reader":
        """A reader named on the command line: the configured principal (MESH_PRINCIPAL) where one is set, and
        there `--as` may only repeat it; elsewhere `--as` is a claim, logged as one."""
        principal = os.environ.get(PRINCIPAL)
        if principal and consumer and consumer != principal:
            raise AccessDenied(f"policy: you read as {principal} ({PRINCIPAL}); --as {consumer} is not yours to claim")
        if principal:
            return Reader(principal, f"configured principal ({PRINCIPAL})")
        return Reader(consumer, "claimed with --as, not verified" if consumer else "anonymous")

    @staticmethod
    def claimed_in_code(consumer: str | None) -> "Reader":
        return Reader(consumer, "named by the calling code, not verified" if consumer else "anonymous")


PRINCIPAL = "MESH_PRINCIPAL"


def _running_location() -> str | None:
    """The code location of the Dagster run this read happens in, when it is launched from one."""
    if "dagster" not in sys.modules:  # a run has Dagster loaded; `mesh read` need not import it
        return None
    from dagster import DagsterInvariantViolationError, OpExecutionContext

    try:
        run = OpExecutionContext.get().run
    except DagsterInvariantViolationError:
        return None
    origin = run.remote_job_origin
    return origin.location_name if origin else None


def authorize(registry: Registry, port_id: str, reader: Reader) -> Reader:
    """check_read_access, with a denial written to the access log. Inside a Dagster run the reader is a product of
    the run's code location: code cannot read as another domain's product."""
    try:
        refuse_retired(registry, port_id)
        running = _running_location()
        if running and reader.consumer and registry.location_of(reader.consumer) != running:
            raise AccessDenied(f"policy: code location {running} cannot read as {reader.consumer}, a product of "
                               f"{registry.location_of(reader.consumer)}")
        if running:
            reader = Reader(reader.consumer, f"a run of code location {running}")
        check_read_access(registry, port_id, reader.consumer)
    except AccessDenied as denied:
        access_log.record(reader.consumer, port_id, False, None, f"{denied} [reader: {reader.established}]")
        raise
    return reader


def open_port(registry: Registry, port_id: str, consumer: str | None | Reader, as_of: datetime | None = None,
              how: str = "read") -> ports.PortVersion:
    """The version of the port to read at `as_of` (latest when None), once the access policy allows it.

    consumer: a Reader, or a product id taken as a claim. The decision goes to the access log, with how the
    reader was established: a denied read before anything is resolved, an allowed one with the processing time
    it will serve.
    """
    reader = authorize(registry, port_id, consumer if isinstance(consumer, Reader) else Reader.claimed_in_code(consumer))
    version = ports.resolve_version(port_id, as_of)
    access_log.record(reader.consumer, port_id, True, version.processing_time, f"{how} [reader: {reader.established}]")
    return version


def read_port(registry: Registry, port_id: str, consumer: str | None | Reader, as_of: datetime | None = None,
              limit: int | None = None, partition: str | None = None) -> tuple[pa.Table, ports.PortVersion]:
    """What the port served at `as_of` (latest when None), after the access check; with `partition` (a key, a
    date, a month or a range FROM..TO), the rows of those partitions only."""
    window = _partition_window(registry, port_id, partition) if partition else None
    version = open_port(registry, port_id, consumer, as_of)
    return ports.scan_version(port_id, version, limit, window), version


def _partition_window(registry: Registry, port_id: str, text: str):
    from platform_resources.partitions import window_of_text

    _, port = registry.port(port_id)
    if port.partitioning is None:
        raise ValueError(f"{port_id} is not partitioned; read it without --partition")
    return window_of_text(port, text)
