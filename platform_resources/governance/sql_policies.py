"""MESH-SQL-001: the SQL a manifest carries is a safe condition, refused at `mesh validate` before anything runs it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from platform_resources.governance.context import ProductContext
from platform_resources.governance.policy import Violation, policy
from platform_resources.sql_sandbox import UnsafeCondition, parse_condition


@policy("MESH-SQL-001", "Runtime conditions are safe expressions",
        "A rows_satisfy condition runs on every publish: it may only look at the port's own columns, never read "
        "or write files, settings or other domains' data.", "error")
def rows_satisfy_is_a_safe_condition(ctx: ProductContext, params: dict[str, Any]) -> Iterator[Violation]:
    for i, local in enumerate(ctx.manifest.governance.policies):
        if local.rows_satisfy is None:
            continue
        for port in (p for _, p in ctx.ports() if local.ports is None or p.name in local.ports):
            try:
                parse_condition(local.rows_satisfy, [c.name for c in port.contract.columns])
            except UnsafeCondition as refused:
                yield Violation(f"policy {local.id}: rows_satisfy '{local.rows_satisfy}' cannot run on port "
                                f"{port.name}: {refused}", ("governance", "policies", i, "rows_satisfy"))
                break  # one finding per condition: the first port that refuses it says why
