"""A domain's own policies, declared in a product manifest under `governance.policies`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from platform_resources.governance.context import ProductContext
from platform_resources.governance.policy import Policy, Violation
from platform_resources.linear_regex import matching
from platform_resources.manifest import LocalPolicy


def as_policy(local: LocalPolicy) -> Policy:
    check = _static_check(local) if local.phase == "static" else None
    return Policy(local.id, local.title, local.rationale, local.severity, local.phase, scope="local", check=check)


def _static_check(local: LocalPolicy):
    def check(ctx: ProductContext, params: dict[str, Any]) -> Iterator[Violation]:
        if local.require_tags is not None:
            missing = [t for t in local.require_tags if t not in ctx.manifest.tags]
            if missing:
                yield Violation(f"the product lacks the tags {missing}; add them to 'tags:'", ("tags",))
        if local.column_names is not None:
            names = [c.name for _, port in ctx.ports() for c in port.contract.columns]
            matched = matching([local.column_names], names, full=True)  # RE2: no pattern can hang the check
            for i, port in ctx.ports():
                for j, column in enumerate(port.contract.columns):
                    if column.name not in matched:
                        yield Violation(f"column {port.name}.{column.name} does not match '{local.column_names}'; "
                                        "rename it", ("output_ports", i, "contract", "columns", j))

    return check
