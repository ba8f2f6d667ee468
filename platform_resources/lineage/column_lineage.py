"""Column-level lineage of a SELECT, for OpenLineage's columnLineage dataset facet.

`column_lineage` traces every output column of one SQL statement (typically a compiled dbt model)
back to the (table, column) pairs it is computed from, using sqlglot's lineage walker on the
statement after qualification (sqlglot.optimizer.qualify) against the given schema.

What it reports, by construction of sqlglot's lineage:
- only the columns in the output column's own expression (through CTEs, derived tables, unions and
  scalar subqueries in the projection); columns that appear only in WHERE / JOIN / GROUP BY /
  HAVING are not reported (that is "indirect" lineage, which this function does not compute);
- `count(*)` and constants have no source column: an empty list;
- `count(x)` reports x (e.g. TPC-H Q13: `c_count` <- orders.o_orderkey, while `custdist`, a
  `count(*)` over the CTE, reports nothing).

It never raises: SQL it cannot parse or analyse gives {} and a column it cannot trace gives [],
both with a warning on this module's logger.
"""

from __future__ import annotations

import logging

import sqlglot
from sqlglot import exp
from sqlglot.lineage import Node, lineage
from sqlglot.optimizer.qualify import qualify
from sqlglot.schema import MappingSchema

log = logging.getLogger(__name__)

# Catalog used to pad schema entries that are less qualified than others, so that one MappingSchema
# (which needs every table at the same depth) can hold them all. It never appears in the result,
# which names tables as the SQL does.
_PAD = "__column_lineage_any__"

# Qualification options: tolerate a schema that misses some columns of a table (a contract that
# lags the SQL) rather than failing the whole statement with "Unknown column".
_QUALIFY = {"allow_partial_qualification": True}


def column_lineage(
    sql: str, schema: dict[str, dict[str, str]], dialect: str = "duckdb"
) -> dict[str, list[tuple[str, str]]]:
    """For each output column of a SELECT: the (table, column) pairs it is derived from.

    schema maps fully or partly qualified table names as they appear in the SQL (e.g.
    '"finance"."sales_orders"."order_lines"' or 'sales_orders.order_lines') to {column: type}.
    Table names in the result are normalized to 'catalog.schema.table' / 'schema.table' without
    quotes, as written in the SQL (after qualification; DuckDB identifiers are case-insensitive and
    come out lower-cased). Keys are the output column names in select order; each list is sorted
    and free of duplicates.
    """
    try:
        statement = _statement(sql, dialect)
        if statement is None:
            return {}
        names = _output_names(statement)
        mapping = _schema_mapping(schema, dialect)
    except Exception as error:  # noqa: BLE001 - never raise on SQL we cannot analyse
        log.warning("column lineage: cannot analyse the statement (%s: %s)", type(error).__name__, error)
        return {}

    try:
        nodes = lineage(None, statement, mapping, dialect=dialect, **_QUALIFY)
    except Exception as error:  # noqa: BLE001
        log.warning(
            "column lineage: cannot trace the statement as a whole (%s: %s); tracing column by column",
            type(error).__name__,
            error,
        )
        return _column_by_column(statement, mapping, dialect, names)
    return _trace_each(list(nodes), names, nodes.__getitem__)


def _trace_each(qualified_names: list[str], names: list[str] | None, trace) -> dict[str, list[tuple[str, str]]]:
    """Sources of every output column, named as the statement names it; [] for a column that fails to trace."""
    if names is not None and len(names) != len(qualified_names):
        names = None  # duplicate output names collapsed: positions no longer line up
    result: dict[str, list[tuple[str, str]]] = {}
    for position, qualified_name in enumerate(qualified_names):
        if qualified_name == "*":
            log.warning("column lineage: cannot expand a star without the schema of its tables")
            continue
        name = names[position] if names and names[position] else qualified_name
        try:
            result[name] = _sources(trace(qualified_name), name)
        except Exception as error:  # noqa: BLE001
            log.warning("column lineage: %s: cannot trace (%s: %s)", name, type(error).__name__, error)
            result[name] = []
    return result


def _statement(sql: str, dialect: str) -> exp.Expr | None:
    """The one query to analyse: a SELECT/UNION, or the query of a CREATE ... AS SELECT."""
    statements = [s for s in sqlglot.parse(sql, dialect=dialect) if s is not None]
    if len(statements) != 1:
        log.warning("column lineage: expected one SQL statement, got %d", len(statements))
        return None
    statement = statements[0]
    if isinstance(statement, exp.Create) and isinstance(statement.expression, exp.Query):
        statement = statement.expression
    if not isinstance(statement, exp.Query):
        log.warning("column lineage: not a query: %s", type(statement).__name__)
        return None
    return statement


