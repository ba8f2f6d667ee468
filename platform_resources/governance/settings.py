"""A product's effective policy settings: the global ones, tightened (never relaxed) by its manifest."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from platform_resources.governance.policy import Catalog, Parameter, Severity, Violation
from platform_resources.linear_regex import regex_problem
from platform_resources.manifest import Manifest, parse_duration

SEVERITY_RANK = {"warning": 0, "error": 1}


@dataclass
class Settings:
    severities: dict[str, Severity] = field(default_factory=dict)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[Violation] = field(default_factory=list)  # reported as MESH-GOV-001


def effective_settings(manifest: Manifest, catalog: Catalog) -> Settings:
    settings = Settings(severities={p.id: p.severity for p in catalog.policies.values()},
                        params={p.id: p.defaults for p in catalog.policies.values()})
    local = manifest.governance
    for policy_id, severity in local.severities.items():
        at = ("governance", "severities", policy_id)
        policy = catalog.get(policy_id)
        if policy is None:
            settings.problems.append(Violation(f"severities names unknown policy {policy_id}; use a policy id from "
                                               "`mesh validate --policies`", at))
        elif SEVERITY_RANK[severity] < SEVERITY_RANK[policy.severity]:
            settings.problems.append(Violation(f"severity {severity} for {policy_id} relaxes the global severity "
                                               f"{policy.severity}; a domain may only raise a severity, so "
                                               f"{policy.severity} applies. Remove the setting", at))
        else:
            settings.severities[policy_id] = severity
    for policy_id, values in local.thresholds.items():
        policy = catalog.get(policy_id)
        if policy is None:
            settings.problems.append(Violation(f"thresholds names unknown policy {policy_id}; use a policy id from "
                                               "`mesh validate --policies`", ("governance", "thresholds", policy_id)))
            continue
        for name, value in values.items():
            at = ("governance", "thresholds", policy_id, name)
            parameter = policy.parameter(name)
            if parameter is None:
                known = [p.name for p in policy.parameters] or "none"
                settings.problems.append(Violation(f"{policy_id} has no threshold '{name}' (its thresholds: {known}); "
                                                   "remove it or fix its name", at))
                continue
            merged, problem = _tighten(parameter, settings.params[policy_id][name], value)
            if problem:
                settings.problems.append(Violation(f"{policy_id} {name}: {problem}", at))
            else:
                settings.params[policy_id][name] = merged
    return settings


def _tighten(parameter: Parameter, current: Any, local: Any) -> tuple[Any, str | None]:
    """The stricter of the global and local value, or a problem when the local one would relax the policy."""
    if parameter.stricter == "superset":
        # A list threshold grows: the local entries are added to the global ones, so it can only tighten.
        if not isinstance(local, list) or not all(isinstance(v, str) for v in local):
            return current, f"write a list of texts to add to {current}"
        if parameter.name.endswith("patterns"):
            for pattern in local:
                problem = regex_problem(pattern)
                if problem:
                    return current, problem
        return [*current, *(v for v in local if v not in current)], None
    local_value, current_value = _comparable(local, parameter.kind), _comparable(current, parameter.kind)
    if local_value is None:
        return current, f"'{local}' is not {'a duration like 26h' if parameter.kind == 'duration' else 'a number'}; write one"
    if current_value is None:  # no global limit: any local limit tightens
        return local, None
    relaxes = local_value < current_value if parameter.stricter == "higher" else local_value > current_value
    if relaxes:
        return current, (f"{local} relaxes the global {current} (a domain may only make it "
                         f"{'higher' if parameter.stricter == 'higher' else 'lower'}), so {current} applies; "
                         "remove the setting or tighten it")
    return local, None


def _comparable(value: Any, kind: str) -> float | None:
    """The value as a number to compare, or None when it is not of the parameter's kind (a number, a duration)."""
    if kind == "number":
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return float(value) if number else None  # NaN compares as neither stricter nor looser: refuse it
    try:
        return parse_duration(value).total_seconds() if isinstance(value, str) else None
    except ValueError:  # not a duration, zero or longer than ten years
        return None
