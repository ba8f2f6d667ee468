"""Lineage delivery over real HTTP on 127.0.0.1: nothing lost, in order, no duplicates, no leaked key; a poisoned
or read-only outbox never blocks delivery or fails emission."""

import json
import logging
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pathlib import Path

import pytest
from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
from openlineage.client.serde import Serde
from openlineage.client.uuid import generate_new_uuid

from platform_resources.lineage import delivery as delivery_module
from platform_resources.lineage.delivery import Delivery, configured_transport, event_key
from platform_resources.lineage.outbox import Outbox
from platform_resources.lineage.runs import DagsterRun, JobRun, register_dataset
from openlineage_spec import NEEDS_SPEC, validate_event
from unwritable import unwritable

API_KEY = "mesh-test-secret-key-42"


class Receiver:
    """An OpenLineage HTTP endpoint that answers 500 to its first `failures` requests, then accepts.

    `refuse` answers a given status to the events it names (job name -> status); `hang` holds the answer to the
    first request that long, after taking the event (a receiver that stores, then stalls)."""

    def __init__(self, failures: int = 0, refuse: dict[str, int] | None = None, hang: float = 0.0):
        self.failures = failures
        self.refuse = refuse or {}
        self.hang = hang
        self.requests = 0
        self.received: list[dict] = []
        self.authorization: set[str] = set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests += 1
                receiver.authorization.add(self.headers.get("Authorization", ""))
                name = (json.loads(body).get("job") or {}).get("name")
                if receiver.requests <= receiver.failures:
                    self.send_response(500)
                elif name in receiver.refuse:
                    self.send_response(receiver.refuse[name])
                    self.end_headers()
                    self.wfile.write(b'{"error": "job name not allowed"}')
                    return
                else:
                    receiver.received.append(json.loads(body))
                    if receiver.requests == 1 and receiver.hang:
                        time.sleep(receiver.hang)
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

    def start(failures: int = 0, **behaviour) -> Receiver:
        servers.append(Receiver(failures, **behaviour))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def http_config(tmp_path, monkeypatch, url: str, timeout: float = 2) -> None:
    """Standard OpenLineage configuration: an openlineage.yml named by OPENLINEAGE_CONFIG, key from the env."""
    config = tmp_path / "openlineage.yml"
    config.write_text(textwrap.dedent(f"""\
        transport:
          type: http
          url: {url}
          timeout: {timeout}
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


# --- a poisoned outbox: what cannot be sent or parsed is quarantined, the rest goes on in order ---------------

def sent_names(server: Receiver) -> list[str]:
    return [e["job"]["name"] for e in server.received]


def test_an_event_the_endpoint_refuses_is_quarantined_and_the_rest_are_delivered_in_order(
        tmp_path, monkeypatch, receiver, caplog):
    server = receiver(refuse={"job_1": 400})
    http_config(tmp_path, monkeypatch, server.url)
    box = Outbox(tmp_path / "outbox")
    delivery = Delivery(configured_transport(), box)
    with caplog.at_level(logging.WARNING):
        for n in range(4):
            delivery.emit(event(n))
    assert sent_names(server) == ["job_0", "job_2", "job_3"]
    assert not box.pending()
    kept = sorted(box.quarantine_folder.glob("*.json"))
    assert [json.loads(p.read_text())["job"]["name"] for p in kept] == ["job_1"]
    note = kept[0].with_suffix(".reason.txt").read_text()
    assert "400" in note and "job name not allowed" in note  # why, in the endpoint's own words
    assert str(box.quarantine_folder) in caplog.text  # the user is told where it is kept


@pytest.mark.parametrize("status", [429, 401, 503])
def test_an_answer_about_the_endpoint_not_the_event_keeps_the_event_for_a_retry(tmp_path, monkeypatch, receiver,
                                                                                 status):
    server = receiver(refuse={"job_0": status})
    http_config(tmp_path, monkeypatch, server.url)
    monkeypatch.setattr(delivery_module, "RETRY_AFTER", 3600.0)
    box = Outbox(tmp_path / "outbox")
    delivery = Delivery(configured_transport(), box)
    for n in range(3):
        delivery.emit(event(n))
    assert server.received == [] and len(box.pending()) == 3  # in order: nothing overtakes the refused event
    assert not box.quarantine_folder.exists()


def test_a_truncated_event_file_is_quarantined_as_it_was_and_the_others_are_delivered(tmp_path, monkeypatch,
                                                                                      receiver, caplog):
    box = Outbox(tmp_path / "outbox")
    with box.locked():
        paths = [box.append(json.loads(Serde.to_json(event(n)))) for n in range(3)]
    cut = paths[1].read_bytes()[:40]
    paths[1].write_bytes(cut)
    server = receiver()
    http_config(tmp_path, monkeypatch, server.url)
    with caplog.at_level(logging.WARNING):
        result = Delivery(configured_transport(), box).flush()
    assert (result.delivered, result.pending, result.quarantined) == (2, 0, 1)
    assert sent_names(server) == ["job_0", "job_2"]
    assert (box.quarantine_folder / paths[1].name).read_bytes() == cut
    assert "cannot be parsed" in caplog.text and str(box.quarantine_folder) in caplog.text


def test_files_the_outbox_did_not_write_are_left_alone_and_never_sent(tmp_path, monkeypatch, receiver):
    box = Outbox(tmp_path / "outbox")
    box.folder.mkdir()
    strays = {"notes.json": '{"todo": "ask about marquez"}', "README": "hands off", "1.json": "{}",
              "00000000000000000001.json.bak": "{}"}
    for name, text in strays.items():
        (box.folder / name).write_text(text)
    server = receiver()
    http_config(tmp_path, monkeypatch, server.url)
    delivery = Delivery(configured_transport(), box)
    for n in range(3):
        delivery.emit(event(n))
    assert sent_names(server) == ["job_0", "job_1", "job_2"]
    assert {name: (box.folder / name).read_text() for name in strays} == strays
    assert not box.quarantine_folder.exists()


# --- a read-only outbox: emission never fails, and what cannot be queued is reported -------------------------

def test_a_read_only_outbox_never_fails_emission_and_each_unqueued_event_is_reported(tmp_path, monkeypatch,
                                                                                      receiver, caplog):
    box = Outbox(tmp_path / "outbox")
    box.folder.mkdir()
    server = receiver()
    http_config(tmp_path, monkeypatch, server.url)
    delivery = Delivery(configured_transport(), box)
    with unwritable(box.folder), caplog.at_level(logging.WARNING):
        for n in range(3):
            delivery.emit(event(n))  # raises nothing
        flushed = delivery.flush()
    assert sent_names(server) == ["job_0", "job_1", "job_2"]  # sent directly while the outbox cannot hold them
    warnings = [r.getMessage() for r in caplog.records if "could not be queued" in r.getMessage()]
    assert len(warnings) == 3 and all(str(box.folder) in w and "sent directly" in w for w in warnings)
    assert flushed.error and str(box.folder) in flushed.error


def test_a_read_only_outbox_and_a_dead_endpoint_report_every_lost_event(tmp_path, monkeypatch, caplog):
    http_config(tmp_path, monkeypatch, "http://127.0.0.1:9")  # nothing listens
    monkeypatch.setattr(delivery_module, "RETRY_AFTER", 3600.0)
    box = Outbox(tmp_path / "outbox")
    box.folder.mkdir()
    delivery = Delivery(configured_transport(), box)
    with unwritable(box.folder), caplog.at_level(logging.WARNING):
        for n in range(3):
            delivery.emit(event(n))
    lost = [r.getMessage() for r in caplog.records if "the event is lost" in r.getMessage()]
    assert len(lost) == 3 and all(str(box.folder) in m and f"job_{n}" in m for n, m in enumerate(lost))


def mesh(*args: str) -> subprocess.CompletedProcess:
    command = str(Path(sys.executable).parent / "mesh")
    return subprocess.run([command, *args], capture_output=True, text=True)


def test_mesh_register_with_a_read_only_outbox_succeeds_and_names_the_outbox(fresh_home, monkeypatch, receiver):
    server = receiver()
    monkeypatch.setenv("OPENLINEAGE_URL", server.url)
    box = Outbox(fresh_home / "lineage" / "outbox")
    box.folder.mkdir(parents=True)
    with unwritable(box.folder):
        result = mesh("register")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert str(box.folder) in result.stderr and "could not be queued" in result.stderr
    assert len(server.received) > 0 and all(e.get("dataset") for e in server.received)  # the ports, sent directly


def test_mesh_register_honours_the_pause_and_flush_sends_what_waits(fresh_home, monkeypatch, receiver):
    server = receiver()
    monkeypatch.setenv("OPENLINEAGE_URL", server.url)
    box = Outbox(fresh_home / "lineage" / "outbox")
    with box.locked():
        box.pause(time.time() + 3600)  # as a failed send in another process left it
    result = mesh("register")
    assert result.returncode == 0, result.stderr
    assert server.requests == 0 and "paused" in result.stdout
    waiting = len(box.pending())
    assert waiting > 0
    flushed = mesh("lineage", "flush")
    assert flushed.returncode == 0 and len(server.received) == waiting and not box.pending()


# --- at-least-once with a stable key ---------------------------------------------------------------------------

def test_an_event_resent_after_a_hang_carries_the_same_key_so_the_receiver_can_drop_it(tmp_path, monkeypatch,
                                                                                       receiver):
    server = receiver(hang=1.5)  # takes the first event, then answers after the client gave up
    http_config(tmp_path, monkeypatch, server.url, timeout=0.5)
    monkeypatch.setattr(delivery_module, "RETRY_AFTER", 0.0)
    delivery = Delivery(configured_transport(), Outbox(tmp_path / "outbox"))
    sent = [event(n) for n in range(3)]
    for e in sent:
        delivery.emit(e)
    keys = [event_key(e) for e in server.received]
    assert len(keys) == 4 and keys[0] == keys[1] and server.received[0] == server.received[1]  # delivered twice
    unique = list(dict.fromkeys(keys))
    assert unique == [event_key(json.loads(Serde.to_json(e))) for e in sent]  # the key sees the duplicate only


@NEEDS_SPEC
def test_every_event_of_a_job_run_has_its_own_key_and_stays_valid(fresh_home, monkeypatch, receiver):
    server = receiver()
    monkeypatch.setenv("OPENLINEAGE_URL", server.url)
    for name in ("OPENLINEAGE_CONFIG",):
        monkeypatch.delenv(name, raising=False)
    run = JobRun(DagsterRun("shop", "publish", str(generate_new_uuid())), "orders.lines", {}, "shop.orders")
    run.start()
    run.complete()
    run2 = JobRun(run.dagster_run, "orders.lines", {}, "shop.orders")
    run2.start(when="2026-01-01T00:00:00+00:00")
    run2.fail("boom", when="2026-01-01T00:00:00+00:00")  # same time, other type: still another event
    register_dataset("file", "/warehouse/shop/orders/lines", {})
    assert len(server.received) == 5
    assert len({event_key(e) for e in server.received}) == 5
    assert all(validate_event(e) == [] for e in server.received)


def test_mesh_lineage_flush_says_what_it_quarantined_and_where(fresh_home, monkeypatch, receiver):
    server = receiver()
    monkeypatch.setenv("OPENLINEAGE_URL", server.url)
    box = Outbox(fresh_home / "lineage" / "outbox")
    with box.locked():
        box.append(json.loads(Serde.to_json(event(0))))
        box.append(json.loads(Serde.to_json(event(1)))).write_text('{"eventType": "COMPL')  # cut short
    result = mesh("lineage", "flush")
    assert result.returncode == 0, result.stderr
    assert "delivered 1 lineage events; 0 still in the outbox; 1 quarantined in" in result.stdout
    assert str(box.quarantine_folder) in result.stdout and sent_names(server) == ["job_0"]
