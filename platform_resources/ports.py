"""Output-port storage: one Iceberg table per port, atomic publish stamped with a processing time, time travel.

A publish is one Iceberg commit holding one snapshot: the schema becomes exactly the published data's columns (plus
`_processing_time`), every data file of the previous version is replaced, and the snapshot's timestamp is the
processing time, so an Iceberg reader's time travel by timestamp agrees with `mesh read --as-of`.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import pyarrow as pa
from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError, ResolveError
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.manifest import DataFile
# pyiceberg 0.12 (pinned) has no public one-snapshot replace: publish builds it from the pieces its own
# overwrite and append use (the underscored names), covered by tests/test_port_contract.py.
from pyiceberg.io.pyarrow import _check_pyarrow_schema_compatible, _dataframe_to_data_files
from pyiceberg.schema import Schema, promote
from pyiceberg.table import DOWNCAST_NS_TIMESTAMP_TO_US_ON_WRITE, Table, TableProperties, Transaction
from pyiceberg.table.snapshots import Operation, Snapshot
from pyiceberg.table.update import AddSnapshotUpdate, UpdatesAndRequirements
from pyiceberg.table.update.snapshot import _OverwriteFiles
from pyiceberg.types import DoubleType, FloatType, IcebergType
from pyiceberg.utils.config import Config
from pyiceberg.utils.datetime import datetime_to_millis
from pyiceberg.utils.properties import property_as_int

from platform_resources import duckdb_data_files
from platform_resources.home import create_tolerating_others, mesh_home, postgres_url
from platform_resources.partitions import PartitionWindow, iceberg_filter, sql_predicate, transform_name
from platform_resources.staged import Staged, staged

if TYPE_CHECKING:
    from platform_resources.manifest import Retention

CATALOG_NAME = "mesh"
PROCESSING_TIME_COLUMN = "_processing_time"
STAMP_TYPE = pa.timestamp("us", tz="UTC")  # the processing time each row is stamped with
# Stamped on every publish's snapshot summary: what that version is. The contract version and the product version
# also go to the table properties, where catalog browsers show them.
PROCESSING_TIME_PROPERTY = "mesh.processing-time"
PRODUCT_VERSION_PROPERTY = "mesh.product-version"
CONTRACT_VERSION_PROPERTY = "mesh.contract-version"
CONTRACT_PROPERTY = "mesh.contract"  # the served contract as JSON, for the breaking-change check at the next publish
RUN_ID_PROPERTY = "mesh.run-id"  # the Dagster run that published the version
RETENTION_PROPERTY = "mesh.retention"  # the port's declared retention, as the manifest says it, for the time-travel error
PARTITIONS_PROPERTY = "mesh.partitions"  # on a partition publish's snapshot: the partitions it replaced


class PortNotPublishedError(LookupError):
    pass


class TimeTravelError(LookupError):
    pass


class PartitionPublishError(ValueError):
    """A partition publish that would not leave the port's other partitions as they were."""


@dataclass(frozen=True)
class PortVersion:
    processing_time: datetime
    snapshot_id: int
    run_id: str | None = None


@dataclass(frozen=True)
class Stamp:
    """What a publish says about the version it commits (all optional: a bare publish in a test has none)."""

    product_version: str | None = None
    contract_version: str | None = None
    contract: str | None = None  # JSON, written and read by governance.contract_changes
    run_id: str | None = None

    def properties(self) -> dict[str, str]:
        return {name: value for name, value in ((PRODUCT_VERSION_PROPERTY, self.product_version),
                                                (CONTRACT_VERSION_PROPERTY, self.contract_version),
                                                (CONTRACT_PROPERTY, self.contract),
                                                (RUN_ID_PROPERTY, self.run_id)) if value is not None}

    @classmethod
    def of(cls, snapshot: Snapshot) -> Stamp:
        summary = snapshot.summary.additional_properties if snapshot.summary else {}
        return cls(summary.get(PRODUCT_VERSION_PROPERTY), summary.get(CONTRACT_VERSION_PROPERTY),
                   summary.get(CONTRACT_PROPERTY), summary.get(RUN_ID_PROPERTY))


