"""Dagster's SQLite event log files held open while a run worker writes to them.

Dagster's SQLite event log storage creates a SQLAlchemy engine for every event it stores, connects, and disposes of
both afterwards (NullPool). Each event then pays for a new engine, a new connection and compiling its statements
again (the compiled cache is the engine's), and in WAL mode SQLite checkpoints the write-ahead log into the database
and deletes it whenever the *last* connection to a database closes: two disk syncs and a file deletion per event.
A run writes hundreds of events, each partition materialization to the run's file and to the index.

For as long as its run lasts, the run worker keeps one engine per file with one pooled connection, which the
storage's own lock already serializes. SQLite still checkpoints (automatically, every 1,000 pages), and an idle
connection holds no lock that would keep another process from reading or writing. Two more per-event costs go:
  - Its commits do not wait for the disk (`synchronous=NORMAL`, SQLite's advice for WAL mode): the file cannot
    be corrupted; a power cut can lose the run's last events, which a power cut mid-run loses the run for anyway.
  - Which optional tables the index has (the storage asks with a new engine for every materialization) is asked
    once: only a migration (`dagster instance migrate`) adds one, never a run.
  - The materializations of one output's partitions (80 per partitioned port of the sample mesh, whatever the
    scale) are stored as a batch, as Dagster's PostgreSQL storage stores them (DAGSTER_EVENT_BATCH_SIZE): one insert
    per file, and the asset's latest materialization updated once, not once per partition.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator, Sequence

from dagster import DagsterInstance
from dagster._core.events import DagsterEventType
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SQLITE_BUSY_TIMEOUT_SECONDS, SqliteEventLogStorage
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.pool import StaticPool

BATCH_SIZE = "1000"  # events per batch at most: a day-partitioned port over six years stores 3 batches
_BATCHED_TYPES = ({DagsterEventType.ASSET_MATERIALIZATION}, {DagsterEventType.ASSET_OBSERVATION})


@contextlib.contextmanager
def kept_open(instance: DagsterInstance) -> Iterator[None]:
    """Reuse one engine and connection per event log file while the run lasts (an instance storing events
    elsewhere: nothing to hold)."""
    storage = instance.event_log_storage
    if not isinstance(storage, SqliteEventLogStorage):
        yield
        return
    engines: dict[str, Engine] = {}

    @contextlib.contextmanager
    def connect(shard: str) -> Iterator[Connection]:  # SqliteEventLogStorage._connect, the engine kept
        with storage._db_lock:
            engine = engines.get(shard)
            if engine is None:
                engine = engines[shard] = create_engine(
                    storage.conn_string_for_shard(shard), poolclass=StaticPool,
                    connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False})
                event.listen(engine, "connect", _commit_without_waiting_for_the_disk)
                if shard not in storage._initialized_dbs:
                    storage._initdb(engine)
                    storage._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    @functools.cache
    def has_table(table_name: str) -> bool:
        return type(storage).has_table(storage, table_name)

    storage._connect, storage.has_table = connect, has_table
    storage.store_event_batch = functools.partial(_store_batch, storage)
    batch_size = os.environ.get("DAGSTER_EVENT_BATCH_SIZE")
    os.environ["DAGSTER_EVENT_BATCH_SIZE"] = batch_size or BATCH_SIZE
    try:
        yield
    finally:
        if batch_size is None:
            del os.environ["DAGSTER_EVENT_BATCH_SIZE"]
        del storage._connect, storage.has_table, storage.store_event_batch
        for engine in engines.values():
            engine.dispose()


def _store_batch(storage: SqliteEventLogStorage, events: Sequence[EventLogEntry]) -> None:
    """What SqliteEventLogStorage.store_event does for each event, for a batch of one asset's materializations (or
    observations) in a run: rows into the run's file and the index, each event's tags, the asset's latest event."""
    kinds = {e.get_dagster_event().event_type for e in events}
    if kinds not in _BATCHED_TYPES or len({e.run_id for e in events}) != 1:
        type(storage).store_event_batch(storage, events)  # one by one, as Dagster's base storage does
        return
    rows = [storage._event_to_row(e) for e in events]
    with storage.run_connection(events[0].run_id) as conn:
        conn.execute(SqlEventLogStorageTable.insert(), rows)
    with storage.index_transaction() as conn:
        inserted = conn.execute(SqlEventLogStorageTable.insert().returning(
            SqlEventLogStorageTable.c.id, sort_by_parameter_order=True), rows)
        event_ids = [row[0] for row in inserted]
        storage._store_asset_event_tags(conn, events, event_ids)
        storage._store_asset_event(conn, events[-1], event_ids[-1])


def _commit_without_waiting_for_the_disk(dbapi_connection, _record) -> None:
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")
