"""Benchmark: a cold `mesh run` against the same work in plain DuckDB, at several TPC-H scales.

For each scale it measures, in a subprocess each, the wall time and peak RSS of
  * the mesh: `mesh run --scale S` in a fresh MESH_HOME (operational systems generated, every domain
    materialized through Dagster + dbt + Iceberg), and
  * the baseline: benchmarks/duckdb_baseline.py (dbgen, source tables and TPC-H query results to Parquet),
then prints a table and writes it, with the machine and the targets, as Markdown.

    .venv/bin/python benchmarks/mesh_vs_duckdb.py [--scales 0.01,0.1,1] [--out benchmarks/results.md]
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
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

REPO_ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MESH = BIN / "mesh"
BASELINE = REPO_ROOT / "benchmarks" / "duckdb_baseline.py"

# Runs one command and reports only on it: RUSAGE_CHILDREN in a process that waited for nothing else is that
# command's own peak (the max RSS of it or of any descendant it waited for). In this script's process it
# would be the max over every command run so far.
WRAPPER = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
code = subprocess.call(sys.argv[2:])
seconds = time.perf_counter() - started
peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
open(sys.argv[1], "w").write(json.dumps({"returncode": code, "seconds": seconds, "peak_kib": peak_kib}))
"""
MESH_SUMMARY = re.compile(r"^\d+ products, (\d+)/\1 ports published, ")  # every port published
DOMAIN_LINE = re.compile(r"^\s+(\w+)\s+([\d.]+) s  run ")
TARGET_RATIO_AT_1 = 2.0
TARGET_MESH_SECONDS_AT_001 = 60.0


@dataclass
class Measurement:
    command: str  # as a shell line, for the results file
    returncode: int
    seconds: float
    peak_mib: float
    output: str
    problem: str | None = None  # why the run does not count, if it does not
    domain_seconds: dict[str, float] = field(default_factory=dict)


def measure(command: list[str], env: dict[str, str], shown_env: dict[str, str], workdir: Path, name: str) -> Measurement:
    """Run `command` under the wrapper; its stdout and stderr go to workdir/<name>.out."""
    report = workdir / f"{name}.json"
    output_file = workdir / f"{name}.out"
    with output_file.open("w") as output:
        subprocess.run([sys.executable, "-c", WRAPPER, str(report), *command], env=env, cwd=REPO_ROOT,
                       stdout=output, stderr=subprocess.STDOUT, check=True)
    result = json.loads(report.read_text())
    shown = " ".join(f"{k}={shlex.quote(v)}" for k, v in shown_env.items())
    return Measurement(command=f"{shown} {shlex.join(command)}".strip(), returncode=result["returncode"],
                       seconds=result["seconds"], peak_mib=result["peak_kib"] / 1024, output=output_file.read_text())


def run_mesh(scale: float, workdir: Path) -> Measurement:
    """A cold mesh: an empty MESH_HOME and Dagster instance of its own."""
    home = workdir / "mesh_home"
    (home / "dagster").mkdir(parents=True)
    shown_env = {"MESH_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    result = measure([str(MESH), "run", "--scale", str(scale)], {**os.environ, **shown_env}, shown_env, workdir, "mesh")
    lines = [line for line in result.output.splitlines() if line.strip()]
    if result.returncode != 0:
        result.problem = f"exit code {result.returncode}"
    elif not lines or not MESH_SUMMARY.match(lines[-1]):
        result.problem = f"unexpected last line: {lines[-1] if lines else '(no output)'}"
    result.domain_seconds = {m[1]: float(m[2]) for m in map(DOMAIN_LINE.match, lines) if m}
    return result


def run_baseline(scale: float, workdir: Path) -> Measurement:
    command = [sys.executable, str(BASELINE), "--scale", str(scale), "--out", str(workdir / "baseline")]
    result = measure(command, dict(os.environ), {}, workdir, "baseline")
    if result.returncode != 0:
        result.problem = f"exit code {result.returncode}"
    return result


def machine() -> str:
    mem_kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())[1])
    return (f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {mem_kib / 1024 ** 2:.1f} GiB RAM, "
            f"Python {platform.python_version()}, DuckDB {duckdb.__version__}, {platform.platform()}")