@dataclass(frozen=True)
class PublishResult:
    port_id: str
    processing_time: datetime
    snapshot_id: int
    rows: int
    table_name: str
    location: str
    first_publish: bool
    expired: int = 0  # older versions the port's retention expired at this publish
    epoch: datetime | None = None  # the processing time of the oldest version retained after it
    total_rows: int | None = None  # every row the port serves after it (more than `rows` for a partition publish)


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
    by_time: dict[str, PortVersion] = {}
    for entry in table.metadata.snapshot_log:  # commit order
        snapshot = snapshots.get(entry.snapshot_id)
        stamp = snapshot.summary.additional_properties.get(PROCESSING_TIME_PROPERTY) if snapshot else None
        if stamp:
            # A port published before one-snapshot publishes has two snapshots per publish: the last one served.
            by_time[stamp] = PortVersion(datetime.fromisoformat(stamp), snapshot.snapshot_id, Stamp.of(snapshot).run_id)
    return sorted(by_time.values(), key=lambda v: v.processing_time)


def served_stamp(port_id: str) -> Stamp | None:
    """What the version the port serves now said about itself; None when the port was never published."""
    try:
        snapshot = _load_table(port_id).current_snapshot()
    except PortNotPublishedError:
        return None
    return Stamp.of(snapshot) if snapshot else None


def publish(port_id: str, data: Staged | pa.Table, column_docs: dict[str, str] | None = None,
            stamp: Stamp = Stamp(), retention: Retention | None = None,
            window: PartitionWindow | None = None) -> PublishResult:
    """Replace what the port serves with `data` in one atomic Iceberg commit of one snapshot, stamped with a new
    processing time. The port then serves exactly data's columns; older versions keep theirs, for as long as
    `retention` says (every one without it): expire_versions runs right after the commit.

    A partitioned port publishes with the `window` of partitions it replaces, and its table is partitioned the same
    way (an Iceberg partition spec on the window's column). A window of some of the partitions replaces those only:
    `data` must lie inside them and keep the served schema."""
    data = staged(data)
    required, key = _contract_fields(data, stamp)
    served = pa.schema([f.with_nullable(False) if f.name in required else f for f in data.schema],
                       metadata=data.schema.metadata)
    schema = served.append(pa.field(PROCESSING_TIME_COLUMN, STAMP_TYPE, nullable=False))
    namespace, name = table_identifier(port_id)
    try:
        table = _load_table(port_id)
    except PortNotPublishedError:
        # Create only when missing: pyiceberg writes a metadata file before it finds that a table exists.
        catalog().create_namespace_if_not_exists(namespace)
        table = catalog().create_table_if_not_exists((namespace, name), schema=schema, properties={"mesh.port-id": port_id})
    partial = window if window is not None and not window.whole else None
    if partial is not None:
        _refuse_rows_outside(port_id, data, partial)
    history = _versions_of(table)
    processing_time = _next_processing_time(history[-1].processing_time if history else None)
    with table.transaction() as tx:
        if partial is not None:
            _refuse_schema_change(port_id, tx, schema, partial)
        _serve_exactly(tx, schema, column_docs or {}, key)
        if versions_served := {k: v for k, v in stamp.properties().items()
                               if k in (PRODUCT_VERSION_PROPERTY, CONTRACT_VERSION_PROPERTY)}:
            tx.set_properties(versions_served)
        _stamp_retention(tx, table, retention)
        _partition_by(tx, window)
        file_size = property_as_int(table.properties, TableProperties.WRITE_TARGET_FILE_SIZE_BYTES,
                                    TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT)
        # In the partitions' order, so that each chunk spans few partitions and writes few files.
        chunks = data.chunks(file_size, order_by=window.column if window is not None else None)
        _replace_data(tx, table, data, chunks, schema, processing_time, stamp, partial, port_id)
    # The committed transaction has refreshed `table`: no second catalog round trip.
    snapshot = table.current_snapshot()
    expiry = _expire(table, retention, processing_time)
    total = snapshot.summary.additional_properties.get("total-records") if snapshot.summary else None
    return PublishResult(port_id, processing_time, snapshot.snapshot_id, data.num_rows, f"{namespace}.{name}",
                         table.location(), first_publish=not history, expired=len(expiry.expired), epoch=expiry.epoch,
                         total_rows=int(total) if total is not None else None)


def _refuse_rows_outside(port_id: str, data: Staged, window: PartitionWindow) -> None:
    outside = data.query(f"select count(*) from staged where not coalesce({sql_predicate(window)}, false)")[0]
    if outside:
        raise PartitionPublishError(f"{outside:,} of the {data.num_rows:,} rows published to {port_id} for partitions "
                                    f"{window.label} lie outside them (by {window.column}); publish only their rows")


