"""Contract checks on a staged port result, run before anything is published (write, audit, publish)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from platform_resources.manifest import Contract
from platform_resources.redaction import redact_values
from platform_resources.sql_sandbox import identifier
from platform_resources.staged import Staged, staged

_SIMPLE_TYPES: dict[str, pa.DataType] = {
    "boolean": pa.bool_(),
    "tinyint": pa.int8(),
    "smallint": pa.int16(),
    "integer": pa.int32(),
    "bigint": pa.int64(),
    "float": pa.float32(),
    "double": pa.float64(),
    "varchar": pa.string(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
}


def arrow_type(contract_type: str) -> pa.DataType:
    """The Arrow type a contract type is served as."""
    if contract_type in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[contract_type]
    precision, scale = map(int, re.match(r"decimal\((\d+),(\d+)\)", contract_type).groups())  # type: ignore[union-attr]
    return pa.decimal128(precision, scale)


def _same_type(actual: pa.DataType, declared: pa.DataType) -> bool:
    if pa.types.is_string(declared):
        return pa.types.is_string(actual) or pa.types.is_large_string(actual)
    if pa.types.is_timestamp(declared) and pa.types.is_timestamp(actual):
        # Any time zone is an instant; no time zone is a local timestamp. Units are widened on publish.
        return (declared.tz is None) == (actual.tz is None)
    return actual == declared


@dataclass
class CheckOutcome:
    name: str
    passed: bool
    summary: str
    details: dict = field(default_factory=dict)


def check_schema(contract: Contract, data: Staged | pa.Table) -> CheckOutcome:
    declared = {c.name: c.type for c in contract.columns}
    actual = {f.name: f.type for f in data.schema}
    missing = [n for n in declared if n not in actual]
    extra = [n for n in actual if n not in declared]
    wrong_types = {
        n: f"declared {t}, got {actual[n]}"
        for n, t in declared.items()
        if n in actual and not _same_type(actual[n], arrow_type(t))
    }
    passed = not (missing or extra or wrong_types)
    problems = [f"missing columns {missing}"] * bool(missing) + [f"undeclared columns {extra}"] * bool(extra)
    problems += [f"{n}: {why}" for n, why in wrong_types.items()]
    return CheckOutcome("contract_schema", passed, "matches the contract" if passed else "; ".join(problems),
                        {"missing_columns": missing, "undeclared_columns": extra, "wrong_types": wrong_types})


def check_primary_key(contract: Contract, data: Staged | pa.Table) -> CheckOutcome:
    key = contract.primary_key
    if not key:
        return CheckOutcome("primary_key", False, "the contract declares no primary key (policy MESH-CON-001)")
    if any(k not in data.column_names for k in key):
        return CheckOutcome("primary_key", False, f"primary key columns {key} are not all in the result")
    columns = ", ".join(identifier(k) for k in key)
    null_test = " or ".join(f"{identifier(k)} is null" for k in key)
    try:
        duplicates, nulls = staged(data).query(
            f"select (select count(*) from (select {columns} from staged group by all having count(*) > 1)),"
            f" (select count(*) from staged where {null_test})")
    except duckdb.Error as exc:  # its message can quote a row's value: never show it as is
        why = redact_values(str(exc)).splitlines()[0]
        return CheckOutcome("primary_key", False, f"the key could not be checked: {why}", {"primary_key": key})
    passed = duplicates == 0 and nulls == 0
    summary = "unique and not null" if passed else f"{duplicates} duplicated key values, {nulls} rows with a null key"
    return CheckOutcome("primary_key", passed, summary,
                        {"primary_key": key, "duplicated_keys": duplicates, "null_keys": nulls})


def check_not_null(contract: Contract, data: Staged | pa.Table) -> CheckOutcome:
    data = staged(data)
    nulls = {c.name: data.null_count(c.name) for c in contract.columns
             if not c.nullable and c.name in data.column_names and data.null_count(c.name)}
    passed = not nulls
    return CheckOutcome("not_null_columns", passed,
                        "no nulls in required columns" if passed else f"nulls in required columns: {nulls}",
                        {"null_counts": nulls})
