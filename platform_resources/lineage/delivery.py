"""Delivery of lineage events: the standard OpenLineage transport, behind the on-disk outbox.

Transport configuration is the standard OpenLineage one (openlineage.yml, OPENLINEAGE_URL + OPENLINEAGE_API_KEY,
OPENLINEAGE__TRANSPORT__*). With none of them, events go to a JSON-lines file under the mesh home.

Guarantees: events are delivered in emission order, at least once: an event is removed from the outbox only after
the transport accepted it, so none is lost to a failed send or a crash, and one the endpoint received without
answering in time is sent again. A receiver drops duplicates by the event's key (event_key). Emission and flushing
never raise. An event that cannot be parsed, or that the endpoint refuses for good (a 4xx about the event itself),
moves to the outbox's quarantine/ folder and the events behind it go on. An event that cannot be queued (a
read-only or full outbox) is sent directly when the transport works, and reported as a warning either way.

Time bound: after a failed send, every process sharing the outbox queues events without trying the transport for
RETRY_AFTER seconds (default 30), so a dead endpoint costs the whole mesh run at most one transport timeout (HTTP
default 5 s) per RETRY_AFTER window. The HTTP transport's own retries are turned off unless openlineage.yml sets
them: the outbox is the retry.
"""

import contextlib
import functools
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from dagster import get_dagster_logger
from openlineage.client import OpenLineageClient
from openlineage.client.serde import Serde
from openlineage.client.transport import Transport
from openlineage.client.transport.file import FileConfig, FileTransport
from openlineage.client.transport.http import HttpTransport
from openlineage.client.transport.noop import NoopConfig, NoopTransport

from platform_resources.home import mesh_home
from platform_resources.lineage.outbox import Outbox

log = get_dagster_logger("lineage")  # inside a run, its warnings land in the Dagster event log; outside, on stderr
RETRY_AFTER = float(os.environ.get("MESH_LINEAGE_RETRY_AFTER", "30"))
# 4xx answers about the endpoint or the credentials, not about the event: keep the event and retry later.
_RETRYABLE_4XX = {401, 403, 404, 407, 408, 425, 429}


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
    with contextlib.suppress(OSError):  # a read-only home: the send fails later, and is reported then
        events_file().parent.mkdir(parents=True, exist_ok=True)
    return FileTransport(FileConfig(log_file_path=str(events_file()), append=True))


class _UnusableTransport(Transport):
    """Stands in for a transport whose configuration failed: every send fails with why, events wait in the outbox."""

    kind = "unusable"

    def __init__(self, reason: str):
        self.reason = reason

    def emit(self, event):
        raise RuntimeError(f"the OpenLineage transport cannot be configured: {self.reason}")


def event_key(event: dict) -> tuple[str, ...]:
    """What identifies one event, the same on every resend (the outbox resends the stored bytes).

    OpenLineage has no event id: a run event is (runId, eventType, eventTime), a dataset or job event the
    dataset's or job's namespace and name with its eventTime.
    """
    if "run" in event:
        return event["run"].get("runId", ""), event.get("eventType", ""), event.get("eventTime", "")
    named = event.get("dataset") or event.get("job") or {}
    return named.get("namespace", ""), named.get("name", ""), event.get("eventTime", "")


def _describe(event: dict) -> str:
    """An event in a log line: its type and job or dataset, never its facets (they may carry values)."""
    job, dataset = event.get("job") or {}, event.get("dataset") or {}
    subject = f"job {job.get('name')}" if job else f"dataset {dataset.get('name')}"
    return f"{event.get('eventType', 'dataset')} event of {subject} at {event.get('eventTime')}"


def _reason(exc: BaseException) -> str:
    # The exception text, never the transport's configuration: it may hold an API key.
    return f"{type(exc).__name__}: {exc}"