def _output_names(statement: exp.Expr) -> list[str] | None:
    """Output column names as written (qualification lower-cases them), when they map 1:1 to the
    qualified projections, i.e. when the statement selects no star; None otherwise."""
    selects = statement.selects
    if any(isinstance(s, exp.Star) or (isinstance(s, exp.Column) and s.is_star) for s in selects):
        return None
    # An unaliased expression (e.g. `count(*)`) has no name of its own: use the qualified one.
    return [s.alias_or_name if isinstance(s, (exp.Alias, exp.Column)) else "" for s in selects]


def _schema_mapping(schema: dict[str, dict[str, str]], dialect: str) -> MappingSchema:
    """A sqlglot MappingSchema from {'"cat"."db"."table"' or 'db.table': {column: type}}."""
    tables: list[tuple[list[str], dict[str, str]]] = []
    for key, columns in (schema or {}).items():
        try:
            parts = [part.name for part in exp.to_table(key, dialect=dialect).parts]
        except Exception:  # noqa: BLE001
            parts = []
        if not 1 <= len(parts) <= 3 or not all(parts):
            log.warning("column lineage: schema entry %r is not a table name; ignoring it", key)
            continue
        if not isinstance(columns, dict) or not columns or not all(isinstance(v, str) for v in columns.values()):
            log.warning("column lineage: schema entry %r is not a {column: type} mapping; ignoring it", key)
            continue
        tables.append((parts, dict(columns)))
    depth = max((len(parts) for parts, _ in tables), default=0)
    nested: dict = {}
    for parts, columns in tables:
        level = nested
        for part in [_PAD] * (depth - len(parts)) + parts[:-1]:
            level = level.setdefault(part, {})
        level[parts[-1]] = columns
    return MappingSchema(nested, dialect=dialect)


def _sources(node: Node, column: str) -> list[tuple[str, str]]:
    """The physical (table, column) leaves of one output column's lineage graph."""
    found: set[tuple[str, str]] = set()
    for leaf in node.walk():
        if leaf.downstream or leaf is node:
            continue
        if isinstance(leaf.expression, exp.Table):
            name = _column_name(leaf.name)
            if name is None or name == "*":
                log.warning(
                    "column lineage: %s: cannot tell which columns of %s it reads (%s)",
                    column,
                    _table_name(leaf.expression),
                    leaf.name,
                )
                continue
            found.add((_table_name(leaf.expression), name))
        elif isinstance(leaf.expression, exp.Placeholder):
            log.warning("column lineage: %s: cannot tell which table %s comes from", column, leaf.name)
        # Anything else is an expression without columns (count(*), a literal): no source.
    return sorted(found)


def _column_name(leaf_name: str) -> str | None:
    """The column of a lineage leaf, whose name is the qualified column's SQL, e.g. `l.l_discount`."""
    try:
        parsed = sqlglot.parse_one(leaf_name)
    except Exception:  # noqa: BLE001
        return None
    if isinstance(parsed, exp.Column):
        return "*" if parsed.is_star else parsed.name
    if isinstance(parsed, exp.Star):
        return "*"
    return None


def _table_name(table: exp.Table) -> str:
    return ".".join(part.name for part in table.parts)


def _column_by_column(
    statement: exp.Expr, mapping: MappingSchema, dialect: str, names: list[str] | None
) -> dict[str, list[tuple[str, str]]]:
    """Fallback when the whole-statement walk fails: trace each output column on its own, giving []
    for the ones that fail."""
    try:
        qualified = qualify(
            statement.copy(),
            dialect=dialect,
            schema=mapping,
            validate_qualify_columns=False,
            identify=False,
            **_QUALIFY,
        )
        qualified_names = [s.alias_or_name for s in qualified.selects]
    except Exception as error:  # noqa: BLE001
        log.warning("column lineage: cannot qualify the statement (%s: %s)", type(error).__name__, error)
        # The output columns are still known when the statement names them all.
        return {name: [] for name in names} if names and all(names) else {}
    return _trace_each(qualified_names, names,
                       lambda column: lineage(column, statement, mapping, dialect=dialect, **_QUALIFY))