def _refuse_schema_change(port_id: str, tx: Transaction, schema: pa.Schema, window: PartitionWindow) -> None:
    """Partitions published alone keep the others' schema: a change of columns or types needs every partition."""
    served = tx.table_metadata.schema()
    wanted = Catalog._convert_schema_if_needed(schema)
    if [(f.name, f.field_type) for f in served.fields] != [(f.name, f.field_type) for f in wanted.fields]:
        raise PartitionPublishError(
            f"publishing partitions {window.label} of {port_id} would change its columns or types, and its other "
            f"partitions would keep the old ones; publish every partition to change the schema (mesh run without "
            f"--partitions)")


def _partition_by(tx: Transaction, window: PartitionWindow | None) -> None:
    """Make the table's partition spec the window's partitioning (none for an unpartitioned port). Files written
    before keep their own spec; a publish of some partitions refuses to replace them (_partition_files)."""
    from pyiceberg.transforms import DayTransform, IdentityTransform, MonthTransform

    schema, spec = tx.table_metadata.schema(), tx.table_metadata.spec()
    current = [(schema.find_column_name(f.source_id), str(f.transform)) for f in spec.fields]
    wanted = [] if window is None else [(window.column, transform_name(window.by))]
    if current == wanted:
        return
    transforms = {"day": DayTransform, "month": MonthTransform, "identity": IdentityTransform}
    with tx.update_spec() as update:
        for existing in spec.fields:
            update.remove_field(existing.name)
        for column, transform in wanted:
            update.add_field(column, transforms[transform](), f"{column}_{transform}")


def _contract_fields(data: Staged, stamp: Stamp) -> tuple[set[str], list[str]]:
    """The columns the served contract requires (not nullable, or in the primary key) and its primary key, which the
    table marks as required and identifier fields so an outside reader sees the contract in the table; none for a
    bare publish. Only columns without nulls are required: the runtime checks (MESH-DATA-002/003) refuse nulls
    before a port asset publishes, a direct publish that has some serves the column optional."""
    from platform_resources.governance.contract_changes import contract_from_record

    contract = contract_from_record(stamp.contract) if stamp.contract else None
    if contract is None:
        return set(), []
    required = {c.name for c in contract.columns if not c.nullable} | set(contract.primary_key)
    return {n for n in required if n in data.column_names and not data.null_count(n)}, list(contract.primary_key)


def _identifier_fields(key: list[str], schema: Schema) -> list[str]:
    """The key as Iceberg identifier fields: all of it, or none where Iceberg refuses a column (optional, float,
    double)."""
    fields = {f.name: f for f in schema.fields}
    usable = all(n in fields and fields[n].required and not isinstance(fields[n].field_type, (FloatType, DoubleType))
                 for n in key)
    return list(key) if usable else []


def _next_processing_time(last: datetime | None) -> datetime:
    """Now, but strictly after the port's last processing time even if the clock stepped back; whole milliseconds,
    the precision of an Iceberg snapshot timestamp, so the two are the same instant."""
    now = datetime.now(timezone.utc)
    now -= timedelta(microseconds=now.microsecond % 1000)
    if last is None:
        return now
    after = last + timedelta(microseconds=1)
    return max(now, after + timedelta(microseconds=-after.microsecond % 1000))


def _serve_exactly(tx: Transaction, schema: pa.Schema, column_docs: dict[str, str], key: Sequence[str] = ()) -> None:
    """Make the table's current schema the published columns, in their order, with their types and descriptions,
    required where the schema's fields are not nullable, the key as identifier fields.

    A column that is gone, or whose type changed other than by an Iceberg promotion (int to long, float to double,
    a wider decimal), is dropped; a changed one is added again with a new field id. Older snapshots keep the schema
    they were written with, so time travel still shows their columns (and nulls where a column is required now).
    """
    wanted = Catalog._convert_schema_if_needed(schema)  # pyarrow -> Iceberg types, as union_by_name converts them
    wanted_types = {f.name: f.field_type for f in wanted.fields}
    identifiers = _identifier_fields(list(key), wanted)
    with tx.update_schema() as update:
        served = tx.table_metadata.schema()
        gone = {f.name for f in served.fields
                if f.name not in wanted_types or not _promotes(f.field_type, wanted_types[f.name])}
        # Identifier fields first: a column that leaves the key may be dropped or become nullable below.
        update.set_identifier_fields(*(n for n in served.identifier_field_names() if n in identifiers and n not in gone))
        for name in gone:
            update.delete_column(name)
    # Adding a required column or making one required is an "incompatible" change to pyiceberg; the data has no nulls
    # there (_contract_fields), and older snapshots keep their own schema.
    # A second update: the first one's deletes are not visible inside it.
    with tx.update_schema(allow_incompatible_changes=True) as update:
        update.union_by_name(schema)
    # A third: the second one's new columns are not visible inside it either.
    with tx.update_schema(allow_incompatible_changes=True) as update:
        for field in wanted.fields:
            if field.required:
                update.update_column(field.name, required=True)
        update.set_identifier_fields(*identifiers)
        names = [f.name for f in wanted.fields]
        update.move_first(names[0])
        for before, name in zip(names, names[1:]):
            update.move_after(name, before)
        for column, doc in column_docs.items():
            if column in wanted_types:
                update.update_column(column, doc=doc)


