"""The mesh's work done in plain DuckDB, in one process: the baseline of benchmarks/mesh_vs_duckdb.py.

Generates TPC-H with dbgen, writes the source tables the mesh's source-aligned products serve as Parquet,
then runs the TPC-H queries the finance and marketing products answer and writes each result as Parquet.

    python benchmarks/duckdb_baseline.py --scale 0.01 --out /tmp/baseline
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing
from operational_systems.tpch import connect_with_tpch  # noqa: E402  (the tpch extension, loaded offline)

# What the source-aligned ports publish: one table each; nation comes joined with its region, like the
# geography domain's nations port.
SOURCES = {
    "customer": "select * from customer",
    "orders": "select * from orders",
    "lineitem": "select * from lineitem",
    "supplier": "select * from supplier",
    "part": "select * from part",
    "partsupp": "select * from partsupp",
    "nation": "select * from nation join region on n_regionkey = r_regionkey",
}
# The TPC-H queries whose answers the finance and marketing products publish.
QUERIES = (1, 3, 5, 10, 13, 15, 18)


def generate(con, scale: float) -> None:
    con.execute(f"call dbgen(sf={scale})")


def write_parquet(con, select: str, path: Path) -> int:
    con.execute(f"copy ({select}) to '{path}' (format parquet)")
    return con.execute(f"select count(*) from '{path}'").fetchone()[0]


def query_text(con, number: int) -> str:
    text = con.execute("select query from tpch_queries() where query_nr = ?", [number]).fetchone()[0]
    return text.strip().rstrip(";")  # COPY (...) takes a statement without its terminator


def main() -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--scale", type=float, default=0.01)
    args.add_argument("--out", type=Path, required=True, help="folder for the Parquet files")
    options = args.parse_args()
    options.out.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    rows = 0
    with connect_with_tpch() as con:
        generate(con, options.scale)
        for table, select in SOURCES.items():
            rows += write_parquet(con, select, options.out / f"{table}.parquet")
        for number in QUERIES:
            rows += write_parquet(con, query_text(con, number), options.out / f"q{number:02d}.parquet")
    print(f"{len(SOURCES)} tables, {len(QUERIES)} query results, {rows:,} rows, scale {options.scale}, "
          f"{time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
