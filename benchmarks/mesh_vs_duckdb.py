"""Benchmark: a cold `mesh run` against the same work as a plain Dagster + dbt project and as plain DuckDB.

For each TPC-H scale it measures, each command in a fresh folder and under the same wrapper (wall time, the peak
of the process tree's summed RSS, and the largest single process):
  * the mesh: `mesh run --scale S` in a fresh MESH_HOME (operational systems generated, every domain
    materialized through Dagster + dbt + Iceberg);
  * the peer: benchmarks/peer, one Dagster code location over one dbt-duckdb project, run with
    `dagster asset materialize --select '*'` in a fresh DAGSTER_HOME (its dbt manifest parsed beforehand, as CI
    would, and timed apart);
  * plain DuckDB: benchmarks/duckdb_baseline.py, one process;
then prints a table and the targets and writes them, with the machine, as Markdown. Scales measured by an
earlier invocation into the same --out file are kept (so scale 10 can be a run of its own), and so are the
sections of that file this script does not write.

    .venv/bin/python benchmarks/mesh_vs_duckdb.py [--scales 0.01,0.1,1] [--repeat 3] [--out benchmarks/results.md]
    .venv/bin/python benchmarks/mesh_vs_duckdb.py --scales 10

With --repeat N the three commands run N times, one after the other in turn (mesh, peer, DuckDB, mesh, ...), and
each reports its median run: this machine's speed changes by a third within minutes, more than most changes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

REPO_ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MESH = BIN / "mesh"
BASELINE = REPO_ROOT / "benchmarks" / "duckdb_baseline.py"
PEER = REPO_ROOT / "benchmarks" / "peer"
TELEMETRY_OFF = "telemetry:\n  enabled: false\n"

# Runs one command and reports only on it. Two peaks:
#  * tree: every 0.2 s, the RSS summed over the command's processes (its descendants, found through /proc, and
#    anything left in its session); shared pages count once per process, so this errs high;
#  * single: the largest RSS of one of those processes, sampled the same way, or RUSAGE_CHILDREN (in a process that
#    waited for nothing else: the largest RSS of the command or of any descendant it waited for) if larger. The
#    sample is needed for processes nobody waits for, such as the children of `mesh run`'s forkserver.
WRAPPER = r"""
import json, os, resource, subprocess, sys, threading, time
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024

def processes():
    # pid -> (parent pid, session id, RSS KiB), for every process still readable
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = open(f"/proc/{name}/stat").read().rsplit(")", 1)[1].split()
                rss_pages = int(open(f"/proc/{name}/statm").read().split()[1])
            except (OSError, IndexError, ValueError):
                continue  # it ended while we looked
            found[int(name)] = (int(stat[1]), int(stat[3]), rss_pages * PAGE_KIB)
    return found

def tree_kib(root):
    found = processes()
    members = {pid for pid, (_, session, _) in found.items() if session == root}
    children = {}
    for pid, (parent, _, _) in found.items():
        children.setdefault(parent, []).append(pid)
    stack = [root]
    while stack:
        pid = stack.pop()
        members.add(pid)
        stack += children.get(pid, [])
    sizes = [found[pid][2] for pid in members if pid in found]
    return sum(sizes), max(sizes, default=0)

started = time.perf_counter()
child = subprocess.Popen(sys.argv[2:], start_new_session=True)  # its own session, whose id is its pid
peak_tree = peak_one = 0
done = threading.Event()

def sample():
    global peak_tree, peak_one
    while not done.wait(0.2):
        total, largest = tree_kib(child.pid)
        peak_tree, peak_one = max(peak_tree, total), max(peak_one, largest)

sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
code = child.wait()
seconds = time.perf_counter() - started
done.set()
sampler.join()
peak_single = max(peak_one, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)  # KiB on Linux
open(sys.argv[1], "w").write(json.dumps({"returncode": code, "seconds": seconds, "peak_kib": peak_single,
                                         "peak_tree_kib": max(peak_tree, peak_single)}))
