"""Storage a port keeps after 10 publishes, with and without retention (issue 12, "Measure").

One sample port's data, TPC-H orders at scale 0.1 from dbgen (what sales.orders.orders serves, 150,000 rows), is
published 10 times through ports.publish, the way every run republishes a port whole, into a fresh mesh home per
case. Prints the bytes and files of the table's folder (data, manifests, metadata) per case and the ratio to keeping
every version, as a Markdown table.

    python benchmarks/retention_storage.py [--scale 0.1] [--publishes 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing
from operational_systems.tpch import connect_with_tpch  # noqa: E402  (the tpch extension, loaded offline)

PORT = "sales.orders.orders"
CASES = {"none (keep every version)": None, "versions: 3": {"versions": 3}, "versions: 1": {"versions": 1},
         "keep: 90d": {"keep": "90d"}}


def orders(scale: float):
    with connect_with_tpch() as con:
        con.execute(f"call dbgen(sf={scale})")
        return con.execute("select * from orders").to_arrow_table()


def folder_size(folder: Path) -> tuple[int, int]:
    files = [f for f in folder.rglob("*") if f.is_file()]
    return sum(f.stat().st_size for f in files), len(files)


def measure(data, retention: dict | None, publishes: int) -> tuple[int, int, int]:
    """Bytes and files of the port's table folder, and the versions retained, after `publishes` publishes."""
    from platform_resources import ports
    from platform_resources.manifest import Retention

    with tempfile.TemporaryDirectory(prefix="mesh_retention_") as home:
        os.environ["MESH_HOME"] = home  # ports.catalog() is cached per home: each case gets its own catalog
        kept = Retention(**retention) if retention else None
        for _ in range(publishes):
            ports.publish(PORT, data, retention=kept)
        size, files = folder_size(Path(urlparse(ports.default_location(PORT)).path))
        return size, files, len(ports.versions(PORT))


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--scale", type=float, default=0.1)
    args.add_argument("--publishes", type=int, default=10)
    options = args.parse_args()
    data = orders(options.scale)
    print(f"{PORT} at scale {options.scale}: {data.num_rows:,} rows, published {options.publishes} times\n")
    print("| retention | versions kept | table folder MiB | files | storage / without retention |")
    print("|---|---:|---:|---:|---:|")
    baseline = None
    for name, retention in CASES.items():
        size, files, versions = measure(data, retention, options.publishes)
        baseline = baseline or size
        print(f"| {name} | {versions} | {size / 2**20:.1f} | {files} | {size / baseline:.2f} |")


if __name__ == "__main__":
    main()
