"""Lineage delivery over real HTTP on 127.0.0.1: nothing lost, in order, no duplicates, no leaked key."""

import json
import logging
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
from openlineage.client.uuid import generate_new_uuid

from platform_resources.lineage import delivery as delivery_module
from platform_resources.lineage.delivery import Delivery, configured_transport
from platform_resources.lineage.outbox import Outbox

API_KEY = "mesh-test-secret-key-42"


class Receiver:
    """An OpenLineage HTTP endpoint that answers 500 to its first `failures` requests, then accepts."""

    def __init__(self, failures: int = 0):
        self.failures = failures
        self.requests = 0
        self.received: list[dict] = []
        self.authorization: set[str] = set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests += 1
                receiver.authorization.add(self.headers.get("Authorization", ""))
                if receiver.requests <= receiver.failures:
                    self.send_response(500)
                else:
                    receiver.received.append(json.loads(body))
                    self.send_response(201)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def run_ids(self) -> list[str]:
        return [event["run"]["runId"] for event in self.received]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    servers = []

    def start(failures: int = 0) -> Receiver:
        servers.append(Receiver(failures))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def http_config(tmp_path, monkeypatch, url: str) -> None:
    """Standard OpenLineage configuration: an openlineage.yml named by OPENLINEAGE_CONFIG, key from the env."""
    config = tmp_path / "openlineage.yml"
    config.write_text(textwrap.dedent(f"""\
        transport:
          type: http
          url: {url}
          timeout: 2
          retry: {{total: 0}}
          auth: {{type: api_key, apiKey: {API_KEY}}}
        """))
    monkeypatch.setenv("OPENLINEAGE_CONFIG", str(config))


def event(n: int) -> RunEvent:
    return RunEvent(eventType=RunState.COMPLETE, eventTime=f"2026-01-01T00:00:{n:02d}+00:00",
                    run=Run(runId=str(generate_new_uuid())), job=Job(namespace="mesh.test", name=f"job_{n}"),
                    producer="https://mesh.example.com/test")


def test_default_transport_is_a_jsonl_file_under_the_mesh_home(fresh_home, monkeypatch):
    for name in ("OPENLINEAGE_URL", "OPENLINEAGE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(fresh_home.parent)  # no openlineage.yml in the working directory
    sent = [event(i) for i in range(3)]
    delivery = Delivery(configured_transport(), Outbox(fresh_home / "outbox"))
    for e in sent:
        delivery.emit(e)
    lines = (fresh_home / "lineage" / "events.jsonl").read_text().splitlines()
    assert [json.loads(line)["run"]["runId"] for line in lines] == [e.run.runId for e in sent]
    assert not delivery.outbox.pending()


def test_a_failing_endpoint_loses_nothing_and_delivers_in_order_once(tmp_path, monkeypatch, receiver, caplog):
    server = receiver(failures=3)
    http_config(tmp_path, monkeypatch, server.url)
    monkeypatch.setattr(delivery_module, "RETRY_AFTER", 0.0)  # retry on every emission
    delivery = Delivery(configured_transport(), Outbox(tmp_path / "outbox"))
    sent = [event(i) for i in range(6)]
    with caplog.at_level(logging.DEBUG):
        for e in sent:
            delivery.emit(e)
    assert server.requests == 3 + 6  # three refused attempts at the first event, then each event once
    assert server.run_ids() == [e.run.runId for e in sent]
    assert not delivery.outbox.pending()
    assert server.authorization == {f"Bearer {API_KEY}"}
    assert "lineage delivery failed" in caplog.text and API_KEY not in caplog.text


def test_while_paused_events_queue_without_touching_the_endpoint_and_flush_sends_them(tmp_path, monkeypatch, receiver):
    server = receiver(failures=1)
    http_config(tmp_path, monkeypatch, server.url)
    monkeypatch.setattr(delivery_module, "RETRY_AFTER", 3600.0)
    delivery = Delivery(configured_transport(), Outbox(tmp_path / "outbox"))
    sent = [event(i) for i in range(4)]
    for e in sent:
        delivery.emit(e)
    assert server.requests == 1 and len(delivery.outbox.pending()) == 4  # one failed try, then queued
    result = delivery.flush()
    assert (result.delivered, result.pending) == (4, 0)
    assert server.run_ids() == [e.run.runId for e in sent]


def test_the_outbox_survives_a_crash_and_flush_delivers_it(tmp_path, monkeypatch, receiver):
    dead = "http://127.0.0.1:9"  # discard port: nothing listens, the connection is refused
    http_config(tmp_path, monkeypatch, dead)
    crash = textwrap.dedent(f"""
        import os
        from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
        from platform_resources.lineage.delivery import Delivery, configured_transport
        from platform_resources.lineage.outbox import Outbox
        delivery = Delivery(configured_transport(), Outbox(__import__("pathlib").Path({str(tmp_path / "outbox")!r})))
        for n in range(5):
            delivery.emit(RunEvent(eventType=RunState.COMPLETE, eventTime="2026-01-01T00:00:00+00:00",
                                   run=Run(runId=f"0190f5c0-0000-7000-8000-00000000000{{n}}"),
                                   job=Job(namespace="mesh.test", name="crashing"), producer="https://mesh.example.com/t"))
        os._exit(17)  # dies without any cleanup
        """)
    assert subprocess.run([sys.executable, "-c", crash]).returncode == 17
    box = Outbox(tmp_path / "outbox")
    assert len(box.pending()) == 5

    server = receiver()
    http_config(tmp_path, monkeypatch, server.url)
    result = Delivery(configured_transport(), box).flush()
    assert (result.delivered, result.pending) == (5, 0)
    assert server.run_ids() == [f"0190f5c0-0000-7000-8000-00000000000{n}" for n in range(5)]
    assert Delivery(configured_transport(), box).flush().delivered == 0  # nothing is sent twice


def test_mesh_lineage_flush_command_reports_what_waits(fresh_home, monkeypatch):
    monkeypatch.setenv("OPENLINEAGE_URL", "http://127.0.0.1:9")
    box = Outbox(fresh_home / "lineage" / "outbox")
    with box.locked():
        box.append({"eventType": "COMPLETE"})
    mesh = str(__import__("pathlib").Path(sys.executable).parent / "mesh")
    result = subprocess.run([mesh, "lineage", "flush"], capture_output=True, text=True)
    assert result.returncode == 1 and "1 still in the outbox" in result.stdout