"""
MESH_SUMMARY = re.compile(r"^\d+ products, (\d+)/\1 ports published, ")  # every port published
DOMAIN_LINE = re.compile(r"^\s+(\w+)\s+([\d.]+) s  run ")
PEER_SUCCESS = "RUN_SUCCESS"  # the Dagster event that ends a run in which every step succeeded

TARGET_MESH_PER_PEER = 1.0  # at scales 0.01 and 1
TARGET_MESH_PER_DUCKDB = {1.0: 2.0, 10.0: 1.5}
TARGET_MESH_SECONDS_AT_001 = 15.0
TARGET_PEAK_AT_10_MIB = 8e9 / 2**20  # 8 GB, the mesh's process tree


@dataclass
class Measurement:
    command: str  # as a shell line, for the results file
    returncode: int
    seconds: float
    peak_mib: float  # the largest single process
    peak_tree_mib: float  # the process tree, summed
    output: str  # its tail, kept in the results only when the run failed
    problem: str | None = None  # why the run does not count, if it does not
    domain_seconds: dict[str, float] = field(default_factory=dict)
    every_seconds: list[float] = field(default_factory=list)  # each repetition's, when there were several


@dataclass
class Row:
    """One scale: the three runs, the peer's untimed dbt parse, and when and how they were measured."""
    scale: float
    mesh: Measurement
    peer: Measurement
    duckdb: Measurement
    peer_parse: Measurement
    measured: str
    invocation: str

    def runs(self) -> dict[str, Measurement]:
        return {"mesh": self.mesh, "peer dbt parse": self.peer_parse, "peer": self.peer, "DuckDB": self.duckdb}

    @property
    def failed(self) -> list[str]:
        return [name for name, run in self.runs().items() if run.problem]

    @classmethod
    def from_json(cls, data: dict) -> Row:
        runs = {k: Measurement(**data[k]) for k in ("mesh", "peer", "duckdb", "peer_parse")}
        return cls(scale=data["scale"], measured=data["measured"], invocation=data["invocation"], **runs)


def measure(command: list[str], shown_env: dict[str, str], workdir: Path, name: str) -> Measurement:
    """Run `command` under the wrapper, with `shown_env` added to this environment; its output goes to workdir."""
    report = workdir / f"{name}.json"
    output_file = workdir / f"{name}.out"
    env = {**os.environ, "DO_NOT_TRACK": "1", **shown_env}
    with output_file.open("w") as output:
        subprocess.run([sys.executable, "-c", WRAPPER, str(report), *command], env=env, cwd=REPO_ROOT,
                       stdout=output, stderr=subprocess.STDOUT, check=True)
    result = json.loads(report.read_text())
    shown = " ".join(f"{k}={BIN}:$PATH" if k == "PATH" else f"{k}={shlex.quote(v)}" for k, v in shown_env.items())
    return Measurement(command=f"{shown} {shlex.join(command)}".strip(), returncode=result["returncode"],
                       seconds=result["seconds"], peak_mib=result["peak_kib"] / 1024,
                       peak_tree_mib=result["peak_tree_kib"] / 1024, output=output_file.read_text(),
                       problem=f"exit code {result['returncode']}" if result["returncode"] else None)


def dagster_home(folder: Path) -> Path:
    """A fresh Dagster instance with telemetry off (and Dagster's defaults otherwise)."""
    folder.mkdir(parents=True)
    (folder / "dagster.yaml").write_text(TELEMETRY_OFF)
    return folder