def _promotes(served: IcebergType, published: IcebergType) -> bool:
    """True when Iceberg can evolve a column from the served type to the published one in place."""
    if served == published:
        return True
    try:
        promote(served, published)
    except ResolveError:
        return False
    return True


class _StampedOverwrite(_OverwriteFiles):
    """pyiceberg's overwrite snapshot producer, its snapshot timestamped with the publish's processing time rather
    than the commit's clock (pyiceberg 0.12 has no option for it)."""

    def __init__(self, tx: Transaction, io, processing_time: datetime, properties: dict[str, str]):
        operation = Operation.OVERWRITE if tx.table_metadata.current_snapshot() else Operation.APPEND
        super().__init__(operation=operation, transaction=tx, io=io, snapshot_properties=properties)
        self._timestamp_ms = datetime_to_millis(processing_time)

    def _commit(self) -> UpdatesAndRequirements:
        updates, requirements = super()._commit()
        return tuple(AddSnapshotUpdate(snapshot=u.snapshot.model_copy(update={"timestamp_ms": self._timestamp_ms}))
                     if isinstance(u, AddSnapshotUpdate) else u for u in updates), requirements


def _replace_data(tx: Transaction, table: Table, data: Staged, chunks: Iterable[pa.Table], schema: pa.Schema,
                  processing_time: datetime, stamp: Stamp, window: PartitionWindow | None = None,
                  port_id: str = "") -> None:
    """One snapshot that removes the data files of the version served now (those of `window`'s partitions only,
    when given) and adds the new version's files, each row stamped with the processing time: written by DuckDB
    where it can (duckdb_data_files), else the chunks of `data` in `schema`, written from Arrow."""
    _check_pyarrow_schema_compatible(  # as pyiceberg's own append checks
        tx.table_metadata.schema(), provided_schema=schema, format_version=tx.table_metadata.format_version,
        downcast_ns_timestamp_to_us=Config().get_bool(DOWNCAST_NS_TIMESTAMP_TO_US_ON_WRITE) or False)
    properties = {PROCESSING_TIME_PROPERTY: processing_time.isoformat(), **stamp.properties()}
    if window is not None:
        properties[PARTITIONS_PROPERTY] = window.label
    with _StampedOverwrite(tx, table.io, processing_time, properties) as snapshot:
        if window is None:
            snapshot.delete_by_predicate(AlwaysTrue())  # every manifest of the served version is rewritten or dropped
            replaced = [task.file for task in table.scan().plan_files()] if table.current_snapshot() else []
        else:
            snapshot.delete_by_predicate(iceberg_filter(window))  # only the manifests of these partitions change
            replaced = _partition_files(tx, table, window, port_id)
        for data_file in replaced:
            snapshot.delete_data_file(data_file)
        written = duckdb_data_files.write(tx, data, PROCESSING_TIME_COLUMN, processing_time, snapshot.commit_uuid)
        if written is None:
            written = _arrow_data_files(tx, table, chunks, schema, processing_time, snapshot.commit_uuid)
        for data_file in written:
            snapshot.append_data_file(data_file)


def _arrow_data_files(tx: Transaction, table: Table, chunks: Iterable[pa.Table], schema: pa.Schema,
                      processing_time: datetime, write_uuid: str) -> Iterator[DataFile]:
    """The chunks in `schema`, stamped with the processing time, written by pyiceberg (pyarrow) as it appends."""
    served = schema.remove(schema.get_field_index(PROCESSING_TIME_COLUMN))
    files = itertools.count()  # file names stay unique across the chunks
    for chunk in chunks:
        if not chunk.num_rows:
            continue
        stamped = chunk.cast(served).append_column(schema.field(PROCESSING_TIME_COLUMN),
                                                   pa.repeat(pa.scalar(processing_time, STAMP_TYPE), chunk.num_rows))
        yield from _dataframe_to_data_files(table_metadata=tx.table_metadata, df=stamped, io=table.io,
                                            write_uuid=write_uuid, counter=files)


