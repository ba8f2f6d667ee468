"""The platform's global static policies: pure functions over one product's manifest and the mesh around it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from platform_resources.governance.context import ProductContext, teams_file
from platform_resources.governance.policy import Parameter, Violation, policy
from platform_resources.linear_regex import matching
from platform_resources.manifest import EMAIL, SNAKE, Freshness

SNAKE_NAME = re.compile(rf"^{SNAKE}$")

# Column names that suggest personal data. Person-name words only: `p_name` (a part) or `n_name` (a nation) is
# not personal, `first_name` or `customer_name` is. A domain adds its own patterns (a superset tightens).
PII_NAME_PATTERNS = (
    r"(^|_)(first|last|full|middle|given|family|maiden|sur|customer|contact|person|user|employee|patient|member)_?name($|_)",
    r"(^|_)e_?mail(_?address)?($|_)",
    r"(^|_)(phone|mobile|telephone|fax)($|_)",
    r"(^|_)(address|street|postcode|postal_code|zip|zip_code)($|_)",
    r"(^|_)(birth|birthday|birthdate|birth_date|date_of_birth|dob)($|_)",
    r"(^|_)(ssn|social_security|passport|national_id|tax_id|iban|credit_card|card_number)($|_)",
    r"(^|_)ip_address($|_)",
)


@policy("MESH-OWN-001", "Owner team and contact", "Every product needs someone accountable and reachable.", "error")
def owner_is_known(ctx: ProductContext, params: dict[str, Any]) -> Iterator[Violation]:
    owner = ctx.manifest.owner
    if not owner.team:
        yield Violation("the product has no owner team; add 'owner: {team: <team>, email: <mailbox>}'", ("owner",))
    elif owner.team not in ctx.teams:
        path = teams_file(ctx.registry)
        known = f"known: {', '.join(sorted(ctx.teams))}" if path.exists() else f"there is no teams file at {path}"
        yield Violation(f"owner team '{owner.team}' is not a known team ({known}); use a team from {path}, "
                        "or ask governance to add yours", ("owner", "team"))
    if not owner.email:
        yield Violation("the product has no contact email; add 'owner: {email: <team mailbox>}'", ("owner",))
    elif not EMAIL.match(owner.email):
        yield Violation(f"owner email '{owner.email}' is not an email address; use a team mailbox like "
                        "data-team@example.com", ("owner", "email"))


@policy("MESH-DOC-001", "Descriptions", "Consumers cannot use what they cannot understand.", "warning",
        (Parameter("min_length", 1, "higher", "fewest characters a description may have"),))
def descriptions_are_present(ctx: ProductContext, params: dict[str, Any]) -> Iterator[Violation]:
    shortest = params["min_length"]

    def short(text: str) -> bool:
        return len(text.strip()) < shortest

    if short(ctx.manifest.description):
        yield Violation(f"the product description has fewer than {shortest} characters; describe what it serves "
                        "and for whom", ("description",))
    for i, port in ctx.ports():
        if short(port.description):
            yield Violation(f"output port {port.name} has no description (at least {shortest} characters); "
                            "say what one row is and how to join it", ("output_ports", i, "name"))
        for j, column in enumerate(port.contract.columns):
            if short(column.description):
                yield Violation(f"column {port.name}.{column.name} has no description (at least {shortest} "
                                "characters); add 'description:' to the column", ("output_ports", i, "contract", "columns", j))


@policy("MESH-ID-001", "Ids", "Predictable ids make every product and port addressable across the mesh.", "error")
def ids_follow_the_convention(ctx: ProductContext, params: dict[str, Any]) -> Iterator[Violation]:
    manifest = ctx.manifest
    if not all(SNAKE_NAME.match(part) for part in manifest.id.split(".")):
        yield Violation(f"product id '{manifest.id}' is not domain.product in snake_case; write it like "
                        f"{'.'.join(_snake(part) for part in manifest.id.split('.'))}", ("id",))
    if manifest.domain != ctx.location:
        yield Violation(f"product id '{manifest.id}' names domain '{manifest.domain}' but the code location "
                        f"'{ctx.location}' defines it; start the id with '{ctx.location}.' or move the file to "
                        f"the code location of '{manifest.domain}'", ("id",))
    for kind in ("output_ports", "input_ports"):
        for i, port in enumerate(getattr(manifest, kind)):
            if not SNAKE_NAME.match(port.name):
                yield Violation(f"port name '{port.name}' is not snake_case; rename it, like {_snake(port.name)}",
                                (kind, i, "name"))


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


@policy("MESH-CON-001", "Contract with a primary key", "Consumers join and deduplicate on a declared key.", "error")
def contract_has_primary_key(ctx: ProductContext, params: dict[str, Any]) -> Iterator[Violation]:
    for i, port in ctx.ports():
        if not port.contract.primary_key:
            yield Violation(f"output port {port.name} has a contract without a primary key; add "
                            "'primary_key: [<columns>]' to its contract", ("output_ports", i, "contract"))


@policy("MESH-CLS-001", "Columns classified", "Access and masking decisions start from a classification.", "error")
def columns_are_classified(ctx: ProductContext, params: dict[str, Any]) -> Iterator[Violation]:
    for i, port in ctx.ports():
        for j, column in enumerate(port.contract.columns):
            if column.classification is None:
                yield Violation(f"column {port.name}.{column.name} is not classified; add 'classification:' "
                                "public, internal, confidential or pii", ("output_ports", i, "contract", "columns", j))


@policy("MESH-CLS-002", "Personal data classified pii",
        "A column named like personal data is personal data until someone proves otherwise.", "error",
        (Parameter("pii_name_patterns", list(PII_NAME_PATTERNS), "superset",
                   "regular expressions (case-insensitive) of column names that suggest personal data"),))
def personal_names_are_pii(ctx: ProductContext, params: dict[str, Any]) -> Iterator[Violation]:
    # RE2: a domain adds patterns, and none may hang the check (settings refuse those RE2 cannot compile).
    names = [c.name for _, port in ctx.ports() for c in port.contract.columns]
    personal = matching(params["pii_name_patterns"], names, ignore_case=True)
    for i, port in ctx.ports():
        for j, column in enumerate(port.contract.columns):
            if column.classification not in (None, "pii") and column.name in personal:
                yield Violation(f"column {port.name}.{column.name} looks like personal data but is classified "
                                f"{column.classification}; classify it pii (and serve it on a restricted port)",
                                ("output_ports", i, "contract", "columns", j, "classification"))


def _holds_pii(port) -> bool:
    return any(c.classification == "pii" for c in port.contract.columns)


@policy("MESH-PII-001", "No personal data on public ports", "Anyone may read a public port.", "error")
def no_pii_on_public_ports(ctx: ProductContext, params: dict[str, Any]) -> Iterator[Violation]:
    for i, port in ctx.ports():
        if port.visibility == "public" and _holds_pii(port):
            pii = [c.name for c in port.contract.columns if c.classification == "pii"]
            yield Violation(f"public port {port.name} serves pii columns {pii}; move them to a restricted port "
                            "or make this port restricted (a hashed identifier is still personal data)", ("output_ports", i, "visibility"))


def _approved(ctx: ProductContext, input_port, producer, port) -> list[str]:
    """What is missing for this product to read a restricted port of another domain (empty: nothing)."""
    missing = []
    if input_port.access_request is None:
        missing.append(f"add 'access_request: {{reason: ...}}' to input port {input_port.name}")
    if not port.approves(ctx.manifest.id):
        missing.append(f"ask {producer.owner.label} to add {ctx.manifest.id} to approved_access of port {port.name}")
    return missing


def _cross_domain_reads(ctx: ProductContext) -> Iterator[tuple[int, Any, Any, Any]]:
    """(index, input port, producer manifest, producer port) of every input port reading another domain."""
    for i, input_port in enumerate(ctx.manifest.input_ports):
        if not input_port.source:
            continue
        try:
            producer, port = ctx.registry.port(input_port.source)
        except LookupError:
            continue  # unresolvable inputs are MESH-REG-001 findings
        if ctx.registry.location_of(producer.id) != ctx.location:
            yield i, input_port, producer, port


@policy("MESH-PII-002", "Personal data only with approved access",
        "Personal data is shared for a stated purpose, approved by its owner.", "error")
def pii_needs_approved_access(ctx: ProductContext, params: dict[str, Any]) -> Iterator[Violation]:
    for i, input_port, producer, port in _cross_domain_reads(ctx):
        if port.visibility == "restricted" and _holds_pii(port):
            missing = _approved(ctx, input_port, producer, port)
            if missing:
                yield Violation(f"input port {input_port.name} reads personal data from {input_port.source} without "
                                f"an approved access request; {' and '.join(missing)}", ("input_ports", i))


@policy("MESH-ACC-001", "No unapproved reads of other domains' internal or restricted ports",
        "A domain decides who reads what it has not made public.", "error")
def inputs_are_approved(ctx: ProductContext, params: dict[str, Any]) -> Iterator[Violation]:
    for i, input_port, producer, port in _cross_domain_reads(ctx):
        if port.visibility == "internal":
            yield Violation(f"input port {input_port.name} reads {input_port.source}, which is internal to domain "
                            f"'{producer.domain}'; read one of its public ports, or ask {producer.owner.label} for a "
                            "restricted port with approved access", ("input_ports", i))
        elif port.visibility == "restricted" and not _holds_pii(port):  # pii ports: MESH-PII-002
            missing = _approved(ctx, input_port, producer, port)
            if missing:
                yield Violation(f"input port {input_port.name} reads restricted {input_port.source} without an "
                                f"approved access request; {' and '.join(missing)}", ("input_ports", i))


@policy("MESH-REG-002", "Access approved for known consumers",
        "An approval for a product nobody publishes is a typo that leaves the real consumer out, or a grant waiting "
        "for whoever takes that id next.", "warning")
def approvals_name_known_consumers(ctx: ProductContext, params: dict[str, Any]) -> Iterator[Violation]:
    registry = ctx.registry
    known = set(registry.products) | set(registry.broken) | set(registry.problems)
    for i, port in ctx.ports():
        for j, approval in enumerate(port.approved_access):
            if approval.consumer not in known:
                yield Violation(f"port {port.name} approves access for {approval.consumer}, which no domain publishes; "
                                "fix the product id, or remove the approval", ("output_ports", i, "approved_access", j))


@policy("MESH-SLO-001", "Public ports declare freshness", "Consumers plan around how fresh a port is promised to be.",
        "warning",
        (Parameter("visibilities", ["public"], "superset", "port visibilities that must declare freshness"),
         Parameter("max_age_limit", None, "lower", "the longest freshness max_age allowed, like 26h (none: any)",
                   kind="duration")))
def public_ports_declare_freshness(ctx: ProductContext, params: dict[str, Any]) -> Iterator[Violation]:
    limit = params["max_age_limit"]
    for i, port in ctx.ports():
        if port.visibility not in params["visibilities"]:
            continue
        if port.freshness is None:
            yield Violation(f"{port.visibility} port {port.name} declares no freshness SLO; add "
                            "'freshness: {max_age: 26h}' (or a cron)", ("output_ports", i, "name"))
        elif limit:
            # A cron promise is only as fresh as its window: both count against the limit.
            promised = port.freshness.max_age or port.freshness.cron_window
            if Freshness.to_timedelta(promised) > Freshness.to_timedelta(limit):
                yield Violation(f"port {port.name} promises freshness within {promised}, longer than the allowed "
                                f"{limit}; publish more often and tighten its freshness", ("output_ports", i, "freshness"))


def _upstream(ctx: ProductContext) -> Iterator[tuple[int, Any, Any]]:
    for i, input_port in enumerate(ctx.manifest.input_ports):
        producer = ctx.registry.products.get(input_port.source.rsplit(".", 1)[0]) if input_port.source else None
        if producer is not None:
            yield i, input_port, producer


@policy("MESH-LIFE-001", "Inputs read active products; retired products have no consumers",
        "A consumer of a draft or retired product builds on something that is not served.", "error")
def inputs_are_active(ctx: ProductContext, params: dict[str, Any]) -> Iterator[Violation]:
    for i, input_port, producer in _upstream(ctx):
        if producer.status in ("draft", "retired"):
            yield Violation(f"input port {input_port.name} reads {producer.id}, which is {producer.status}; read an "
                            "active product instead", ("input_ports", i))
    if ctx.manifest.status == "retired":
        consumers = sorted({c for p in ctx.manifest.output_ports
                            for c in ctx.registry.consumers(f"{ctx.manifest.id}.{p.name}")})
        if consumers:
            yield Violation(f"the product is retired but {consumers} still read it; they must move off it first, "
                            "or keep it deprecated", ("status",))


@policy("MESH-LIFE-002", "Inputs avoid deprecated products",
        "A deprecated product will be retired; its consumers need to move.", "warning")
def inputs_avoid_deprecated(ctx: ProductContext, params: dict[str, Any]) -> Iterator[Violation]:
    for i, input_port, producer in _upstream(ctx):
        if producer.status == "deprecated":
            when = f"on {producer.deprecation_date}" if producer.deprecation_date else "(no retirement date declared)"
            to = f"its replacement {producer.replaced_by}" if producer.replaced_by else "its replacement"
            yield Violation(f"input port {input_port.name} reads {producer.id}, which is deprecated and will be "
                            f"retired {when}; move to {to}", ("input_ports", i))
    if ctx.manifest.status == "deprecated" and ctx.manifest.deprecation_date is None:
        yield Violation("the product is deprecated without a deprecation_date; add 'deprecation_date: YYYY-MM-DD' "
                        "so consumers know when it goes", ("status",))


@policy("MESH-LIFE-003", "A replacement is an existing product that serves",
        "Consumers told to move to a product that does not exist, or is retired, have nowhere to go.", "error")
def replacement_exists(ctx: ProductContext, params: dict[str, Any]) -> Iterator[Violation]:
    replacement = ctx.manifest.replaced_by
    if replacement is None:
        return
    target = ctx.registry.products.get(replacement)
    if target is None:
        yield Violation(f"replaced_by names {replacement}, which is no product of the mesh; name an existing "
                        "product (see mesh list)", ("replaced_by",))
    elif target.status == "retired":
        yield Violation(f"replaced_by names {replacement}, which is retired itself; name the product that serves now",
                        ("replaced_by",))


@policy("MESH-PART-001", "A domain's partitioned ports share one partitioning",
        "A domain's job runs one partition range at a time: ports partitioned otherwise could never run in it.", "error")
def one_partitioning_per_domain(ctx: ProductContext, params: dict[str, Any]) -> Iterator[Violation]:
    from platform_resources.partitions import partitioned_port, same_partitions

    first = partitioned_port(ctx.registry.products_of(ctx.manifest.domain))
    for i, port in ctx.ports():
        if first is not None and port.partitioning and ctx.manifest.processed and \
                not same_partitions(port.partitioning, first.partitioning):
            owner = next(m.id for m in ctx.registry.products_of(ctx.manifest.domain) if first in m.output_ports)
            yield Violation(f"output port {port.name} is partitioned by {port.partitioning.by} from "
                            f"{port.partitioning.start or port.partitioning.values}, but {owner}.{first.name} is by "
                            f"{first.partitioning.by} from {first.partitioning.start or first.partitioning.values}; "
                            "partition every port of the domain the same way (or move this product to a domain "
                            "of its own)", ("output_ports", i, "partitioning"))


@policy("MESH-VER-001", "Breaking contract changes bump the major version",
        "Consumers trust that a minor or patch release does not break them.", "error", needs="base")
def breaking_changes_bump_major(ctx: ProductContext, params: dict[str, Any]) -> Iterator[Violation]:
    from platform_resources.governance.contract_changes import breaking_changes, major_bumped

    changes = breaking_changes(ctx.base, ctx.manifest)
    old, new = ctx.base.version, ctx.manifest.version  # the product's semver; a port's contract.version is informational
    if changes and not major_bumped(old, new):
        listed = "; ".join(f"{c.port}: {c.change}" for c in changes)
        yield Violation(f"breaking contract changes since the base revision ({listed}) but the version went from "
                        f"{old} to {new}; bump the major version (to {int(old.split('.')[0]) + 1}.0.0) and tell "
                        "the consumers", ("version",))
