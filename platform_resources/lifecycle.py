"""The end of a product's life: a retired product's Iceberg tables are dropped once its retention has passed."""

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

from platform_resources.manifest import Manifest, OutputPort, parse_duration
from platform_resources.registry import Registry


def removal_due(manifest: Manifest, port: OutputPort) -> datetime:
    """When a retired product's port data goes: its deprecation_date plus the port's retention `keep` (the day it
    retires when it declares no deprecation_date or no time-based retention: a version count keeps nothing of a
    product that publishes no more)."""
    start = datetime.combine(manifest.deprecation_date or date.min, time.min, timezone.utc)
    keep = port.retention and port.retention.keep
    return start + (parse_duration(keep) if keep else timedelta(0))


@dataclass
class RetiredRemoval:
    dropped: list[str] = field(default_factory=list)  # port ids whose tables were dropped
    waiting: dict[str, datetime] = field(default_factory=dict)  # port id -> when its data goes


def remove_retired_data(registry: Registry, now: datetime | None = None) -> RetiredRemoval:
    """Drop (and purge the files of) the Iceberg table of every port of a retired product whose retention passed."""
    from pyiceberg.exceptions import NoSuchTableError

    from platform_resources import ports

    now = now or datetime.now(timezone.utc)
    removal = RetiredRemoval()
    catalog = None
    for manifest in registry.products.values():
        if manifest.status != "retired":
            continue
        for port in manifest.output_ports:
            port_id = f"{manifest.id}.{port.name}"
            due = removal_due(manifest, port)
            if due > now:
                removal.waiting[port_id] = due
                continue
            catalog = catalog or ports.catalog()
            try:
                catalog.purge_table(ports.table_identifier(port_id))
            except NoSuchTableError:
                continue  # never published, or removed before
            removal.dropped.append(port_id)
    return removal