def _partition_files(tx: Transaction, table: Table, window: PartitionWindow, port_id: str) -> list:
    """The served data files of the window's partitions. Each must hold those partitions only, under the table's
    partition spec: a file written before the port was partitioned this way also holds other partitions' rows."""
    if table.current_snapshot() is None:
        return []
    spec = tx.table_metadata.spec()
    inside = _partition_values(window)
    files = [task.file for task in table.scan(row_filter=iceberg_filter(window)).plan_files()]
    misfits = [f for f in files if f.spec_id != spec.spec_id or f.partition[0] not in inside]
    if misfits:
        raise PartitionPublishError(
            f"{port_id} holds data written before it was partitioned by {window.by} of {window.column} "
            f"({len(misfits)} files); publish every partition once (mesh run without --partitions), then one at a time")
    return files


def _partition_values(window: PartitionWindow) -> set:
    """The window's partitions as Iceberg stores them in a data file: days or months since 1970, or the values."""
    if window.by == "value":
        return set(window.values) | {int(v) for v in window.values if v.lstrip("-").isdigit()}
    epoch = datetime(1970, 1, 1).date()
    if window.by == "day":
        return set(range((window.start - epoch).days, (window.end - epoch).days))
    months = lambda d: (d.year - 1970) * 12 + d.month - 1  # noqa: E731
    return set(range(months(window.start), months(window.end)))


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
        retention = _load_table(port_id).properties.get(RETENTION_PROPERTY)
        expired = f"; older versions were expired by the port's retention ({retention})" if retention else ""
        raise TimeTravelError(
            f"{as_of.isoformat()} is before the oldest retained version of {port_id} "
            f"(processing time {history[0].processing_time.isoformat()}){expired}; ask for a later time")
    return served[-1]


def scan_version(port_id: str, version: PortVersion, limit: int | None = None,
                 window: PartitionWindow | None = None) -> pa.Table:
    """The rows of a version (of `window`'s partitions only, when given), in the columns that version was published
    with (pyiceberg scans a snapshot with the schema recorded on it, not the table's current one)."""
    row_filter = iceberg_filter(window) if window is not None else AlwaysTrue()
    return _load_table(port_id).scan(snapshot_id=version.snapshot_id, limit=limit, row_filter=row_filter).to_arrow()


def local_data_files(port_id: str, version: PortVersion, window: PartitionWindow | None = None) -> list[str] | None:
    """The local Parquet files that make up a version (that may hold rows of `window`'s partitions, when given), or
    None when it cannot be read as plain files (remote storage, or delete files that must be applied). A publish
    of every partition writes every file of its version, so the files hold exactly that version's columns."""
    paths = []
    row_filter = iceberg_filter(window) if window is not None else AlwaysTrue()
    for task in _load_table(port_id).scan(snapshot_id=version.snapshot_id, row_filter=row_filter).plan_files():
        if task.delete_files or not task.file.file_path.startswith("file://"):
            return None
        paths.append(task.file.file_path.removeprefix("file://"))
    return paths


def retention_text(retention: Retention) -> str:
    """The retention as the manifest says it: 'keep: 90d, versions: 10'."""
    return ", ".join(f"{name}: {value}" for name, value in retention.model_dump(exclude_none=True).items())


def _stamp_retention(tx: Transaction, table: Table, retention: Retention | None) -> None:
    """Record the declared retention on the table (or that there is none any more), where the time-travel error
    and catalog browsers read it."""
    if retention is not None:
        tx.set_properties({RETENTION_PROPERTY: retention_text(retention)})
    elif RETENTION_PROPERTY in table.properties:
        tx.remove_properties(RETENTION_PROPERTY)


@dataclass(frozen=True)
class Expiry:
    expired: list[PortVersion] = field(default_factory=list)  # the versions expired, oldest first
    removed_files: list[str] = field(default_factory=list)  # the local files deleted with them
    epoch: datetime | None = None  # the oldest retained processing time


def expire_versions(port_id: str, retention: Retention | None, now: datetime | None = None) -> Expiry:
    """Expire the port's versions its retention no longer keeps, and delete their files (see _expire)."""
    return _expire(_load_table(port_id), retention, now or datetime.now(timezone.utc))


