"""Every read of an output port, allowed or denied: who read which port, when, and which version."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from platform_resources.home import connect_store, mesh_home

FILE_NAME = "access_log.sqlite"


class AccessLogError(PermissionError):
    """The access log cannot be written or read: reads are refused (fail closed) until it can."""


@dataclass(frozen=True)
class AccessRecord:
    at: str  # when the read was decided (UTC, ISO 8601)
    consumer: str  # the reading product, domain, or 'anonymous'
    port_id: str
    allowed: bool
    processing_time: str | None  # the version served; None when denied
    reason: str  # why it was denied, or how it was read


def log_file() -> Path:
    return mesh_home() / FILE_NAME


@contextlib.contextmanager
def _failing_clearly(doing: str, consequence: str = "") -> Iterator[None]:
    """A full disk, a read-only or a damaged log file: say which file and why, not a sqlite3 traceback."""
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        cause = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise AccessLogError(f"cannot {doing} the access log {log_file()}: {cause}{consequence}. Free disk space, "
                             "or make the file and its folder writable (a damaged file: move it aside)") from exc


def _connect() -> sqlite3.Connection:
    return connect_store(FILE_NAME, "create table if not exists access_log (at text not null, consumer text "
                         "not null, port_id text not null, allowed integer not null, processing_time text, reason text not null)")


def record(consumer: str | None, port_id: str, allowed: bool, processing_time: datetime | None, reason: str) -> None:
    entry = (datetime.now(UTC).isoformat(), consumer or "anonymous", port_id, int(allowed),
             processing_time.isoformat() if processing_time else None, reason)
    refused = "; the read is refused (a read that cannot be logged is not served)"
    with _failing_clearly("record this read in", refused), closing(_connect()) as con, con:
        con.execute("insert into access_log values (?, ?, ?, ?, ?, ?)", entry)


def entries(port_id: str | None = None, consumer: str | None = None, limit: int | None = None) -> list[AccessRecord]:
    """The log, newest first, optionally for one port or one consumer."""
    conditions, params = [], []
    for column, value in (("port_id", port_id), ("consumer", consumer)):
        if value:
            conditions.append(f"{column} = ?")
            params.append(value)
    where = f"where {' and '.join(conditions)}" if conditions else ""
    sql = f"select * from access_log {where} order by at desc, rowid desc" + (f" limit {int(limit)}" if limit else "")
    with _failing_clearly("read"), closing(_connect()) as con:
        return [AccessRecord(at, who, port, bool(ok), version, reason)
                for at, who, port, ok, version, reason in con.execute(sql, params).fetchall()]
