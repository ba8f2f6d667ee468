"""SQL from manifests, made safe: identifiers quoted, `rows_satisfy` conditions allow-listed, a DuckDB that opens
no file.

A `rows_satisfy` condition is one boolean expression over the port's own columns: comparisons, logic, arithmetic,
casts and a short list of scalar functions. Anything else (a subquery, a table function, a relation, a function
that reads a file or a setting, a second statement, a column the contract does not declare) is refused, at
`mesh validate` (policy MESH-SQL-001) and again before the check runs. What runs is the checked expression as
sqlglot writes it back, never the manifest's text, so the two parsers cannot disagree about what was allowed.
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

DIALECT = "duckdb"

# The expression nodes a condition may use. Everything else is refused: allow-listed, not deny-listed, so a new
# DuckDB function that reads files is refused until someone decides it may run.
_STRUCTURE = (exp.Column, exp.Identifier, exp.Literal, exp.Boolean, exp.Null, exp.Paren, exp.DataType,
              exp.DataTypeParam, exp.Interval, exp.Tuple)
_LOGIC = (exp.And, exp.Or, exp.Not, exp.Xor)
_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ, exp.NullSafeNEQ, exp.Is, exp.In,
                exp.Between, exp.Like, exp.ILike, exp.Glob, exp.SimilarTo, exp.RegexpLike, exp.RegexpILike,
                exp.RegexpFullMatch, exp.StartsWith, exp.EndsWith, exp.Contains, exp.IsNan, exp.IsInf)
_ARITHMETIC = (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.IntDiv, exp.Mod, exp.Neg, exp.Pow, exp.DPipe)
_CONDITIONALS = (exp.Case, exp.If, exp.Coalesce, exp.Nullif, exp.Greatest, exp.Least, exp.Cast, exp.TryCast)
_SCALAR_FUNCTIONS = (exp.Abs, exp.Round, exp.Floor, exp.Ceil, exp.Sign, exp.Sqrt, exp.Ln, exp.Log, exp.Exp,
                     exp.Length, exp.Lower, exp.Upper, exp.Trim, exp.Substring, exp.Left, exp.Right, exp.Concat,
                     exp.Replace, exp.RegexpReplace, exp.StrPosition, exp.Reverse,
                     exp.CurrentDate, exp.CurrentTimestamp, exp.Extract, exp.Year, exp.Month, exp.Day, exp.Quarter,
                     exp.DayOfWeek, exp.Hour, exp.Minute, exp.Second, exp.DateDiff, exp.DateTrunc,
                     exp.TimestampTrunc, exp.TimeToStr, exp.TimeToUnix)
ALLOWED_NODES = _STRUCTURE + _LOGIC + _COMPARISONS + _ARITHMETIC + _CONDITIONALS + _SCALAR_FUNCTIONS
# DuckDB functions sqlglot does not model (it parses them as Anonymous): allowed by name, all pure and scalar.
ALLOWED_FUNCTIONS = {"strlen": False, "prefix": True, "suffix": True, "isfinite": True}  # name -> returns boolean
# Date parts are bare words (Var) only where a date function takes one.
_DATE_PART_PARENTS = (exp.Extract, exp.DateDiff, exp.DateTrunc, exp.TimestampTrunc, exp.Interval)
_BOOLEAN_NODES = _LOGIC + _COMPARISONS + (exp.Boolean,)
ALLOWED_HELP = ("a condition is one expression over the port's own columns: comparisons (=, <, in, between, like, "
                "regexp_matches), and/or/not, arithmetic, casts, case/coalesce and scalar functions like abs, round, "
                "length, lower, trim, extract or date_trunc")

# A DuckDB for the checks of a staged port: it sees the Arrow table it is given and nothing else.
SANDBOX_CONFIG = {"enable_external_access": False, "autoload_known_extensions": False,
                  "autoinstall_known_extensions": False, "allow_community_extensions": False,
                  "lock_configuration": True}


class UnsafeCondition(ValueError):
    """A `rows_satisfy` condition the platform will not run; the message says why and what to write instead."""


def identifier(name: str) -> str:
    """A name from a manifest as a DuckDB identifier: always quoted, embedded quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A text (a path, say) as a DuckDB string literal, embedded quotes doubled."""
    return "'" + text.replace("'", "''") + "'"


def sandboxed_connection() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that cannot open, write or attach files, load extensions, or change that."""
    return duckdb.connect(config=SANDBOX_CONFIG)


def _literal_list(paths: list[str]) -> str:
    return "[" + ", ".join(map(literal, paths)) + "]"


def lock_down(conn: duckdb.DuckDBPyConnection, readable_files: list[str]) -> None:
    """Allow only `readable_files` (and the database's own files), then switch external access off for good."""
    temp = conn.execute("select current_setting('temp_directory')").fetchone()[0]
    if readable_files:
        conn.execute(f"set allowed_paths = {_literal_list(readable_files)}")
    if temp:
        conn.execute(f"set allowed_directories = {_literal_list([temp])}")
    conn.execute("set enable_external_access = false")
    conn.execute("set lock_configuration = true")  # nothing that runs on it can loosen any of it again


