"""The columns of DuckDB relations, for the schema facets of the datasets lineage names."""

from pathlib import Path

import duckdb


def relation_columns(database_path: str | Path) -> dict[str, dict[str, str]]:
    """relation (db.schema.table, lower case) -> {column: type}, for every table and view of a DuckDB file."""
    with duckdb.connect(str(database_path), read_only=True) as con:
        rows = con.execute("select table_catalog, table_schema, table_name, column_name, data_type "
                           "from information_schema.columns order by ordinal_position").fetchall()
    columns: dict[str, dict[str, str]] = {}
    for catalog, schema, table, column, kind in rows:
        columns.setdefault(f"{catalog}.{schema}.{table}".lower(), {})[column] = kind
    return columns


def table_columns(con: duckdb.DuckDBPyConnection, schema: str, table: str, catalog: str | None = None) -> dict[str, str]:
    """{column: type} of one relation, on an open connection."""
    rows = con.execute("select column_name, data_type from information_schema.columns where table_schema = ? and "
                       "table_name = ? and table_catalog = coalesce(?, current_database()) order by ordinal_position",
                       [schema, table, catalog]).fetchall()
    return dict(rows)
