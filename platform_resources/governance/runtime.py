"""Runtime policies: checks on the data of a port before it is published (the audit of write, audit, publish).

Each is a Dagster asset check. Error severity blocks the publish; the port keeps serving its last good version.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa

from platform_resources.contracts import CheckOutcome, check_not_null, check_primary_key, check_schema
from platform_resources.governance.local_policies import as_policy
from platform_resources.governance.policy import GLOBAL, Policy
from platform_resources.manifest import LocalPolicy, Manifest, OutputPort
from platform_resources.redaction import redact_values
from platform_resources.sql_sandbox import UnsafeCondition, condition_sql, identifier
from platform_resources.staged import Staged, staged

# A hashed column serves SHA-256 hex digests, as DuckDB's sha256() returns them.
HASHED = r"^[0-9a-f]{64}$"
# A redacted value shows mask characters and at most four letters or digits (like ***-***-1234).
REDACTED_VISIBLE = 4


@dataclass(frozen=True)
class RuntimeCheck:
    """One asset check of a port: its Dagster name, the policy behind it, and whether it blocks the publish."""

    name: str
    policy: Policy

    @property
    def blocking(self) -> bool:
        return self.policy.severity == "error"

    @property
    def description(self) -> str:
        return f"{self.policy.id} {self.policy.title}: {self.policy.rationale}"


def _runtime(id: str, title: str, rationale: str) -> Policy:
    return GLOBAL.add(Policy(id, title, rationale, "error", "runtime"))


SCHEMA = _runtime("MESH-DATA-001", "Contract conformance",
                  "The staged result has exactly the contract's columns, with the contract's types.")
PRIMARY_KEY = _runtime("MESH-DATA-002", "Primary key unique and not null", "Consumers join on the key.")
NOT_NULL = _runtime("MESH-DATA-003", "Required columns hold no nulls", "The contract promised values there.")
NOT_EMPTY = _runtime("MESH-DATA-004", "Not empty", "An empty publish is an outage unless the port says it may be empty.")
MASKED = _runtime("MESH-DATA-005", "Masked columns are served masked",
                  "A column declared hashed or redacted must never leak its clear value.")


def static_policy_check() -> RuntimeCheck:
    """The gate in front of every publish: the product's static findings (it publishes only without errors)."""
    return RuntimeCheck("static_policies", Policy("MESH-STATIC", "Static policies pass",
                                                  "A product with error findings in `mesh validate` may not publish.",
                                                  "error", "runtime"))


def checks_of(manifest: Manifest, port: OutputPort) -> list[RuntimeCheck]:
    """Every runtime check the port gets, in the order they run."""
    checks = [RuntimeCheck("contract_schema", SCHEMA), RuntimeCheck("primary_key", PRIMARY_KEY),
              RuntimeCheck("not_null_columns", NOT_NULL), RuntimeCheck("row_count", NOT_EMPTY)]
    if any(c.masking for c in port.contract.columns):
        checks.append(RuntimeCheck("masking", MASKED))
    checks += [RuntimeCheck(local_check_name(p), as_policy(p)) for p in _local_runtime(manifest, port)]
    return checks


def local_check_name(local: LocalPolicy) -> str:
    return "policy_" + local.id.lower().replace("-", "_")


def _local_runtime(manifest: Manifest, port: OutputPort) -> list[LocalPolicy]:
    return [p for p in manifest.governance.policies
            if p.rows_satisfy is not None and (p.ports is None or port.name in p.ports)]


def run_runtime_checks(manifest: Manifest, port: OutputPort, data: Staged | pa.Table) -> list[tuple[RuntimeCheck, CheckOutcome]]:
    data = staged(data)
    outcomes = {
        "contract_schema": lambda: check_schema(port.contract, data),
        "primary_key": lambda: check_primary_key(port.contract, data),
        "not_null_columns": lambda: check_not_null(port.contract, data),
        "row_count": lambda: check_not_empty(port, data),
        "masking": lambda: check_masking(port, data),
    }
    locals_by_name = {local_check_name(p): p for p in _local_runtime(manifest, port)}
    results = []
    for check in checks_of(manifest, port):
        if check.name in outcomes:
            results.append((check, outcomes[check.name]()))
        else:
            results.append((check, check_rows_satisfy(check.name, locals_by_name[check.name], port, data)))
    return results


def check_not_empty(port: OutputPort, data: Staged | pa.Table) -> CheckOutcome:
    rows = data.num_rows
    passed = rows > 0 or port.may_be_empty
    summary = f"{rows} rows" + ("" if passed else "; the port does not declare may_be_empty: true, so nothing is published")
    return CheckOutcome("row_count", passed, summary, {"row_count": rows, "may_be_empty": port.may_be_empty})


def check_masking(port: OutputPort, data: Staged | pa.Table) -> CheckOutcome:
    data = staged(data)
    leaks: dict[str, int] = {}
    for column in (c for c in port.contract.columns if c.masking):
        if column.name not in data.column_names:
            leaks[column.name] = data.num_rows
            continue
        name = identifier(column.name)
        value = f"cast({name} as varchar)"
        if column.masking == "hashed":
            condition = f"not regexp_full_match({value}, ?)"
            params = [HASHED.strip("^$")]
        else:
            visible = f"length(regexp_replace({value}, '[^A-Za-z0-9]', '', 'g'))"
            condition = f"({visible} > ? or not contains({value}, '*'))"
            params = [REDACTED_VISIBLE]
        unmasked = data.query(f"select count(*) from staged where {name} is not null and {condition}", *params)[0]
        if unmasked:
            leaks[column.name] = unmasked
    passed = not leaks
    summary = "every masked column is masked" if passed else \
        f"values served unmasked: {leaks} (rows per column); mask them in the model (sha256() or a redaction)"
    return CheckOutcome("masking", passed, summary, {"unmasked_rows": leaks})


def check_rows_satisfy(name: str, local: LocalPolicy, port: OutputPort, data: Staged | pa.Table) -> CheckOutcome:
    """Count the rows failing the condition, in the sandbox; a condition that is not safe never runs (MESH-SQL-001)."""
    condition = local.rows_satisfy
    try:
        safe = condition_sql(condition, [c.name for c in port.contract.columns])
    except UnsafeCondition as refused:
        return CheckOutcome(name, False, f"the condition '{condition}' of {local.id} was not run: {refused}; fix it "
                                         "in the manifest (policy MESH-SQL-001)", {"condition": condition})
    try:
        failing = staged(data).query(f"select count(*) from staged where not coalesce(({safe}), false)")[0]
    except duckdb.Error as exc:  # its message can quote a row's value: never show it as is
        return CheckOutcome(name, False, f"the condition '{condition}' of {local.id} does not run on the port "
                                         f"({redact_values(str(exc)).splitlines()[0]}); fix it in the manifest",
                            {"condition": condition})
    passed = failing == 0
    summary = f"every row satisfies {condition}" if passed else f"{failing} rows do not satisfy {condition}"
    return CheckOutcome(name, passed, f"{local.id}: {summary}", {"condition": condition, "failing_rows": failing})
