"""What a policy is, and what it finds."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from platform_resources.governance.context import ProductContext

Severity = Literal["warning", "error"]
Phase = Literal["static", "runtime"]
Scope = Literal["global", "local"]
Stricter = Literal["higher", "lower", "superset"]
Needs = Literal["asset_graph", "base"]  # a ProductContext field a policy cannot run without


@dataclass(frozen=True)
class Violation:
    """One thing a policy found wrong: the problem and its fix, and where in the manifest (a field path)."""

    message: str
    at: tuple[str | int, ...] = ()


@dataclass(frozen=True)
class Parameter:
    """A threshold of a global policy. A domain may move it in the `stricter` direction only."""

    name: str
    default: Any
    stricter: Stricter
    help: str
    kind: Literal["number", "duration"] = "number"  # what a higher/lower threshold holds (superset: a list of texts)


StaticCheck = Callable[["ProductContext", dict[str, Any]], Iterator[Violation]]


@dataclass(frozen=True)
class Policy:
    id: str
    title: str
    rationale: str
    severity: Severity
    phase: Phase
    scope: Scope = "global"
    parameters: tuple[Parameter, ...] = ()
    check: StaticCheck | None = None  # static policies; runtime ones run as Dagster asset checks at publish
    needs: Needs | None = None  # without it the engine records the policy as not run, rather than passed

    def parameter(self, name: str) -> Parameter | None:
        return next((p for p in self.parameters if p.name == name), None)

    @property
    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.parameters}


@dataclass(frozen=True)
class Finding:
    """A policy's verdict on one product, with the manifest line to fix."""

    policy: str
    title: str
    severity: Severity
    product: str
    domain: str
    message: str
    file: str
    line: int
    waived_reason: str | None = None
    waived_until: date | None = None

    @property
    def waived(self) -> bool:
        return self.waived_reason is not None

    @property
    def blocking(self) -> bool:
        return self.severity == "error" and not self.waived

    @property
    def open_warning(self) -> bool:
        return self.severity == "warning" and not self.waived

    def as_text(self) -> str:
        waived = f" (waived until {self.waived_until}: {self.waived_reason})" if self.waived else ""
        return f"{self.file}:{self.line}: {self.severity} {self.policy} {self.title}: {self.message}{waived}"

    def as_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "title": self.title, "severity": self.severity, "product": self.product,
                "domain": self.domain, "message": self.message, "file": self.file, "line": self.line,
                "waived": self.waived, "waived_reason": self.waived_reason,
                "waived_until": self.waived_until.isoformat() if self.waived_until else None}


@dataclass
class Catalog:
    """Policies by id, in the order they were declared."""

    policies: dict[str, Policy] = field(default_factory=dict)

    def add(self, policy: Policy) -> Policy:
        if policy.id in self.policies:
            raise ValueError(f"policy id {policy.id} is declared twice")
        self.policies[policy.id] = policy
        return policy

    def static(self) -> list[Policy]:
        return [p for p in self.policies.values() if p.phase == "static"]

    def __getitem__(self, policy_id: str) -> Policy:
        return self.policies[policy_id]

    def get(self, policy_id: str) -> Policy | None:
        return self.policies.get(policy_id)


GLOBAL = Catalog()


def policy(id: str, title: str, rationale: str, severity: Severity, parameters: tuple[Parameter, ...] = (),
           needs: Needs | None = None) -> Callable[[StaticCheck], StaticCheck]:
    """Declare a global static policy: the decorated function yields its violations for one product."""

    def register(check: StaticCheck) -> StaticCheck:
        GLOBAL.add(Policy(id, title, rationale, severity, "static", parameters=parameters, check=check, needs=needs))
        return check

    return register
