"""The sample mesh's operational systems, generated with DuckDB's TPC-H dbgen.

Each system is its own DuckDB file, as a CRM, an order system, a supply system and a reference-data
service would be separate databases in a real company.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
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
# dbgen builds every table in memory: 16.9 GB at scale 10 (160 s). Within 6 GB DuckDB spills to a temporary folder
# instead (173 s at scale 10; a 1 GB limit took about 195 s), leaving room for the rest of `mesh run` in 8 GB.
GENERATION_MEMORY = 6 * 2**30
_started: dict[tuple[Path, float], Future[bool]] = {}


def generation_memory() -> int:
    """The memory dbgen may use, in bytes: 6 GB, or DuckDB's own default (80 % of the machine's) if that is less."""
    return min(GENERATION_MEMORY, int(0.8 * os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")))


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


def generate(folder: Path, scale: float, log: Callable[[str], None] = lambda line: None) -> None:
    """Write one DuckDB file per operational system holding its TPC-H tables at `scale`, logging each step (dbgen
    takes minutes at scale 10)."""
    folder.mkdir(parents=True, exist_ok=True)
    log(f"generating the operational systems at TPC-H scale {scale} in {folder}")
    started = time.perf_counter()
    with connect_with_tpch() as con:
        con.execute(f"set memory_limit = '{generation_memory() // 2**20}MiB'")
        con.execute(f"set temp_directory = '{folder / 'generating.tmp'}'")
        con.execute(f"call dbgen(sf={scale})")
        log(f"  {'operational':<12} dbgen done  ({time.perf_counter() - started:.1f} s)")
        for system, tables in SYSTEMS.items():
            target = folder / f"{system}.duckdb"
            staging = folder / f"{system}.duckdb.tmp"
            staging.unlink(missing_ok=True)
            con.execute(f"attach '{staging}' as {system}")
            for table in tables:
                con.execute(f"create table {system}.{table} as select * from main.{table}")
            con.execute(f"detach {system}")
            os.replace(staging, target)  # readers never see a half-written system
            rows = ", ".join(f"{t} {con.execute(f'select count(*) from main.{t}').fetchone()[0]:,}" for t in tables)
            log(f"  {'operational':<12} {system} written: {rows} rows  ({time.perf_counter() - started:.1f} s)")
    (folder / MARKER).write_text(json.dumps({"scale": scale}))


def ensure_started(folder: Path, scale: float, log: Callable[[str], None] = lambda line: None) -> None:
    """Start `ensure` in a thread: dbgen runs in DuckDB's threads while this process goes on (`mesh run` imports
    Dagster meanwhile); the next `ensure` of the same folder and scale waits for it and returns what it returned.
    Either way it says so at once (a generation logs its steps as they end)."""
    if _generated(folder, scale):
        log(f"the operational systems at TPC-H scale {scale} in {folder} exist already")
    pool = ThreadPoolExecutor(1, thread_name_prefix="mesh-generate")
    _started[(folder, scale)] = pool.submit(ensure, folder, scale, log)
    pool.shutdown(wait=False)  # its thread ends with the generation


def ensure(folder: Path, scale: float, log: Callable[[str], None] = lambda line: None) -> bool:
    """Generate the systems unless they already exist at this scale. Returns True when it generated."""
    started = _started.pop((folder, scale), None)
    if started is not None:
        return started.result()
    if _generated(folder, scale):
        return False
    generate(folder, scale, log)
    return True


def _generated(folder: Path, scale: float) -> bool:
    return generated_scale(folder) == scale and all((folder / f"{s}.duckdb").exists() for s in SYSTEMS)
