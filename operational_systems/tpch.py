"""The sample mesh's operational systems, generated with DuckDB's TPC-H dbgen.

Each system is its own DuckDB file, as a CRM, an order system, a supply system and a reference-data
service would be separate databases in a real company.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import duckdb_extension_tpch

SYSTEMS: dict[str, list[str]] = {
    "crm_db": ["customer"],
    "order_db": ["orders", "lineitem"],
    "supply_db": ["supplier", "part", "partsupp"],
    "reference_db": ["nation", "region"],
}
MARKER = "generated.json"
# dbgen builds every table in memory: 17 GB at scale 10. Within this limit DuckDB spills to the temporary folder
# instead (about 1.5 GB at scale 3, for a few per cent more time).
GENERATION_MEMORY = "1GB"


def tpch_extension() -> Path:
    """The tpch extension shipped by the duckdb-extension-tpch package (it cannot be downloaded here)."""
    return next(Path(duckdb_extension_tpch.__file__).parent.glob("extensions/*/tpch.duckdb_extension"))


def connect_with_tpch(database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(database)
    con.execute(f"load '{tpch_extension()}'")
    return con


def generated_scale(folder: Path) -> float | None:
    marker = folder / MARKER
    return json.loads(marker.read_text())["scale"] if marker.exists() else None


def generate(folder: Path, scale: float) -> None:
    """Write one DuckDB file per operational system holding its TPC-H tables at `scale`."""
    folder.mkdir(parents=True, exist_ok=True)
    with connect_with_tpch() as con:
        con.execute(f"set memory_limit = '{GENERATION_MEMORY}'")
        con.execute(f"set temp_directory = '{folder / 'generating.tmp'}'")
        con.execute(f"call dbgen(sf={scale})")
        for system, tables in SYSTEMS.items():
            target = folder / f"{system}.duckdb"
            staging = folder / f"{system}.duckdb.tmp"
            staging.unlink(missing_ok=True)
            con.execute(f"attach '{staging}' as {system}")
            for table in tables:
                con.execute(f"create table {system}.{table} as select * from main.{table}")
            con.execute(f"detach {system}")
            os.replace(staging, target)  # readers never see a half-written system
    (folder / MARKER).write_text(json.dumps({"scale": scale}))


def ensure(folder: Path, scale: float) -> bool:
    """Generate the systems unless they already exist at this scale. Returns True when it generated."""
    if generated_scale(folder) == scale and all((folder / f"{s}.duckdb").exists() for s in SYSTEMS):
        return False
    generate(folder, scale)
    return True