def retained(history: list[PortVersion], retention: Retention | None, now: datetime) -> list[PortVersion]:
    """The versions a retention keeps at `now`: the served (latest) one always; with `keep`, those published within
    it; with `versions`, the latest that many; with both, the versions either keeps; without retention, all."""
    if retention is None or not history:
        return list(history)
    from platform_resources.manifest import parse_duration

    by_count = set(range(max(0, len(history) - retention.versions), len(history))) if retention.versions else set()
    since = now - parse_duration(retention.keep) if retention.keep else None
    return [v for i, v in enumerate(history)
            if i == len(history) - 1 or i in by_count or (since is not None and v.processing_time >= since)]


def _expire(table: Table, retention: Retention | None, now: datetime) -> Expiry:
    """Remove the snapshots of the versions the retention does not keep (Iceberg snapshot expiry), then delete the
    local files only those snapshots referenced: pyiceberg 0.12 expires snapshots without deleting any file."""
    history = _versions_of(table)
    kept = retained(history, retention, now)
    epoch = kept[0].processing_time if kept else None
    if len(kept) == len(history):
        return Expiry(epoch=epoch)
    keep_ids = {v.snapshot_id for v in kept} | {table.current_snapshot().snapshot_id}
    oldest_kept_ms = min(table.metadata.snapshot_by_id(i).timestamp_ms for i in keep_ids)
    # Also the snapshots without a processing time before the epoch (the first of a two-snapshot publish of old).
    doomed = [s.snapshot_id for s in table.metadata.snapshots
              if s.snapshot_id not in keep_ids and s.timestamp_ms < oldest_kept_ms]
    before = referenced_files(table)
    table.maintenance.expire_snapshots().by_ids(doomed).commit()
    table.refresh()
    removed = delete_local_files(table, before - referenced_files(table))
    return Expiry([v for v in history if v not in kept], removed, epoch)


def referenced_files(table: Table) -> set[str]:
    """Every manifest list, manifest and live data file of the table's snapshots."""
    files: set[str] = set()
    seen_manifests: set[str] = set()
    for snapshot in table.metadata.snapshots:
        files.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(table.io):
            files.add(manifest.manifest_path)
            if manifest.manifest_path in seen_manifests:
                continue
            seen_manifests.add(manifest.manifest_path)
            # Live entries only: a DELETED entry names a file of an older snapshot, not of this one.
            files.update(e.data_file.file_path for e in manifest.fetch_manifest_entry(table.io, discard_deleted=True))
    return files


def delete_local_files(table: Table, paths: set[str]) -> list[str]:
    """Delete the files that are local and inside the table's own folder; any other is left alone."""
    location = urlparse(table.location())
    if location.scheme not in ("", "file"):
        return []
    folder = Path(location.path).resolve()
    removed = []
    for path in sorted(paths):
        parsed = urlparse(path)
        file = Path(parsed.path).resolve()
        if parsed.scheme in ("", "file") and file.is_relative_to(folder) and file.is_file():
            file.unlink()
            removed.append(str(file))
    return removed


class InconsistentProductError(LookupError):
    pass


@dataclass(frozen=True)
class ProductVersion:
    """One run's publish of every output port of a product: the ports as they were meant to be read together."""

    product_id: str
    run_id: str
    ports: dict[str, PortVersion]  # port id -> the version that run published

    @property
    def processing_time(self) -> datetime:
        return max(v.processing_time for v in self.ports.values())


def product_version(product_id: str, port_names: Sequence[str]) -> ProductVersion:
    """The latest run that published every one of the product's output ports (port_names), and what it published.

    Each port is published in its own commit, so after a run stopped part way (kill -9, a failed check) the
    latest versions of a product's ports can come from different runs; this is the newest version that did not.
    """
    port_ids = [f"{product_id}.{name}" for name in port_names]
    by_run: dict[str, dict[str, PortVersion]] = {}
    for port_id in port_ids:
        for version in versions(port_id):
            # A version published outside a run (none recorded) counts as its own run.
            run = version.run_id or f"snapshot {version.snapshot_id}"
            by_run.setdefault(run, {})[port_id] = version  # a run's last publish of the port wins
    complete = [ProductVersion(product_id, run, published) for run, published in by_run.items()
                if len(published) == len(port_ids)]
    if not complete:
        raise InconsistentProductError(
            f"no run has published every output port of {product_id} ({', '.join(port_ids)}); run the whole "
            f"product (mesh run --domain {product_id.split('.')[0]}) and read again, or read without --consistent")
    return max(complete, key=lambda v: v.processing_time)
