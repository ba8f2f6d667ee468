"""Publish cost of one partition against a whole-table republish at scale 1 (issue 12, "Measure").

The data is what sales.orders.orders serves, TPC-H orders from dbgen (1.5 M rows at scale 1), published through
ports.publish to a port with the orders contract, partitioned by day (and by month) on o_orderdate, in a fresh mesh
home per series. Each series times the first publish of every partition, a second whole republish, and publishes of
one partition (that partition's rows only); the baseline, in the same run, is the old behaviour: a whole republish
of the same data to the unpartitioned port. Also times reading one partition back against scanning the whole
table. Prints seconds, ratios to the baselines, rows and file counts, as Markdown tables.

    python benchmarks/partition_publish.py [--scale 1] [--days 1992-06-15,...] [--months 1994-01,...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.compute as pc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
from operational_systems.tpch import connect_with_tpch  # noqa: E402  (the tpch extension, loaded offline)

PORT = "sales.orders.orders"
MANIFEST = ROOT / "mesh_code_locations" / "sales" / "products" / "orders.yaml"
# TPC-H order dates run from 1992-01-01 to 1998-08-02: the partitions cover exactly them.
PARTITIONING = {"day": {"by": "day", "start": "1992-01-01", "end": "1998-08-03"},
                "month": {"by": "month", "start": "1992-01-01", "end": "1998-09-01"}}
DAYS = "1992-06-15,1994-01-10,1995-03-15,1996-11-02,1998-05-20"
MONTHS = "1992-06,1994-01,1995-03,1996-11,1998-05"


def orders(scale: float) -> pa.Table:
    with connect_with_tpch() as con:
        con.execute(f"call dbgen(sf={scale})")
        return con.execute("select * from orders").to_arrow_table()


def orders_port(partitioning: dict | None):
    """The orders port of the sample manifest (its contract and actual time), with this partitioning."""
    from platform_resources.manifest import OutputPort, load_manifest

    declared = next(p for p in load_manifest(MANIFEST).output_ports if p.name == "orders")
    return OutputPort.model_validate({**declared.model_dump(mode="json"), "partitioning": partitioning})


def rows_of(data: pa.Table, window) -> pa.Table:
    column = data.column(window.column)
    return data.filter(pc.and_(pc.greater_equal(column, pa.scalar(window.start, pa.date32())),
                               pc.less(column, pa.scalar(window.end, pa.date32()))))


def timed(work):
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


@dataclass
class Series:
    """One port's measurements, in one fresh mesh home."""

    name: str
    partitions: int = 0
    first: float = 0.0  # the first publish (every partition, or the unpartitioned whole)
    republish: float = 0.0  # a second whole publish of the same data
    one: list[float] = field(default_factory=list)  # publishes of one partition
    one_rows: list[int] = field(default_factory=list)
    scan_whole: list[float] = field(default_factory=list)
    scan_one: list[float] = field(default_factory=list)
    scan_one_rows: list[int] = field(default_factory=list)
    live_files: dict[str, int] = field(default_factory=dict)  # data files the served version reads, after each step
    folder_files: dict[str, int] = field(default_factory=dict)  # every file under the table folder, after each step
    total_rows: int = 0  # what the port serves at the end


def count_files(series: Series, step: str) -> None:
    from platform_resources import ports

    table = ports.catalog().load_table(ports.table_identifier(PORT))
    series.live_files[step] = len(list(table.scan().plan_files()))
    folder = Path(urlparse(ports.default_location(PORT)).path)
    series.folder_files[step] = sum(1 for f in folder.rglob("*") if f.is_file())