def table(rows: dict[float, tuple[Measurement, Measurement]]) -> list[str]:
    """One Markdown row per scale (the same lines are printed and written)."""
    lines = ["| scale | mesh s | baseline s | mesh/baseline | mesh peak MiB | baseline peak MiB | memory ratio |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for scale, (mesh, base) in rows.items():
        if mesh.problem or base.problem:
            failed = "mesh" if mesh.problem else "baseline"
            lines.append(f"| {scale:g} | {mesh.seconds:.1f} | {base.seconds:.1f} | {failed} FAILED | "
                         f"{mesh.peak_mib:.0f} | {base.peak_mib:.0f} | - |")
            continue
        lines.append(f"| {scale:g} | {mesh.seconds:.1f} | {base.seconds:.1f} | {mesh.seconds / base.seconds:.1f} | "
                     f"{mesh.peak_mib:.0f} | {base.peak_mib:.0f} | {mesh.peak_mib / base.peak_mib:.1f} |")
    return lines


def domain_table(rows: dict[float, tuple[Measurement, Measurement]]) -> list[str]:
    """Seconds per domain, as `mesh run` prints them: where the mesh's time goes."""
    domains = list(dict.fromkeys(d for mesh, _ in rows.values() for d in mesh.domain_seconds))
    lines = ["| scale | " + " | ".join(domains) + " |", "|---:|" + "---:|" * len(domains)]
    for scale, (mesh, _) in rows.items():
        cells = [f"{mesh.domain_seconds[d]:.1f}" if d in mesh.domain_seconds else "-" for d in domains]
        lines.append(f"| {scale:g} | " + " | ".join(cells) + " |")
    return lines


def targets(rows: dict[float, tuple[Measurement, Measurement]]) -> list[str]:
    def verdict(scale: float, check) -> str:
        if scale not in rows:
            return "not measured"
        mesh, base = rows[scale]
        if mesh.problem or base.problem:
            return "not met (a run failed)"
        value, met = check(mesh, base)
        return f"{'met' if met else 'NOT met'} ({value})"

    ratio = verdict(1.0, lambda m, b: (f"{m.seconds / b.seconds:.2f}", m.seconds / b.seconds <= TARGET_RATIO_AT_1))
    cold = verdict(0.01, lambda m, b: (f"{m.seconds:.1f} s", m.seconds < TARGET_MESH_SECONDS_AT_001))
    return [f"- mesh/baseline wall time at most {TARGET_RATIO_AT_1} at scale 1: {ratio}",
            f"- whole mesh at scale 0.01 under {TARGET_MESH_SECONDS_AT_001:.0f} s on this machine: {cold}"]


def report(rows: dict[float, tuple[Measurement, Measurement]], invocation: str) -> str:
    commands = [f"- scale {s:g}:\n  - mesh: `{m.command}`\n  - baseline: `{b.command}`" for s, (m, b) in rows.items()]
    failures = [f"- scale {s:g} {name}: {r.problem}\n\n```\n{r.output[-3000:]}\n```"
                for s, pair in rows.items() for name, r in zip(("mesh", "baseline"), pair) if r.problem]
    return "\n".join([
        "# Mesh vs plain DuckDB", "",
        f"Date: {datetime.now().astimezone().isoformat(timespec='seconds')}  ",
        f"Machine: {machine()}  ",
        f"Invocation: `{invocation}`", "",
        *table(rows), "",
        "Wall time is measured around each command in a wrapper process. Peak RSS is the wrapper's "
        "`getrusage(RUSAGE_CHILDREN).ru_maxrss`: the largest RSS of any *single* process of the command's tree that "
        "was waited for (the mesh process, a worker process, or a `dbt` subprocess), not the sum of the tree at one "
        "moment.", "",
        "## Targets", "", *targets(rows), "",
        "## Mesh seconds per domain (as printed by `mesh run`)", "",
        "`mesh run` runs domains that do not depend on each other two at a time, so these overlap.", "",
        *domain_table(rows), "",
        "## Commands", "",
        "Each mesh run gets a fresh temporary MESH_HOME (operational systems generated, every domain materialized); "
        "the baseline generates TPC-H in memory with dbgen, writes customer, orders, lineitem, supplier, part, "
        "partsupp and nation joined with region as Parquet, and writes the results of TPC-H queries "
        "1, 3, 5, 10, 13, 15, 18 (text from DuckDB's `tpch_queries()`) as Parquet.", "",
        *commands, "",
        *(["## Failures", "", *failures, ""] if failures else []),
    ])


def main() -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--scales", default="0.01,0.1,1", help="comma-separated TPC-H scales (default 0.01,0.1,1)")
    args.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results.md")
    options = args.parse_args()
    invocation = shlex.join([sys.executable, *sys.argv])

    rows: dict[float, tuple[Measurement, Measurement]] = {}
    for scale in (float(s) for s in options.scales.split(",")):
        workdir = Path(tempfile.mkdtemp(prefix=f"mesh_bench_{scale}_"))
        print(f"scale {scale}: mesh ...", flush=True)
        mesh = run_mesh(scale, workdir)
        print(f"scale {scale}: mesh {mesh.seconds:.1f} s {mesh.problem or 'ok'}; baseline ...", flush=True)
        base = run_baseline(scale, workdir)
        rows[scale] = (mesh, base)
        print(f"scale {scale}: baseline {base.seconds:.1f} s {base.problem or 'ok'}", flush=True)
        for line in mesh.output.splitlines():
            if DOMAIN_LINE.match(line):
                print(line)
        if mesh.problem or base.problem:
            print(f"scale {scale}: FAILED, kept {workdir} (mesh home, logs, outputs)", flush=True)
        else:
            shutil.rmtree(workdir)  # a scale-1 mesh home holds gigabytes
        # Rewrite the results after every scale, so a later failure keeps the earlier numbers.
        options.out.write_text(report(rows, invocation))

    print()
    print("\n".join(table(rows)))
    print()
    print("\n".join(targets(rows)))
    print(f"\nwritten to {options.out}")
    return 0 if all(not m.problem and not b.problem for m, b in rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
