"""Ingestion of operational sources: a table of an operational system, in the domain's DuckDB as a view over it.

The view reads the system's table in place, read-only (`operational.py`): a source-aligned product of 60 million
order lines is not copied into the domain's file before its models read it."""

import duckdb
from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, asset

from platform_resources import operational
from platform_resources.dbt import duckdb_pool, internal_key
from platform_resources.home import domain_duckdb_path
from platform_resources.lineage import naming
from platform_resources.lineage.duckdb_schema import table_columns
from platform_resources.lineage.facets import duckdb_facets, identity_lineage, job_facets
from platform_resources.lineage.resource import LineageResource
from platform_resources.manifest import Manifest
from platform_resources.sql_sandbox import identifier


def ingest_table(domain: str, system: str, table: str) -> int:
    """Make <system>.<table> in the domain's DuckDB a view over the operational system's table; its row count now."""
    if not operational.database(system).exists():
        raise FileNotFoundError(f"operational system '{system}' has no database at {operational.database(system)}; "
                                f"`mesh run` generates the sample systems")
    target = domain_duckdb_path(domain)
    target.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(target)) as con:
        operational.attach(con, [system])
        schema, name = identifier(system), identifier(table)
        con.execute(f"create schema if not exists {schema}")
        copied = con.execute("select 1 from duckdb_tables() where database_name = current_database() and "
                             "schema_name = ? and table_name = ?", [system, table]).fetchone()
        if copied:  # a home from before ingestion read in place
            con.execute(f"drop table {schema}.{name}")
        con.execute(f"create or replace view {schema}.{name} as "
                    f"select * from {identifier(operational.catalog(system))}.main.{name}")
        return con.execute(f"select count(*) from {schema}.{name}").fetchone()[0]


def ingestion_assets(domain: str, products: list[Manifest]) -> list[AssetsDefinition]:
    """One ingestion asset per operational table the domain's products read."""
    owners = sorted({o for m in products for o in m.owner.dagster_owners if o.startswith("team:")})
    sources = sorted({p.operational for m in products for p in m.input_ports if p.operational})
    return [_ingestion_asset(domain, source, owners) for source in sources]


def _ingestion_asset(domain: str, source: str, owners: list[str]) -> AssetsDefinition:
    system, table = source.split(".")

    @asset(key=internal_key(domain, system, table), group_name=f"{domain}_internal", owners=owners, pool=duckdb_pool(domain),
           kinds={"python", "duckdb"}, tags={"mesh/visibility": "domain-internal"},
           description=f"Table `{table}` of the operational system `{system}`, read in place by {domain}'s DuckDB.")
    def _ingest(context: AssetExecutionContext, lineage: LineageResource) -> MaterializeResult:
        facets = job_facets(None, f"Exposes {system}.{table} to {domain}'s DuckDB, read in place.", integration="DAGSTER",
                            job_type="INGESTION", team_owners=owners)
        run = lineage.job_run(context, naming.ingestion_job(domain, system, table), facets)
        source = naming.duckdb_dataset(str(operational.database(system)), "main", table)
        target = naming.domain_table(domain, system, table)
        run.start([(*source, {})], [(*target, {})])
        try:
            rows = ingest_table(domain, system, table)
        except Exception as exc:
            run.fail(exc, [(*source, {})], [(*target, {})])
            raise
        # Both tables' schemas (the same columns), so column lineage reaches the operational system's columns.
        with duckdb.connect(str(domain_duckdb_path(domain)), read_only=True) as con:
            columns = table_columns(con, system, table)
        run.complete([(*source, duckdb_facets(source[0], columns))],
                     [(*target, {**duckdb_facets(target[0], columns), **identity_lineage(source, list(columns))})])
        return MaterializeResult(metadata={"dagster/row_count": rows, "source": str(operational.database(system))})

    return _ingest