def run_mesh(scale: float, workdir: Path) -> Measurement:
    """A cold mesh: an empty MESH_HOME and Dagster instance of its own."""
    home = workdir / "mesh_home"
    (home / "dagster").mkdir(parents=True)  # the mesh writes its dagster.yaml there (telemetry off, runs at once)
    shown_env = {"MESH_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    result = measure([str(MESH), "run", "--scale", str(scale)], shown_env, workdir, "mesh")
    lines = [line for line in result.output.splitlines() if line.strip()]
    if not result.problem and (not lines or not MESH_SUMMARY.match(lines[-1])):
        result.problem = f"unexpected last line: {lines[-1] if lines else '(no output)'}"
    result.domain_seconds = {m[1]: float(m[2]) for m in map(DOMAIN_LINE.match, lines) if m}
    return result


def run_peer(scale: float, workdir: Path) -> tuple[Measurement, Measurement]:
    """The peer's dbt parse (its manifest, built before a deploy; not part of the run), then its cold run."""
    shown_env = {"PEER_OUT": str(workdir / "peer"), "DAGSTER_HOME": str(dagster_home(workdir / "peer_dagster")),
                 "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # dagster-dbt runs `dbt` from PATH
    project = PEER / "dbt"
    parse = measure([str(BIN / "dbt"), "parse", "--project-dir", str(project), "--profiles-dir", str(project)],
                    shown_env, workdir, "peer_parse")
    config = {"ops": {"tpch": {"config": {"scale": scale}}}}
    run = measure([str(BIN / "dagster"), "asset", "materialize", "-m", "definitions", "-d", str(PEER),
                   "--select", "*", "--config-json", json.dumps(config)], shown_env, workdir, "peer")
    if not run.problem and PEER_SUCCESS not in run.output:
        run.problem = f"no {PEER_SUCCESS} in the output"
    return parse, run


def run_duckdb(scale: float, workdir: Path) -> Measurement:
    command = [sys.executable, str(BASELINE), "--scale", str(scale), "--out", str(workdir / "baseline")]
    return measure(command, {}, workdir, "baseline")


def measure_once(scale: float, invocation: str, measured: str) -> Row:
    workdir = Path(tempfile.mkdtemp(prefix=f"mesh_bench_{scale}_"))
    print(f"scale {scale:g}: mesh ...", flush=True)
    mesh = run_mesh(scale, workdir)
    print(f"scale {scale:g}: mesh {mesh.seconds:.1f} s {mesh.problem or 'ok'}; peer ...", flush=True)
    parse, peer = run_peer(scale, workdir)
    print(f"scale {scale:g}: peer {peer.seconds:.1f} s {peer.problem or 'ok'} (dbt parse before it "
          f"{parse.seconds:.1f} s {parse.problem or 'ok'}); DuckDB ...", flush=True)
    base = run_duckdb(scale, workdir)
    print(f"scale {scale:g}: DuckDB {base.seconds:.1f} s {base.problem or 'ok'}", flush=True)
    for line in mesh.output.splitlines():
        if DOMAIN_LINE.match(line):
            print(line)
    row = Row(scale, mesh, peer, base, parse, measured, invocation)
    if row.failed:
        print(f"scale {scale:g}: {', '.join(row.failed)} FAILED, kept {workdir} (homes, logs, outputs)", flush=True)
    else:
        shutil.rmtree(workdir)  # a scale-1 mesh home holds gigabytes
    for run in row.runs().values():
        run.output = run.output[-3000:] if run.problem else ""
    return row


def measure_scale(scale: float, invocation: str, repeat: int) -> Row:
    """The scale measured `repeat` times in turn; each command's median run (a failed one, if any failed)."""
    measured = datetime.now().astimezone().isoformat(timespec="seconds")
    rows = [measure_once(scale, invocation, measured) for _ in range(repeat)]
    if repeat == 1:
        return rows[0]
    chosen = {}
    for kind in ("mesh", "peer", "duckdb", "peer_parse"):
        runs = sorted((getattr(r, kind) for r in rows), key=lambda m: (m.problem is None, m.seconds))
        chosen[kind] = runs[0] if runs[0].problem else runs[len(runs) // 2]
        chosen[kind].every_seconds = [getattr(r, kind).seconds for r in rows]
    return Row(scale=scale, measured=measured, invocation=invocation, **chosen)


def machine() -> str:
    mem_kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())[1])
    return (f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {mem_kib / 1024 ** 2:.1f} GiB RAM, "
            f"Python {platform.python_version()}, DuckDB {duckdb.__version__}, {platform.platform()}")


def ratio(a: Measurement, b: Measurement) -> float:
    return a.seconds / b.seconds


def repetitions(rows: list[Row]) -> list[str]:
    """Each repetition's seconds, for the scales measured more than once."""
    return [f"- scale {row.scale:g}, medians of {len(row.mesh.every_seconds)} runs in turn: "
            + "; ".join(f"{name} " + ", ".join(f"{s:.1f}" for s in run.every_seconds) + " s"
                        for name, run in (("mesh", row.mesh), ("peer", row.peer), ("DuckDB", row.duckdb)))
            for row in rows if len(row.mesh.every_seconds) > 1]


def table(rows: list[Row]) -> list[str]:
    """One Markdown row per scale (the same lines are printed and written). Peaks: tree sum / largest process."""
    lines = ["| scale | mesh s | peer s | DuckDB s | mesh/peer | mesh/DuckDB | peer dbt parse s | "
             "mesh peak MiB | peer peak MiB | DuckDB peak MiB |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        mesh, peer, base = row.mesh, row.peer, row.duckdb
        by_peer = "FAILED" if mesh.problem or peer.problem else f"{ratio(mesh, peer):.2f}"
        by_duckdb = "FAILED" if mesh.problem or base.problem else f"{ratio(mesh, base):.2f}"
        peaks = [f"{m.peak_tree_mib:.0f} / {m.peak_mib:.0f}" for m in (mesh, peer, base)]
        lines.append(f"| {row.scale:g} | {mesh.seconds:.1f} | {peer.seconds:.1f} | {base.seconds:.1f} | {by_peer} | "
                     f"{by_duckdb} | {row.peer_parse.seconds:.1f} | " + " | ".join(peaks) + " |")
    return lines


def domain_table(rows: list[Row]) -> list[str]:
    """Seconds per domain, as `mesh run` prints them: where the mesh's time goes."""
    domains = list(dict.fromkeys(d for row in rows for d in row.mesh.domain_seconds))
    lines = ["| scale | " + " | ".join(domains) + " |", "|---:|" + "---:|" * len(domains)]
    for row in rows:
        cells = [f"{row.mesh.domain_seconds[d]:.1f}" if d in row.mesh.domain_seconds else "-" for d in domains]
        lines.append(f"| {row.scale:g} | " + " | ".join(cells) + " |")
    return lines


def targets(rows: list[Row]) -> list[str]:
    by_scale = {row.scale: row for row in rows}

    def verdict(scale: float, needs: tuple[str, ...], value, limit: float, shown: str = "{:.2f}",
                under: bool = False) -> str:
        """Met when value(row) is at most `limit` (below it, when `under`)."""
        row = by_scale.get(scale)
        if row is None:
            return "not measured"
        failed = [name for name in needs if getattr(row, name).problem]
        if failed:
            return f"not met ({' and '.join(failed)} failed)"
        measured = value(row)
        met = measured < limit if under else measured <= limit
        return f"{'met' if met else 'NOT met'} ({shown.format(measured)})"

    lines = []
    for scale in (0.01, 1.0):
        lines.append(f"- mesh/peer at most {TARGET_MESH_PER_PEER} at scale {scale:g}: "
                     + verdict(scale, ("mesh", "peer"), lambda r: ratio(r.mesh, r.peer), TARGET_MESH_PER_PEER))
    for scale, limit in TARGET_MESH_PER_DUCKDB.items():
        lines.append(f"- mesh/DuckDB at most {limit} at scale {scale:g}: "
                     + verdict(scale, ("mesh", "duckdb"), lambda r: ratio(r.mesh, r.duckdb), limit))
    lines.append(f"- whole mesh at scale 0.01 under {TARGET_MESH_SECONDS_AT_001:.0f} s: "
                 + verdict(0.01, ("mesh",), lambda r: r.mesh.seconds, TARGET_MESH_SECONDS_AT_001, "{:.1f} s",
                           under=True))
    lines.append(f"- mesh peak memory (process tree) at scale 10 within 8 GB ({TARGET_PEAK_AT_10_MIB:.0f} MiB): "
                 + verdict(10.0, ("mesh",), lambda r: r.mesh.peak_tree_mib, TARGET_PEAK_AT_10_MIB, "{:.0f} MiB"))
    return lines


# The headings this script writes; any other section of the --out file is someone's and is kept.
OWN_SECTIONS = ("# Mesh vs", "## Targets", "## Mesh seconds per domain", "## Commands", "## Failures")
ROWS_COMMENT = re.compile(r"<!-- mesh_vs_duckdb rows: (.*?) -->", re.S)


def previous(out: Path) -> tuple[list[Row], list[str]]:
    """The rows an earlier invocation wrote into `out`, and the sections of it this script did not write."""
    if not out.exists():
        return [], []
    text = out.read_text()
    found = ROWS_COMMENT.search(text)
    rows = [Row.from_json(r) for r in json.loads(found[1])] if found else []
    sections = re.split(r"(?m)^(?=#{1,2} )", ROWS_COMMENT.sub("", text))
    return rows, [s.rstrip() for s in sections if s.strip() and not s.startswith(OWN_SECTIONS)]


def report(rows: list[Row], kept_sections: list[str]) -> str:
    commands = [f"- scale {r.scale:g} ({r.measured}, `{r.invocation}`):\n"
                + "\n".join(f"  - {name}: `{run.command}`" for name, run in r.runs().items()) for r in rows]
    failures = [f"- scale {r.scale:g} {name}: {run.problem}\n\n```\n{run.output}\n```"
                for r in rows for name, run in r.runs().items() if run.problem]
    stored = json.dumps([asdict(r) for r in rows]).replace("--", "\\u002d\\u002d")  # no "-->" inside the comment
    return "\n".join([
        "# Mesh vs a plain Dagster + dbt project (the peer) vs plain DuckDB", "",
        f"Machine: {machine()}", "",
        *table(rows), "",
        *(repetitions(rows) + [""] if repetitions(rows) else []),
        "Wall time is measured around each command in a wrapper process. Peaks are *tree sum / largest process*: "
        "the tree sum is the RSS of every process of the command's tree (descendants and its session, from /proc) "
        "added up, sampled every 0.2 s, so pages shared between processes count more than once; the largest process "
        "is the largest RSS of one of them in those samples, or the wrapper's `getrusage(RUSAGE_CHILDREN).ru_maxrss` "
        "(the largest RSS of any process that was waited for) if larger. The peer's dbt parse is run, and timed, before the peer's run and is not part of its seconds.",
        "",
        "## Targets", "", *targets(rows), "",
        "## Mesh seconds per domain (as printed by `mesh run`)", "",
        "`mesh run` runs domains that do not depend on each other two at a time, so these overlap.", "",
        *domain_table(rows), "",
        "## Commands", "",
        "Every command runs in a fresh temporary folder. The mesh gets an empty MESH_HOME and Dagster instance "
        "(operational systems generated, every domain materialized). The peer (benchmarks/peer) is one Dagster code "
        "location: an asset runs dbgen into a DuckDB file, one dbt-duckdb project copies the source tables and "
        "answers the queries as tables, and a post-hook writes every table as Parquet. Plain DuckDB "
        "(benchmarks/duckdb_baseline.py) runs dbgen in memory and writes Parquet with COPY. All three write "
        "customer, orders, lineitem, supplier, part, partsupp and nation joined with region, and the results of "
        "TPC-H queries 1, 3, 5, 10, 13, 15, 18.", "",
        *commands, "",
        *(["## Failures", "", *failures, ""] if failures else []),
        f"<!-- mesh_vs_duckdb rows: {stored} -->", "",
        *(f"{section}\n" for section in kept_sections),
    ])


def main() -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--scales", default="0.01,0.1,1", help="comma-separated TPC-H scales (default 0.01,0.1,1)")
    args.add_argument("--repeat", type=int, default=1, help="runs of each command per scale, in turn (median)")
    args.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results.md")
    options = args.parse_args()
    if options.repeat < 1:
        args.error("--repeat: at least 1")
    invocation = shlex.join([sys.executable, *sys.argv])

    earlier, kept_sections = previous(options.out)
    scales = [float(s) for s in options.scales.split(",")]
    rows = {row.scale: row for row in earlier if row.scale not in scales}
    for scale in scales:
        rows[scale] = measure_scale(scale, invocation, options.repeat)
        # Rewrite the results after every scale, so a later failure keeps the earlier numbers.
        options.out.write_text(report(sorted(rows.values(), key=lambda r: r.scale), kept_sections))

    ordered = sorted(rows.values(), key=lambda r: r.scale)
    print()
    print("\n".join(table(ordered) + repetitions(ordered)))
    print()
    print("\n".join(targets(ordered)))
    print(f"\nwritten to {options.out}")
    return 0 if not any(rows[s].failed for s in scales) else 1


if __name__ == "__main__":
    sys.exit(main())
