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
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

from dagster import DagsterInstance
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SQLITE_BUSY_TIMEOUT_SECONDS, SqliteEventLogStorage
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.pool import StaticPool


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
    try:
        yield
    finally:
        del storage._connect, storage.has_table
        for engine in engines.values():
            engine.dispose()


def _commit_without_waiting_for_the_disk(dbapi_connection, _record) -> None:
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")