def _refused_for_good(exc: BaseException) -> bool:
    """The endpoint looked at this event and said no (400, 413, 422, ...): sending it again cannot help."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return isinstance(exc, requests.HTTPError) and status is not None and 400 <= status < 500 \
        and status not in _RETRYABLE_4XX


@dataclass
class FlushResult:
    delivered: int
    pending: int
    error: str | None = None
    quarantined: int = 0


class Delivery:
    """Outbox-first delivery through one transport, with a pause after a failure."""

    def __init__(self, transport: Transport, box: Outbox):
        self.transport = transport
        self.outbox = box
        self._direct_paused_until = 0.0  # the pause for direct sends, when the outbox cannot hold it

    def emit(self, event) -> None:
        """Queue an OpenLineage event and deliver what the transport will take. Never raises."""
        try:
            payload = json.loads(Serde.to_json(event))
        except Exception as exc:  # lineage must never fail a data run
            log.warning("lineage event not serializable, not sent: %s", _reason(exc))
            return
        try:
            with self.outbox.locked():
                self.outbox.append(payload)
        except Exception as exc:
            self._send_unqueued(payload, exc)
            return
        self.flush(force=False)

    def flush(self, force: bool = True) -> FlushResult:
        """Deliver every pending event now; without force, not while delivery is paused after a failure.

        Never raises: an outbox that cannot be used is a warning and the result's error."""
        try:
            with self.outbox.locked():
                if not force and time.time() < self.outbox.paused_until():
                    return FlushResult(0, len(self.outbox.pending()), "delivery paused after a failed send")
                return self._deliver_pending()
        except Exception as exc:
            error = f"the lineage outbox {self.outbox.folder} cannot be used: {_reason(exc)}"
            log.warning(error)
            return FlushResult(0, self._count_pending(), error)

    def _count_pending(self) -> int:
        try:
            return len(self.outbox.pending())
        except OSError:
            return 0

    def _send_unqueued(self, payload: dict, cause: BaseException) -> None:
        """An event the outbox cannot store: straight to the transport (out of order, not retried), and said so."""
        what = f"lineage {_describe(payload)} could not be queued in the outbox {self.outbox.folder} ({_reason(cause)})"
        if time.time() < self._direct_paused_until:
            log.warning("%s and the transport failed moments ago: the event is lost", what)
            return
        try:
            self.transport.emit(payload)
        except Exception as exc:
            self._direct_paused_until = time.time() + RETRY_AFTER
            log.warning("%s and sending it directly failed (%s): the event is lost", what, _reason(exc))
            return
        log.warning("%s; sent directly instead", what)

    def _deliver_pending(self) -> FlushResult:
        delivered = quarantined = 0
        pending = self.outbox.pending()
        for position, path in enumerate(pending):
            try:
                payload = Outbox.read(path)
            except ValueError as exc:
                self._quarantine(path, f"cannot be parsed: {exc}")
                quarantined += 1
                continue
            try:
                self.transport.emit(payload)
            except Exception as exc:
                if _refused_for_good(exc):
                    self._quarantine(path, f"{_describe(payload)} refused by the endpoint: {_reason(exc)}",
                                     exc.response.text[:2000])
                    quarantined += 1
                    continue
                self.outbox.pause(time.time() + RETRY_AFTER)
                waiting = len(pending) - position
                log.warning("lineage delivery failed, %d events kept in the outbox %s: %s",
                            waiting, self.outbox.folder, _reason(exc))
                return FlushResult(delivered, waiting, _reason(exc), quarantined)
            Outbox.remove(path)
            delivered += 1
        self.outbox.resume()  # the transport works again: nobody needs to wait (no write when nothing was paused)
        return FlushResult(delivered, 0, None, quarantined)

    def _quarantine(self, path: Path, reason: str, answer: str = "") -> None:
        """Out of the queue, kept; the endpoint's answer goes in the note beside it, not in the log."""
        kept = self.outbox.quarantine(path, reason + (f"\nthe endpoint answered: {answer}" if answer else ""))
        log.warning("lineage event %s %s; kept in %s (the reason beside it), the events behind it go on; "
                    "move it back into %s to send it again", path.name, reason, kept, self.outbox.folder)


@functools.cache
def _delivery_for(home: str) -> Delivery:
    try:
        transport = configured_transport()
    except Exception as exc:  # a broken openlineage.yml must not fail a data run either
        log.warning("lineage transport not configured, events wait in the outbox: %s", _reason(exc))
        transport = _UnusableTransport(_reason(exc))
    return Delivery(transport, outbox())


def delivery() -> Delivery:
    """This process's delivery for the current mesh home."""
    return _delivery_for(str(mesh_home()))
