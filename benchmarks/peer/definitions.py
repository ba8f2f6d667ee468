"""The peer of the mesh benchmark: the same work as one Dagster code location over one dbt-duckdb project.

What a team would write without the mesh: a Python asset generates TPC-H into a DuckDB file, dbt copies the source
tables and answers TPC-H queries 1, 3, 5, 10, 13, 15 and 18 as tables, and a post-hook on every model (in
dbt/dbt_project.yml) writes each table as Parquet. PEER_OUT names the folder of the DuckDB file and the Parquet.

    export PEER_OUT=/tmp/peer DAGSTER_HOME=/tmp/peer_dagster DO_NOT_TRACK=1   # dagster.yaml: telemetry off
    dbt parse --project-dir benchmarks/peer/dbt --profiles-dir benchmarks/peer/dbt   # the manifest, as CI would
    dagster asset materialize -m definitions -d benchmarks/peer --select '*' \\
        --config-json '{"ops": {"tpch": {"config": {"scale": 0.01}}}}'
"""

import os
from pathlib import Path

import duckdb
import duckdb_extension_tpch
from dagster import AssetExecutionContext, AssetSpec, Config, Definitions, multi_asset
from dagster_dbt import DbtCliResource, DbtProject, dbt_assets

dbt_project = DbtProject(project_dir=Path(__file__).parent / "dbt")
dbt_project.prepare_if_dev()  # parses only under `dagster dev`; elsewhere the manifest is built beforehand

# dbgen's tables; dagster-dbt names a source table's asset [source name, table], so dbt's models depend on these.
TABLES = ["customer", "orders", "lineitem", "supplier", "part", "partsupp", "nation", "region"]


class TpchConfig(Config):
    scale: float = 0.01


@multi_asset(specs=[AssetSpec(["tpch", table]) for table in TABLES])
def tpch(config: TpchConfig):
    """TPC-H at `scale`, written by dbgen into schema tpch of the DuckDB file the dbt models are built in."""
    out = Path(os.environ["PEER_OUT"])
    out.mkdir(parents=True, exist_ok=True)
    # The tpch extension comes with the duckdb-extension-tpch package: nothing is downloaded.
    extension = next(Path(duckdb_extension_tpch.__file__).parent.glob("extensions/*/tpch.duckdb_extension"))
    with duckdb.connect(str(out / "tpch.duckdb")) as con:
        con.execute(f"load '{extension}'")
        con.execute("create schema if not exists tpch")
        con.execute("call dbgen(sf=?, schema='tpch', overwrite=true)", [config.scale])


@dbt_assets(manifest=dbt_project.manifest_path)
def tpch_dbt(context: AssetExecutionContext, dbt: DbtCliResource):
    yield from dbt.cli(["build"], context=context).stream()


defs = Definitions(assets=[tpch, tpch_dbt], resources={"dbt": DbtCliResource(project_dir=dbt_project)})
