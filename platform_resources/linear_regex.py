"""Regular expressions written in manifests, run by RE2 (the engine DuckDB ships): matching takes linear time.

Python's `re` backtracks: a pattern like '^(a+)+$' takes exponential time on a column name like 'aaaa...ab', so a
domain's pattern could hang every command of every domain. RE2 never backtracks; it refuses lookarounds and
backreferences instead, which a manifest does not need.
"""

from __future__ import annotations

import functools

import duckdb

MAX_PATTERN_LENGTH = 1000


@functools.cache
def _database() -> duckdb.DuckDBPyConnection:
    """One in-memory DuckDB for every match (a new one costs about 30 ms); each call takes a cursor of its own."""
    con = duckdb.connect()
    con.execute("set enable_external_access = false")
    return con


def regex_problem(pattern: str) -> str | None:
    """Why RE2 refuses `pattern` ("problem; fix"), or None when it compiles."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        return f"the pattern has {len(pattern):,} characters, more than {MAX_PATTERN_LENGTH}; write a shorter one"
    try:
        with _database().cursor() as con:
            con.execute("select regexp_matches('', ?)", [pattern]).fetchall()
    except duckdb.Error as exc:
        reason = str(exc).removeprefix("Invalid Input Error: ")
        return (f"'{pattern}' is not a regular expression RE2 accepts ({reason}); write one like '^[a-z_]+$' "
                "(no lookarounds or backreferences)")
    return None


@functools.lru_cache(maxsize=4096)
def _matching(patterns: tuple[str, ...], texts: tuple[str, ...], full: bool) -> frozenset[str]:
    match = "regexp_full_match" if full else "regexp_matches"
    with _database().cursor() as con:
        rows = con.execute(f"select distinct t from unnest(?) a(t), unnest(?) b(p) where {match}(t, p)",
                           [list(texts), list(patterns)]).fetchall()
    return frozenset(t for (t,) in rows)


def matching(patterns: list[str], texts: list[str], *, full: bool = False, ignore_case: bool = False) -> set[str]:
    """The texts that some pattern matches (`full`: the whole text; otherwise anywhere in it), in linear time.

    The patterns must be valid (see regex_problem)."""
    if not patterns or not texts:
        return set()
    prefixed = tuple(f"(?i){p}" if ignore_case else p for p in patterns)
    return set(_matching(prefixed, tuple(texts), full))