def condition_sql(condition: str, columns: Iterable[str]) -> str:
    """The condition as the SQL that runs, if it is one safe boolean expression over `columns`; else UnsafeCondition."""
    return parse_condition(condition, columns).sql(dialect=DIALECT, comments=False)


def parse_condition(condition: str, columns: Iterable[str]) -> exp.Expression:
    """The checked expression tree of a condition (see the module docstring); UnsafeCondition when it is not safe."""
    try:
        statements = [s for s in sqlglot.parse(condition, read=DIALECT) if s is not None]
    except (SqlglotError, RecursionError) as exc:
        raise UnsafeCondition(f"it is not a SQL expression ({_first_line(exc)}); write a condition like "
                              "'amount >= 0 and status in (''open'', ''closed'')'") from None
    if len(statements) != 1:
        raise UnsafeCondition(f"it holds {len(statements) or 'no'} statements; write exactly one condition, "
                              "without ';'")
    tree = statements[0]
    declared = {c.lower(): c for c in columns}
    for node in tree.walk():
        _check_node(node, declared)
    if not _is_boolean(tree):
        raise UnsafeCondition("it is not a true/false condition; compare a value, like 'amount >= 0'")
    return tree


def _check_node(node: exp.Expression, declared: dict[str, str]) -> None:
    if isinstance(node, exp.Anonymous):
        if node.name.lower() not in ALLOWED_FUNCTIONS:
            raise UnsafeCondition(f"function {node.name}() is not allowed; {ALLOWED_HELP}")
        return
    if isinstance(node, exp.Var):
        if not isinstance(node.parent, _DATE_PART_PARENTS) or not node.name.isalnum():
            raise UnsafeCondition(f"'{node.name}' is not a column of the port; quote text as 'text'")
        return
    if isinstance(node, exp.Column):
        _check_column(node, declared)
        return
    if isinstance(node, exp.Identifier) and not isinstance(node.parent, exp.Column):
        raise UnsafeCondition(f"'{node.name}' is not allowed here; a condition names only the port's columns")
    if isinstance(node, exp.In) and (node.args.get("query") or node.args.get("unnest") or node.args.get("field")):
        raise UnsafeCondition("IN takes a list of values here, like status in ('open', 'closed'), not a query")
    if not isinstance(node, ALLOWED_NODES):
        raise UnsafeCondition(f"{_describe(node)} is not allowed; {ALLOWED_HELP}")


def _check_column(column: exp.Column, declared: dict[str, str]) -> None:
    if column.table or column.db or column.catalog or not isinstance(column.this, exp.Identifier):
        raise UnsafeCondition(f"'{column.sql(dialect=DIALECT)}' names another relation; a condition names only the "
                              "port's own columns, unqualified")
    if column.name.lower() not in declared:
        raise UnsafeCondition(f"column '{column.name}' is not in the port's contract {sorted(declared.values())}; "
                              "use a declared column (quote text as 'text')")


def _is_boolean(node: exp.Expression) -> bool:
    """Does the expression give true/false (at its top, through parentheses and conditionals)?"""
    if isinstance(node, exp.Paren):
        return _is_boolean(node.this)
    if isinstance(node, _BOOLEAN_NODES):
        return True
    if isinstance(node, exp.Anonymous):
        return ALLOWED_FUNCTIONS.get(node.name.lower(), False)
    if isinstance(node, exp.Column):
        return True  # a boolean column (on a text column the check fails; DuckDB reads a number as "not 0")
    if isinstance(node, exp.Case):
        branches = [i.args.get("true") for i in node.args.get("ifs") or []] + [node.args.get("default")]
        return all(b is None or _is_boolean(b) for b in branches)
    if isinstance(node, exp.If):
        return all(b is None or _is_boolean(b) for b in (node.args.get("true"), node.args.get("false")))
    if isinstance(node, exp.Coalesce):
        return all(_is_boolean(b) for b in (node.this, *node.expressions))
    return False


def _describe(node: exp.Expression) -> str:
    if isinstance(node, (exp.Query, exp.Subquery)):
        return "a subquery"
    if isinstance(node, (exp.Table, exp.From, exp.Join)):
        return "reading a relation"
    if isinstance(node, (exp.Copy, exp.Command, exp.DDL, exp.DML)):
        return f"a {node.key.upper()} statement"
    if isinstance(node, exp.Func):
        return f"function {node.sql_name()}()"
    if isinstance(node, (exp.Placeholder, exp.Parameter)):
        return f"parameter {node.sql(dialect=DIALECT)}"
    return f"'{node.sql(dialect=DIALECT)[:60]}' ({type(node).__name__})"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
