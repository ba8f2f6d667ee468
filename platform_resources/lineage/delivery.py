"""Delivery of lineage events: the standard OpenLineage transport, behind the on-disk outbox.

Transport configuration is the standard OpenLineage one (openlineage.yml, OPENLINEAGE_URL + OPENLINEAGE_API_KEY,
OPENLINEAGE__TRANSPORT__*). With none of them, events go to a JSON-lines file under the mesh home.

Guarantees: events are delivered in emission order; an event is removed from the outbox only after the transport
accepted it, so none is lost to a failed send or a crash; emission never raises. Time bound: after a failed
send, every process sharing the outbox queues events without trying the transport for RETRY_AFTER seconds
(default 30), so a dead endpoint costs the whole mesh run at most one transport timeout (HTTP default 5 s) per
RETRY_AFTER window. The HTTP
transport's own retries are turned off unless openlineage.yml sets them: the outbox is the retry.
"""

import functools
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from openlineage.client import OpenLineageClient
from openlineage.client.serde import Serde
from openlineage.client.transport import Transport
from openlineage.client.transport.file import FileConfig, FileTransport
from openlineage.client.transport.http import HttpTransport
from openlineage.client.transport.noop import NoopConfig, NoopTransport

from platform_resources.home import mesh_home
from platform_resources.lineage.outbox import Outbox

log = logging.getLogger(__name__)
RETRY_AFTER = float(os.environ.get("MESH_LINEAGE_RETRY_AFTER", "30"))


def events_file() -> Path:
    return mesh_home() / "lineage" / "events.jsonl"


def outbox() -> Outbox:
    return Outbox(mesh_home() / "lineage" / "outbox")


def configured_transport() -> Transport:
    """The transport OpenLineage's own configuration asks for, or the mesh's local JSON-lines file."""
    probe = OpenLineageClient(transport=NoopTransport(NoopConfig()))
    configured = (probe.config.transport or {}).get("type") or os.environ.get("OPENLINEAGE_URL") \
        or os.environ.get("OPENLINEAGE_DISABLED", "").lower() == "true"
    if configured:
        transport = OpenLineageClient().transport
        if isinstance(transport, HttpTransport) and "retry" not in (probe.config.transport or {}):
            # The outbox retries; transport-level retries would only stretch a dead endpoint's cost (~10 s).
            transport.config.retry = {**transport.config.retry, "total": 0, "connect": 0, "read": 0}
            transport.session = None  # rebuilt lazily with the new retry policy
        return transport
    events_file().parent.mkdir(parents=True, exist_ok=True)
    return FileTransport(FileConfig(log_file_path=str(events_file()), append=True))


@dataclass
class FlushResult:
    delivered: int
    pending: int
    error: str | None = None


class Delivery:
    """Outbox-first delivery through one transport, with a pause after a failure."""

    def __init__(self, transport: Transport, box: Outbox):
        self.transport = transport
        self.outbox = box

    def emit(self, event) -> None:
        """Queue an OpenLineage event and deliver what the transport will take. Never raises."""
        try:
            payload = json.loads(Serde.to_json(event))
            with self.outbox.locked():
                self.outbox.append(payload)
                if time.time() >= self.outbox.paused_until():
                    self._deliver_pending()
        except Exception as exc:  # lineage must never fail a data run
            log.warning("lineage event not queued: %s", exc)

    def flush(self, force: bool = True) -> FlushResult:
        """Deliver every pending event now; without force, not while delivery is paused after a failure."""
        with self.outbox.locked():
            if not force and time.time() < self.outbox.paused_until():
                return FlushResult(0, len(self.outbox.pending()), "delivery paused after a failed send")
            return self._deliver_pending()

    def _deliver_pending(self) -> FlushResult:
        delivered = 0
        pending = self.outbox.pending()
        for path in pending:
            try:
                self.transport.emit(Outbox.read(path))
            except Exception as exc:
                self.outbox.pause(time.time() + RETRY_AFTER)
                # The exception text, never the transport's configuration: it may hold an API key.
                reason = f"{type(exc).__name__}: {exc}"
                log.warning("lineage delivery failed, %d events kept in the outbox: %s", len(pending) - delivered, reason)
                return FlushResult(delivered, len(pending) - delivered, reason)
            Outbox.remove(path)
            delivered += 1
        self.outbox.resume()  # the transport works again: nobody needs to wait (no write when nothing was paused)
        return FlushResult(delivered, 0)


@functools.cache
def _delivery_for(home: str) -> Delivery:
    return Delivery(configured_transport(), outbox())


def delivery() -> Delivery:
    """This process's delivery for the current mesh home."""
    return _delivery_for(str(mesh_home()))
