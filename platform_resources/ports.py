"""Output-port storage: one Iceberg table per port, atomic publish stamped with a processing time, time travel."""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError
from pyiceberg.table import Table
from pyiceberg.utils.config import Config

from platform_resources.home import create_tolerating_others, mesh_home, postgres_url

CATALOG_NAME = "mesh"
PROCESSING_TIME_COLUMN = "_processing_time"
PROCESSING_TIME_PROPERTY = "mesh.processing-time"


class PortNotPublishedError(LookupError):
    pass


class TimeTravelError(LookupError):
    pass


@dataclass(frozen=True)
class PortVersion:
    processing_time: datetime
    snapshot_id: int


@dataclass(frozen=True)
class PublishResult:
    port_id: str
    processing_time: datetime
    snapshot_id: int
    rows: int
    table_name: str
    location: str
    first_publish: bool


@functools.cache
def _catalog_for(home: str, uri: str | None) -> Catalog:
    # A catalog configured the standard pyiceberg way (.pyiceberg.yaml or PYICEBERG_CATALOG__MESH__*),
    # for example a REST catalog, wins over the local default: a SQL catalog in MESH_POSTGRES_URL's database (else
    # SQLite), its warehouse under the mesh home. A SQL catalog creates its tables on first use, which domains may race.
    if config := Config().get_catalog_config(CATALOG_NAME):  # read now: load_catalog's own copy is from import time
        return create_tolerating_others(lambda: load_catalog(CATALOG_NAME, **config))
    Path(home, "iceberg").mkdir(parents=True, exist_ok=True)
    return create_tolerating_others(lambda: load_catalog(
        CATALOG_NAME, type="sql", uri=uri or f"sqlite:///{home}/iceberg/catalog.db", warehouse=f"file://{home}/iceberg/warehouse"))


def catalog() -> Catalog:
    return _catalog_for(str(mesh_home()), postgres_url())


def table_identifier(port_id: str) -> tuple[str, str]:
    """crm.customers.customer_contacts -> namespace 'crm', table 'customers__customer_contacts'."""
    domain, product, port = port_id.split(".")
    return domain, f"{product}__{port}"


def table_name(port_id: str) -> str:
    return ".".join(table_identifier(port_id))


def default_location(port_id: str) -> str | None:
    """Where the default local catalog keeps the port's table; None when another catalog is configured."""
    if Config().get_catalog_config(CATALOG_NAME):
        return None
    namespace, name = table_identifier(port_id)
    return f"file://{mesh_home()}/iceberg/warehouse/{namespace}/{name}"


def _load_table(port_id: str) -> Table:
    try:
        return catalog().load_table(table_identifier(port_id))
    except (NoSuchTableError, NoSuchNamespaceError):  # the domain's namespace comes with its first publish
        raise PortNotPublishedError(f"port {port_id} has not been published yet; materialize it first "
                                    f"(mesh run --domain {port_id.split('.')[0]})") from None


def versions(port_id: str) -> list[PortVersion]:
    """Every retained publish of the port, oldest first (one entry per processing time)."""
    return _versions_of(_load_table(port_id))


def _versions_of(table: Table) -> list[PortVersion]:
    snapshots = {s.snapshot_id: s for s in table.metadata.snapshots}
    by_time: dict[str, int] = {}
    for entry in table.metadata.snapshot_log:  # commit order
        snapshot = snapshots.get(entry.snapshot_id)
        stamp = snapshot.summary.additional_properties.get(PROCESSING_TIME_PROPERTY) if snapshot else None
        if stamp:
            by_time[stamp] = snapshot.snapshot_id  # the last snapshot of a publish is what it served
    return sorted((PortVersion(datetime.fromisoformat(t), s) for t, s in by_time.items()), key=lambda v: v.processing_time)


def publish(port_id: str, data: pa.Table, column_docs: dict[str, str] | None = None) -> PublishResult:
    """Replace what the port serves with `data` in one atomic Iceberg commit, stamped with a new processing time:
    now, but strictly after the port's last processing time even if the clock stepped back."""
    stamp_type = pa.timestamp("us", tz="UTC")
    schema = data.schema.append(pa.field(PROCESSING_TIME_COLUMN, stamp_type, nullable=False))
    namespace, name = table_identifier(port_id)
    try:
        table = _load_table(port_id)
    except PortNotPublishedError:
        # Create only when missing: pyiceberg writes a metadata file before it finds that a table exists.
        catalog().create_namespace_if_not_exists(namespace)
        table = catalog().create_table_if_not_exists((namespace, name), schema=schema, properties={"mesh.port-id": port_id})
    history = _versions_of(table)
    now = datetime.now(timezone.utc)
    processing_time = max(now, history[-1].processing_time + timedelta(microseconds=1)) if history else now
    stamped = data.append_column(schema.field(PROCESSING_TIME_COLUMN),
                                 pa.repeat(pa.scalar(processing_time, stamp_type), data.num_rows))
    with table.transaction() as tx, warnings.catch_warnings():
        # The first publish of a port overwrites an empty table; pyiceberg warns that nothing was deleted.
        warnings.filterwarnings("ignore", "Delete operation did not match any records")
        with tx.update_schema() as update:
            update.union_by_name(stamped.schema)
        with tx.update_schema() as update:  # a second update: the first one's new columns are not visible inside it
            for column, doc in (column_docs or {}).items():
                update.update_column(column, doc=doc)
        tx.overwrite(stamped, snapshot_properties={PROCESSING_TIME_PROPERTY: processing_time.isoformat()})
    # The committed transaction has refreshed `table`: no second catalog round trip.
    return PublishResult(port_id, processing_time, table.current_snapshot().snapshot_id, data.num_rows,
                         f"{namespace}.{name}", table.location(), first_publish=not history)


def resolve_version(port_id: str, as_of: datetime | None = None) -> PortVersion:
    """The publish that was being served at `as_of` (the latest when None)."""
    history = versions(port_id)
    if not history:
        raise PortNotPublishedError(f"port {port_id} has no published version")
    if as_of is None:
        return history[-1]
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=timezone.utc)
    served = [v for v in history if v.processing_time <= as_of]
    if not served:
        raise TimeTravelError(
            f"{as_of.isoformat()} is before the oldest retained version of {port_id} "
            f"(processing time {history[0].processing_time.isoformat()}); ask for a later time")
    return served[-1]


def scan_version(port_id: str, version: PortVersion, limit: int | None = None) -> pa.Table:
    return _load_table(port_id).scan(snapshot_id=version.snapshot_id, limit=limit).to_arrow()


def local_data_files(port_id: str, version: PortVersion) -> list[str] | None:
    """The local Parquet files that make up a version, or None when it cannot be read as plain files
    (remote storage, or delete files that must be applied)."""
    paths = []
    for task in _load_table(port_id).scan(snapshot_id=version.snapshot_id).plan_files():
        if task.delete_files or not task.file.file_path.startswith("file://"):
            return None
        paths.append(task.file.file_path.removeprefix("file://"))
    return paths