def measure(name: str, data: pa.Table, partitioning: dict | None, texts: list[str]) -> Series:
    """Publish whole twice, then one partition per text (none when unpartitioned), then read back."""
    from platform_resources import ports
    from platform_resources.partitions import all_keys, window_of_keys, window_of_text

    series = Series(name)
    with tempfile.TemporaryDirectory(prefix="mesh_partition_publish_") as home:
        os.environ["MESH_HOME"] = home  # ports.catalog() is cached per home: each series gets its own catalog
        port = orders_port(partitioning)
        every = window_of_keys(port, keys := all_keys(port.partitioning)) if partitioning else None
        series.partitions = len(keys) if partitioning else 1
        series.first, _ = timed(lambda: ports.publish(PORT, data, window=every))
        count_files(series, "first")
        series.republish, _ = timed(lambda: ports.publish(PORT, data, window=every))
        count_files(series, "republish")
        windows = [window_of_text(port, text) for text in texts] if partitioning else []
        for window in windows:
            part = rows_of(data, window)
            seconds, result = timed(lambda: ports.publish(PORT, part, window=window))
            assert result.rows == part.num_rows and result.total_rows == data.num_rows, (window.label, result)
            series.one.append(seconds)
            series.one_rows.append(part.num_rows)
        if windows:
            count_files(series, "partitions")
        version = ports.resolve_version(PORT)
        for _ in range(3):
            seconds, whole = timed(lambda: ports.scan_version(PORT, version))
            series.scan_whole.append(seconds)
        series.total_rows = whole.num_rows
        # An unpartitioned port reads one day by filtering the whole table: the same windows, of the day port.
        reads = windows or [window_of_text(orders_port(PARTITIONING["day"]), text) for text in texts]
        for window in reads:
            seconds, part = timed(lambda: ports.scan_version(PORT, version, window=window))
            assert part.num_rows == rows_of(data, window).num_rows, window.label
            series.scan_one.append(seconds)
            series.scan_one_rows.append(part.num_rows)
    return series


def report(series: list[Series], base: Series) -> None:
    print("| port | partitions | first publish s | whole republish s | whole republish / unpartitioned | "
          "one partition s (median, min-max) | rows per partition | one partition / whole republish | "
          "one partition / unpartitioned republish |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in series:
        if s.one:
            median = statistics.median(s.one)
            one = f"{median:.3f} ({min(s.one):.3f}-{max(s.one):.3f})"
            rows = f"{min(s.one_rows):,}-{max(s.one_rows):,}"
            ratios = f"{median / s.republish:.4f} | {median / base.republish:.4f}"
        else:
            one, rows, ratios = "-", "-", "- | -"
        print(f"| {s.name} | {s.partitions:,} | {s.first:.2f} | {s.republish:.2f} | {s.republish / base.republish:.2f} "
              f"| {one} | {rows} | {ratios} |")
    print("\n| port | data files served | files in table folder (after first, republish, partition publishes) | "
          "rows served |")
    print("|---|---:|---|---:|")
    for s in series:
        steps = ", ".join(str(n) for n in s.folder_files.values())
        print(f"| {s.name} | {s.live_files['first']:,} | {steps} | {s.total_rows:,} |")
    print("\n| port | scan whole s (median of 3) | scan one partition s (median, min-max) | rows | "
          "one partition / whole scan | one partition / unpartitioned whole scan |")
    print("|---|---:|---:|---:|---:|---:|")
    for s in series:
        whole, one = statistics.median(s.scan_whole), statistics.median(s.scan_one)
        print(f"| {s.name} | {whole:.3f} | {one:.3f} ({min(s.scan_one):.3f}-{max(s.scan_one):.3f}) | "
              f"{min(s.scan_one_rows):,}-{max(s.scan_one_rows):,} | {one / whole:.4f} | "
              f"{one / statistics.median(base.scan_whole):.4f} |")


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--scale", type=float, default=1.0)
    args.add_argument("--days", default=DAYS, help="the daily partitions published one at a time, comma-separated")
    args.add_argument("--months", default=MONTHS, help="the monthly ones; empty: no monthly series")
    options = args.parse_args()
    started, data = timed(lambda: orders(options.scale))
    print(f"{PORT} at scale {options.scale}: {data.num_rows:,} rows (dbgen {started:.1f} s), "
          f"{date.today().isoformat()}\n")
    days = [d for d in options.days.split(",") if d]
    base = measure("unpartitioned (baseline)", data, None, days)
    series = [base, measure("by day", data, PARTITIONING["day"], days)]
    if months := [m for m in options.months.split(",") if m]:
        series.append(measure("by month", data, PARTITIONING["month"], months))
    report(series, base)


if __name__ == "__main__":
    main()
