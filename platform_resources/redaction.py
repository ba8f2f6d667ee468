"""Row values kept out of error messages: what DuckDB, dbt and Arrow say about data reaches logs, events and the
console with its values taken out.

DuckDB quotes the value it choked on ("Could not convert string '555-1234' to INT32"), and a port's values can be
personal data. What stays is what a person needs to fix it: the kind of error, the type, the column, the model,
the file. Errors DuckDB raises before it reads a row (binder, parser, catalog) name columns and tables, never
values, and stay as they are; so does every message of the platform's own.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
import traceback
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from dagster import Failure

REDACTED = "<value>"
T = TypeVar("T")

# DuckDB's errors start with their kind: "Conversion Error: ...", "Invalid Input Error: ...".
_DUCKDB_ERROR = re.compile(r"\b([A-Z][A-Za-z]*(?: [A-Za-z]+){0,3}) Error: ")
# Kinds raised before a row is read, or about files and extensions: no value in them.
_NO_VALUES = ("Binder", "Catalog", "Parser", "Syntax", "Planner", "Permission", "Dependency", "Missing Extension",
              "Not implemented", "IO")
# Arrow's errors (pyarrow.lib.ArrowInvalid: Failed to parse string: '555-1234' ...) quote values too.
_ARROW_ERROR = re.compile(r"\b(?:[\w.]+\.)?Arrow\w*: ")
_SQL_CONTEXT = re.compile(r"^(\s*LINE \d+:)(.*)$")  # DuckDB shows the statement line, then a caret under it
_CARET = re.compile(r"^\s*\^\s*$")
_OPENING_QUOTE = re.compile(r"(?<!\w)[\"']")
_SQL_LITERAL = re.compile(r"'(?:[^']|'')*'?")
# A number on its own (a value, a date like 2147483647-1-1), not one inside a name (INT32), a type (DECIMAL(5,2))
# or a statement line number (LINE 10:).
_KEPT_NUMBERS = re.compile(r"(?i)\b(?:decimal|numeric|varchar|char)\(\s*\d+(?:\s*,\s*\d+)?\s*\)|\bLINE \d+:")
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:[.:/-]\d+)*(?![\w.])")


def redact_values(message: str) -> str:
    """The message with every row value out of DuckDB's, dbt's and Arrow's error lines, and out of the SQL context
    lines DuckDB adds; everything else as it was."""
    lines, dropping, sql_changed = [], False, False
    for line in message.splitlines(keepends=True):
        bare = line.rstrip("\r\n")
        if dropping and bare.strip() and not _SQL_CONTEXT.match(bare):
            continue  # the rest of a data error's text (strptime echoes the value on the next line)
        dropping = False
        if sql_changed and _CARET.match(bare):
            continue  # it pointed into the SQL line, which lost its literals
        context = _SQL_CONTEXT.match(bare)
        duckdb_error = _DUCKDB_ERROR.search(bare)
        arrow_error = _ARROW_ERROR.search(bare)
        sql_changed = False
        if context:
            redacted = context.group(1) + _redact_sql(context.group(2))
            bare, sql_changed = redacted, redacted != bare
        elif duckdb_error and not duckdb_error.group(1).endswith(_NO_VALUES):
            bare = bare[:duckdb_error.end()] + _redact_text(bare[duckdb_error.end():])
            dropping = True
        elif arrow_error:
            bare = bare[:arrow_error.end()] + _redact_text(bare[arrow_error.end():])
            dropping = True
        lines.append(bare + line[len(line.rstrip("\r\n")):])
    return "".join(lines)


def _redact_text(text: str) -> str:
    """An error's own words with its values out: each quoted value (to the last closing quote, since a value may
    hold quotes itself; an unclosed one to the end), then every number that is not part of a name or a type."""
    out, position = [], 0
    while (opening := _OPENING_QUOTE.search(text, position)) is not None:
        quote = opening.group()
        closing = re.compile(rf"{quote}(?!\w)")
        last = None
        for last in closing.finditer(text, opening.end()):
            pass
        out.append(_redact_numbers(text[position:opening.start()]) + REDACTED)
        position = last.end() if last else len(text)
    return "".join(out) + _redact_numbers(text[position:])


def _redact_numbers(text: str) -> str:
    kept = [(m.start(), m.end()) for m in _KEPT_NUMBERS.finditer(text)]
    return _NUMBER.sub(lambda m: m.group() if any(s <= m.start() < e for s, e in kept) else REDACTED, text)


def _redact_sql(sql: str) -> str:
    """A statement line: its string literals and numbers out, its names and structure kept."""
    parts = []
    position = 0
    for literal in _SQL_LITERAL.finditer(sql):
        parts.append(_redact_numbers(sql[position:literal.start()]) + REDACTED)
        position = literal.end()
    return "".join(parts) + _redact_numbers(sql[position:])


class RedactedError(Exception):
    """An error of data processing, its message with the row values taken out (the original is not kept)."""


def redacted_error(exc: BaseException) -> BaseException:
    """What may reach Dagster's event log in place of `exc`: exc itself when nothing in it (nor in what caused it)
    quotes a value, else a copy of its text without them, on the same traceback."""
    full = "".join(traceback.format_exception(exc))
    if redact_values(full) == full:
        return exc
    causes = []
    cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    while cause is not None:
        causes.append(f"{type(cause).__name__}: {redact_values(str(cause))}")
        cause = cause.__cause__ or (None if cause.__suppress_context__ else cause.__context__)
    caused_by = "".join(f"\n(caused by {c})" for c in causes)
    if isinstance(exc, Failure):
        safe: BaseException = Failure(description=redact_values(exc.description or "") + caused_by,
                                      allow_retries=exc.allow_retries)
    else:
        safe = RedactedError(f"{type(exc).__name__}: {redact_values(str(exc))}{caused_by}")
    return safe.with_traceback(exc.__traceback__)


class _RedactingWriter(io.TextIOBase):
    """A text stream that writes to `target` with the values out of what dbt logs (one event per write)."""

    def __init__(self, target):
        self.target = target

    def write(self, text: str) -> int:
        self.target.write(redact_values(text))
        return len(text)

    def flush(self) -> None:
        self.target.flush()


def redacted_dbt_events(invocation) -> Iterator:
    """The events of one dagster-dbt invocation, with the values out of what reaches users: the dbt log lines it
    prints (Dagster's compute logs, the domain's log), the error it raises when a model fails, and dbt's own log
    and run results in the invocation's target folder (read later for lineage and the run summary)."""
    try:
        yield from _redacted_stream(invocation.stream())
    finally:
        redact_dbt_artifacts(Path(invocation.target_path))


def _redacted_stream(events: Iterable[T]) -> Iterator[T]:
    iterator = iter(events)
    while True:
        with contextlib.redirect_stdout(_RedactingWriter(sys.stdout)):
            try:
                event = next(iterator)
            except StopIteration:
                return
            except Exception as exc:
                safe = redacted_error(exc)
                if safe is exc:
                    raise
                raise safe from None
        yield event


def redact_dbt_artifacts(target: Path) -> None:
    """dbt.log (JSON lines) and run_results.json of one invocation, every text in them redacted."""
    log = target / "dbt.log"
    if log.exists():
        lines = log.read_text(errors="replace").splitlines()
        log.write_text("".join(_redacted_json_line(line) + "\n" for line in lines))
    results = target / "run_results.json"
    if results.exists():
        results.write_text(json.dumps(_redacted_json(json.loads(results.read_text()))))


def _redacted_json_line(line: str) -> str:
    try:
        return json.dumps(_redacted_json(json.loads(line)))
    except ValueError:  # a line dbt wrote as text
        return redact_values(line)


def _redacted_json(value):
    if isinstance(value, str):
        return redact_values(value)
    if isinstance(value, list):
        return [_redacted_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _redacted_json(v) for k, v in value.items()}
    return value
