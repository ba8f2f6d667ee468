"""Benchmark: what lineage emission adds to a mesh run, with the endpoint healthy, refusing, or hanging.

Runs `mesh run --scale 0.01` in a fresh mesh home per case and prints wall time, lineage events emitted and
events left in the outbox. The cases, all in this one run so they compare on the same machine state:
  noop      OPENLINEAGE_DISABLED=true: events still pass the outbox, the transport drops them (the baseline)
  file      the default: JSON lines under the mesh home
  http-ok   OPENLINEAGE_URL to a local receiver that accepts every event
  refused   OPENLINEAGE_URL to a closed port: every send fails at once
  hanging   OPENLINEAGE_URL to a socket that accepts connections and never answers: sends time out (5 s)

    .venv/bin/python benchmarks/lineage_overhead.py
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MESH = Path(sys.executable).parent / "mesh"


class Accepting(BaseHTTPRequestHandler):
    received = 0

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        Accepting.received += 1
        self.send_response(201)
        self.end_headers()

    def log_message(self, *args):
        pass


def mesh_run(env: dict[str, str]) -> tuple[float, int, int]:
    """(seconds, events emitted, events left in the outbox) of one cold `mesh run`."""
    home = Path(tempfile.mkdtemp(prefix="lineage_bench_"))
    env = {**os.environ, "MESH_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), **env}
    started = time.perf_counter()
    result = subprocess.run([str(MESH), "run"], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"mesh run failed in {home}:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    events_file = home / "lineage" / "events.jsonl"
    written = len(events_file.read_text().splitlines()) if events_file.exists() else 0
    left = len(list((home / "lineage" / "outbox").glob("*.json")))
    return seconds, written, left


def main() -> None:
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Accepting)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    hanging = socket.socket()
    hanging.bind(("127.0.0.1", 0))
    hanging.listen(1024)  # the kernel completes handshakes; nobody ever reads or answers
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
    cases = {
        "noop": {"OPENLINEAGE_DISABLED": "true"},
        "file": {},
        "http-ok": {"OPENLINEAGE_URL": f"http://127.0.0.1:{receiver.server_address[1]}"},
        "refused": {"OPENLINEAGE_URL": f"http://127.0.0.1:{closed.getsockname()[1]}"},
        "hanging": {"OPENLINEAGE_URL": f"http://127.0.0.1:{hanging.getsockname()[1]}"},
    }
    results = {}
    for name, env in cases.items():
        before = Accepting.received
        seconds, written, left = mesh_run(env)
        results[name] = {"seconds": round(seconds, 1), "events_in_file": written,
                         "events_received_over_http": Accepting.received - before, "left_in_outbox": left}
        print(f"{name:<8} {seconds:6.1f} s  {json.dumps(results[name])}", flush=True)
    base = results["noop"]["seconds"]
    print("\nadded to a mesh run at scale 0.01, against noop:")
    for name, result in results.items():
        print(f"  {name:<8} {result['seconds'] - base:+6.1f} s  ({result['seconds'] / base:.2f}x)")


if __name__ == "__main__":
    main()
