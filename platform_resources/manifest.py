"""The data product manifest: a pydantic model and a loader whose errors name file, line, field and fix."""

from __future__ import annotations

import functools
import re
import zoneinfo
from collections import Counter
from collections.abc import Iterable
from datetime import date, timedelta
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from platform_resources.linear_regex import regex_problem
from platform_resources.yaml_lines import YamlRefused, YamlWithLines, load_yaml_with_lines

SNAKE = r"[a-z][a-z0-9_]*"
# Structure only: what Dagster accepts in an asset key. Policy MESH-ID-001 asks for snake_case.
NAME = r"[A-Za-z0-9_]+"
PRODUCT_ID = re.compile(rf"^({NAME})\.({NAME})$")
PORT_ID = re.compile(rf"^({NAME})\.({NAME})\.({NAME})$")
OPERATIONAL_SOURCE = re.compile(rf"^({SNAKE})\.({SNAKE})$")
SEMVER = re.compile(r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DURATION = re.compile(r"^(\d+)\s*([smhd])$")
COLUMN_TYPE = re.compile(
    r"^(boolean|tinyint|smallint|integer|bigint|float|double|varchar|date|timestamp|timestamptz"
    r"|decimal\(\s*\d+\s*,\s*\d+\s*\))$"
)
COLUMN_TYPES_HELP = "boolean, integer, bigint, double, decimal(P,S), varchar, date, timestamp or timestamptz"
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_DURATION = timedelta(days=3650)  # ten years: longer is a typo, and dates past it overflow
# The largest sample manifest has 6 kB; a file at this limit takes every command about 0.7 s to parse.
MAX_MANIFEST_BYTES = 256 * 1024
# A dbt model is named by its file name: no folder, no '..', nothing a shell or a selector reads as syntax.
DBT_MODEL = re.compile(rf"^{NAME}$")
TIME_TYPES = ("date", "timestamp", "timestamptz")  # what an actual time column may hold


class ManifestError(ValueError):
    """A manifest problem a person can fix: where it is, what is wrong, what to do."""

    def __init__(self, file: Path | str, line: int, field: str, problem: str, fix: str):
        field, problem, fix = _clip(field), _clip(problem), _clip(fix)  # they quote the file, which may be huge
        self.file, self.line, self.field, self.problem, self.fix = str(file), line, field, problem, fix
        super().__init__(f"{file}:{line}: field '{field}': {problem}. Fix: {fix}")


def _clip(text: str, limit: int = 400) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


class ManifestErrors(ValueError):
    """Every problem found in one manifest file."""

    def __init__(self, errors: list[ManifestError]):
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


class _Model(BaseModel):
    # Unknown fields are typos more often than not: reject them.
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Owner(_Model):
    # Optional here so a product without an owner still loads; policy MESH-OWN-001 reports it.
    team: str | None = None
    email: str | None = None

    @property
    def label(self) -> str:
        return f"{self.team or 'no team'} <{self.email or 'no email'}>"

    @property
    def dagster_owners(self) -> list[str]:
        owners = [f"team:{self.team}"] if self.team and re.fullmatch(r"[A-Za-z0-9_-]+", self.team) else []
        return owners + ([self.email] if self.email and EMAIL.match(self.email) else [])


Classification = Literal["public", "internal", "confidential", "pii"]


class Column(_Model):
    # description and classification are governed by policies (MESH-DOC-001, MESH-CLS-001), not by the schema.
    name: str = Field(min_length=1)
    type: str
    description: str = ""
    nullable: bool = True
    classification: Classification | None = None
    masking: Literal["hashed", "redacted"] | None = Field(
        default=None, description="the port serves this column masked; checked on the data at every publish")

    @field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        normalized = value.strip().lower()
        if not COLUMN_TYPE.match(normalized):
            raise ValueError(f"unknown column type '{value}'; use one of {COLUMN_TYPES_HELP}")
        return re.sub(r"\s+", "", normalized)

    @model_validator(mode="after")
    def _masked_columns_are_text(self) -> "Column":
        if self.masking and self.type != "varchar":
            raise ValueError(f"column {self.name} is masked ({self.masking}) but typed {self.type}; a masked value is "
                             "text: set type: varchar")
        return self


class Contract(_Model):
    version: str | None = None
    columns: list[Column] = Field(min_length=1)
    primary_key: list[str] = Field(default_factory=list)  # required by policy MESH-CON-001

    @field_validator("columns")
    @classmethod
    def _unique_columns(cls, columns: list[Column]) -> list[Column]:
        duplicates = _repeated(c.name for c in columns)
        if duplicates:
            raise ValueError(f"columns {duplicates} are declared twice; keep one declaration of each")
        return columns

    @field_validator("primary_key")
    @classmethod
    def _keys_are_columns(cls, key: list[str], info: ValidationInfo) -> list[str]:
        names = [c.name for c in info.data.get("columns", [])]
        missing = [k for k in key if k not in names]
        if names and missing:
            raise ValueError(f"primary key columns {missing} are not among the declared columns {names}; "
                             "list only declared columns in primary_key, or declare the missing ones")
        return key


def _repeated(names: Iterable[str]) -> list[str]:
    return sorted(name for name, count in Counter(names).items() if count > 1)


def parse_duration(value: str) -> timedelta:
    """'26h' -> 26 hours; ValueError ("problem; fix") for text that is not a positive duration of at most ten years."""
    match = DURATION.match(str(value).strip())
    shown = value if len(str(value)) <= 40 else f"{str(value)[:20]}...{str(value)[-5:]}"
    if not match:
        raise ValueError(f"'{shown}' is not a duration; write a number and a unit s, m, h or d, like 26h")
    digits, unit = match.groups()
    digits = digits.lstrip("0") or "0"
    if digits == "0":
        raise ValueError(f"'{shown}' is a zero duration; write a positive one, like 26h")
    # Count digits before converting: a number that long would overflow a timedelta.
    if len(digits) > 12 or int(digits) * _UNIT_SECONDS[unit] > MAX_DURATION.total_seconds():
        raise ValueError(f"'{shown}' is longer than ten years ({MAX_DURATION.days}d); write a shorter duration")
    return timedelta(seconds=int(digits) * _UNIT_SECONDS[unit])


def _check_duration(value: str | None) -> str | None:
    if value is not None:
        parse_duration(value)
    return value


def _check_cron(cron: str) -> str | None:
    """Why Dagster would refuse this cron schedule, or None."""
    from dagster._utils.schedules import is_valid_cron_string  # the check FreshnessPolicy.cron makes

    if len(cron.split()) != 5 or not is_valid_cron_string(cron):
        return (f"'{cron}' is not a cron schedule; write five fields (minute hour day month weekday), "
                "like '0 6 * * *' for 06:00 daily")
    return None


@functools.cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


class Freshness(_Model):
    """How fresh the port must be: a maximum age, or a cron deadline (published by each tick, plus a grace)."""

    max_age: str | None = None
    warn_after: str | None = None
    cron: str | None = None
    cron_window: str = "1d"  # with cron: the port must have been published within this window before each tick
    cron_timezone: str = "UTC"

    @field_validator("max_age", "warn_after", "cron_window")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        return _check_duration(value)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        problem = _check_cron(value) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("cron_timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        if value not in _time_zones():
            raise ValueError(f"'{value}' is not an IANA time zone; write one like UTC or Europe/Berlin")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> "Freshness":
        if (self.max_age is None) == (self.cron is None):
            raise ValueError("freshness is either 'max_age: 26h' or 'cron: \"0 6 * * *\"'; give exactly one")
        return self

    @model_validator(mode="after")
    def _dagster_accepts_the_windows(self) -> "Freshness":
        """The bounds of Dagster's FreshnessPolicy, said in the manifest's words before the code location loads."""
        minute = timedelta(minutes=1)
        if self.max_age is not None:
            max_age = self.to_timedelta(self.max_age)
            warn = self.warn_after and self.to_timedelta(self.warn_after)
            if max_age < minute or (warn and warn < minute):
                raise ValueError("max_age and warn_after are at least one minute; write 1m or more")
            if warn and warn >= max_age:
                raise ValueError(f"warn_after {self.warn_after} is not shorter than max_age {self.max_age}; a warning "
                                 "comes before the failure: make warn_after shorter than max_age, or remove it")
            return self
        if self.warn_after is not None:
            raise ValueError("warn_after only applies with max_age; remove it, or write max_age instead of cron")
        from dagster._utils.schedules import get_smallest_cron_interval

        window, interval = self.to_timedelta(self.cron_window), get_smallest_cron_interval(self.cron)
        if not minute <= window <= interval:
            raise ValueError(f"cron_window {self.cron_window} must be between one minute and the shortest gap between "
                             f"two ticks of '{self.cron}' ({interval}); shorten it, or tick less often")
        return self

    @staticmethod
    def to_timedelta(value: str) -> timedelta:
        return parse_duration(value)


class _Slo(_Model):
    severity: Literal["warning", "error"] = "warning"


class TimelinessSlo(_Slo):
    """At most this gap between the latest actual time in the data and the processing time."""

    max_delay: str

    @field_validator("max_delay")
    @classmethod
    def _duration(cls, value: str) -> str:
        return _check_duration(value)


class InputRatio(_Model):
    input_port: str
    min_ratio: float = Field(gt=0)


class CompletenessSlo(_Slo):
    """Minimum share of non-null values per column, and/or a minimum row count relative to an input port."""

    columns: dict[str, float] = Field(default_factory=dict)
    rows_vs_input: InputRatio | None = None

    @field_validator("columns")
    @classmethod
    def _shares(cls, value: dict[str, float]) -> dict[str, float]:
        wrong = {c: s for c, s in value.items() if not 0 <= s <= 1}
        if wrong:
            raise ValueError(f"completeness shares {wrong} are not between 0 and 1; write 0.99 for 99 %")
        return value


class VolumeSlo(_Slo):
    """Row-count bounds, and/or the largest relative change against the previous publish (0.5 = 50 %)."""

    min_rows: int | None = Field(default=None, ge=0)
    max_rows: int | None = Field(default=None, ge=0)
    max_change: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _bounds_in_order(self) -> "VolumeSlo":
        if self.min_rows is not None and self.max_rows is not None and self.min_rows > self.max_rows:
            raise ValueError(f"min_rows {self.min_rows} is more than max_rows {self.max_rows}; no row count passes "
                             "both: swap them or fix one")
        return self


class Slos(_Model):
    timeliness: TimelinessSlo | None = None
    completeness: CompletenessSlo | None = None
    volume: VolumeSlo | None = None


class AccessApproval(_Model):
    consumer: str
    reason: str = Field(min_length=1)

    @field_validator("consumer")
    @classmethod
    def _consumer(cls, value: str) -> str:
        if not PRODUCT_ID.match(value):
            raise ValueError(f"'{value}' is not a product id; write the consuming product as domain.product")
        return value


MAX_RETAINED_VERSIONS = 10_000  # a larger count is a typo for "keep everything", which is the default


class Retention(_Model):
    """Which older versions a port keeps; the version it serves is always kept, and everything without retention.
    With both fields a version stays while either keeps it (expiry deletes only what both let go)."""

    keep: str | None = Field(default=None, description="keep versions published within this duration, like 90d")
    versions: int | None = Field(default=None, description="keep this many latest versions, the served one included")

    @field_validator("keep")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        return _check_duration(value)

    @field_validator("versions")
    @classmethod
    def _count(cls, value: int | None) -> int | None:
        if value is not None and not 1 <= value <= MAX_RETAINED_VERSIONS:
            raise ValueError(f"versions {value} is not between 1 and {MAX_RETAINED_VERSIONS}; write how many latest "
                             "versions to keep (1 keeps only the one served), or remove retention to keep every one")
        return value

    @model_validator(mode="after")
    def _some_rule(self) -> "Retention":
        if self.keep is None and self.versions is None:
            raise ValueError("retention needs 'keep: 90d' or 'versions: 10' (or both); remove it to keep every version")
        return self


MAX_STATIC_PARTITIONS = 10_000  # Dagster keeps every key of a static partitioning in the definition


class Partitioning(_Model):
    """How a port is split into partitions published one at a time: by day or month of a date column (usually the
    actual time), or by the values of a column. It becomes the port's Dagster PartitionsDefinition (and its dbt
    models'), and its Iceberg table's partition spec."""

    by: Literal["day", "month", "value"]
    column: str | None = Field(default=None, description="the partition column; defaults to the port's actual_time")
    start: date | None = Field(default=None, description="by day or month: the first partition, like 1992-01-01")
    end: date | None = Field(default=None, description="by day or month: the end (exclusive); none: up to today")
    values: list[str] = Field(default_factory=list, description="by value: every partition, one per value")

    @model_validator(mode="after")
    def _complete(self) -> "Partitioning":
        if self.by == "value":
            if self.start or self.end:
                raise ValueError("start and end are for partitioning by day or month; by value lists its values")
            if not self.values or len(self.values) > MAX_STATIC_PARTITIONS:
                raise ValueError(f"partitioning by value needs 'values:', the list of partitions (1 to "
                                 f"{MAX_STATIC_PARTITIONS:,}), like [EUROPE, ASIA]")
            if duplicates := _repeated(self.values):
                raise ValueError(f"partition values {duplicates} are listed twice; list each once")
            return self
        if self.values:
            raise ValueError(f"values are for partitioning by value; by {self.by} takes start (and end)")
        if self.start is None:
            raise ValueError(f"partitioning by {self.by} needs 'start:', the first partition's date, like 1992-01-01")
        if self.by == "month" and self.start.day != 1:
            raise ValueError(f"start {self.start} is not the first day of a month; monthly partitions start on the 1st, "
                             f"like {self.start.replace(day=1)}")
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"end {self.end} is not after start {self.start}; end is the first date after the last "
                             "partition")
        return self


class OutputPort(_Model):
    name: str = Field(pattern=rf"^{NAME}$")
    description: str = ""
    visibility: Literal["public", "restricted", "internal"]
    model: str | None = Field(default=None, description="dbt model that builds the port; defaults to the port name")
    contract: Contract
    actual_time: str = Field(description="column holding the actual time, or 'snapshot'")
    freshness: Freshness | None = None
    slos: Slos = Field(default_factory=Slos)
    approved_access: list[AccessApproval] = Field(default_factory=list)
    may_be_empty: bool = Field(default=False, description="publishing zero rows is allowed (policy MESH-DATA-004)")
    retention: Retention | None = Field(default=None, description="older versions to keep; none: keep every version")
    partitioning: Partitioning | None = Field(default=None, description="publish the port a partition at a time")

    @property
    def dbt_model(self) -> str:
        return self.model or self.name

    @property
    def partition_column(self) -> str | None:
        if self.partitioning is None:
            return None
        return self.partitioning.column or self.actual_time

    def approves(self, consumer: str | None) -> bool:
        """The producer's half of access to a restricted port: the consumer is on approved_access."""
        return any(a.consumer == consumer for a in self.approved_access)

    @field_validator("model")
    @classmethod
    def _model_is_a_name(cls, value: str | None) -> str | None:
        if value is not None and not DBT_MODEL.match(value):
            raise ValueError(f"model '{value}' is not a dbt model name; write the model's file name without .sql "
                             "and without a folder or '..', like orders")
        return value

    @field_validator("actual_time")
    @classmethod
    def _actual_time_is_a_column(cls, value: str, info: ValidationInfo) -> str:
        contract = info.data.get("contract")
        types = {c.name: c.type for c in contract.columns} if contract else {}
        if not contract or value == "snapshot":
            return value
        if value not in types:
            raise ValueError(f"actual_time '{value}' is neither 'snapshot' nor a declared column {list(types)}; "
                             "name the column that holds when each fact happened, or write 'snapshot'")
        if types[value] not in TIME_TYPES:
            raise ValueError(f"actual_time '{value}' is a {types[value]} column, not a point in time; name a column "
                             f"typed {', '.join(TIME_TYPES)}, or write 'snapshot'")
        return value

    @field_validator("slos")
    @classmethod
    def _slo_columns_exist(cls, value: Slos, info: ValidationInfo) -> Slos:
        contract = info.data.get("contract")
        names = [c.name for c in contract.columns] if contract else []
        unknown = [c for c in (value.completeness.columns if value.completeness else {}) if contract and c not in names]
        if unknown:
            raise ValueError(f"completeness columns {unknown} are not declared columns {names}; use declared columns")
        return value

    @field_validator("partitioning")
    @classmethod
    def _partition_column_fits(cls, value: Partitioning | None, info: ValidationInfo) -> Partitioning | None:
        contract, actual_time = info.data.get("contract"), info.data.get("actual_time")
        if value is None or contract is None:
            return value
        column = value.column or actual_time
        if column in (None, "snapshot"):
            raise ValueError("partitioning needs a column: set 'column:' (the actual_time is 'snapshot')")
        declared = {c.name: c for c in contract.columns}
        if column not in declared:
            raise ValueError(f"partition column '{column}' is not a declared column {list(declared)}; name one")
        wanted = ("date", "timestamp", "timestamptz") if value.by != "value" else ("varchar", "integer", "bigint")
        if declared[column].type not in wanted:
            raise ValueError(f"partition column '{column}' is a {declared[column].type} column; partitioning by "
                             f"{value.by} needs a {' or '.join(wanted)} column")
        if declared[column].nullable:
            raise ValueError(f"partition column '{column}' is nullable: a row without a value is in no partition; "
                             "declare it 'nullable: false'")
        return value

    @field_validator("approved_access")
    @classmethod
    def _approvals_need_restricted(cls, value: list[AccessApproval], info: ValidationInfo) -> list[AccessApproval]:
        if value and info.data.get("visibility") != "restricted":
            raise ValueError("approved_access only applies to restricted ports; set visibility: restricted or remove it")
        return value


class AccessRequest(_Model):
    reason: str = Field(min_length=1)


class InputPort(_Model):
    name: str = Field(pattern=rf"^{NAME}$")
    source: str | None = Field(default=None, alias="from", description="domain.product.port of another product")
    operational: str | None = Field(default=None, description="system.table of an operational system")
    access_request: AccessRequest | None = None

    @model_validator(mode="after")
    def _one_source(self) -> InputPort:
        if (self.source is None) == (self.operational is None):
            raise ValueError("an input port reads either 'from: domain.product.port' or 'operational: system.table'; give exactly one")
        if self.source is not None and not PORT_ID.match(self.source):
            raise ValueError(f"'from: {self.source}' is not a port id; write domain.product.port in snake_case")
        if self.operational is not None and not OPERATIONAL_SOURCE.match(self.operational):
            raise ValueError(f"'operational: {self.operational}' is not a source; write system.table in snake_case")
        return self


class Waiver(_Model):
    """Accept a warning-severity finding of one policy for this product, for a while and for a reason."""

    policy: str
    reason: str = Field(min_length=1)
    expires: date


LOCAL_POLICY_ID = re.compile(r"^[A-Z][A-Z0-9]*-[0-9]{3}$")
LOCAL_RULES = ("require_tags", "column_names", "rows_satisfy")


class LocalPolicy(_Model):
    """A domain's own policy, declared in the manifest: one rule, static or runtime."""

    id: str
    title: str = Field(min_length=1)
    rationale: str = Field(min_length=1)
    severity: Literal["warning", "error"]
    require_tags: list[str] | None = Field(default=None, description="static: the product carries these tags")
    column_names: str | None = Field(default=None, description="static: every output column name matches this regex")
    rows_satisfy: str | None = Field(default=None, description="runtime: every row satisfies this SQL condition")
    ports: list[str] | None = Field(default=None, description="with rows_satisfy: only these output ports")

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not LOCAL_POLICY_ID.match(value) or value.startswith("MESH-"):
            raise ValueError(f"'{value}' is not a local policy id; write your domain in capitals and three digits, "
                             "like FINANCE-001 (MESH- ids belong to the platform's global policies)")
        return value

    @field_validator("column_names")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        problem = regex_problem(value) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _one_rule(self) -> "LocalPolicy":
        given = [rule for rule in LOCAL_RULES if getattr(self, rule) is not None]
        if len(given) != 1:
            raise ValueError(f"a local policy has exactly one rule, found {given or 'none'}; use one of {list(LOCAL_RULES)}")
        return self

    @property
    def phase(self) -> str:
        return "runtime" if self.rows_satisfy is not None else "static"


class Governance(_Model):
    """Local governance: tighter thresholds and severities for global policies, waivers, local policies.

    A local setting may only tighten a global policy; the policy engine reports (and ignores) one that relaxes it.
    """

    thresholds: dict[str, dict[str, object]] = Field(default_factory=dict)
    severities: dict[str, Literal["warning", "error"]] = Field(default_factory=dict)
    waivers: list[Waiver] = Field(default_factory=list)
    policies: list[LocalPolicy] = Field(default_factory=list)

    @field_validator("policies")
    @classmethod
    def _unique_ids(cls, policies: list[LocalPolicy]) -> list[LocalPolicy]:
        duplicates = _repeated(p.id for p in policies)
        if duplicates:
            raise ValueError(f"local policy ids {duplicates} are used twice; give each policy its own id")
        return policies


class Manifest(_Model):
    id: str
    name: str = Field(min_length=1)
    description: str = ""
    owner: Owner = Field(default_factory=Owner)
    archetype: Literal["source-aligned", "aggregate", "consumer-aligned"]
    # draft, active; deprecated (replaced_by, deprecation_date); dormant (serves, no new processing);
    # retired (serves nothing, no consumers left).
    status: Literal["draft", "active", "deprecated", "dormant", "retired"]
    deprecation_date: date | None = Field(default=None, description="with status deprecated: when it will be retired")
    replaced_by: str | None = Field(default=None, description="with status deprecated or retired: the product "
                                                              "its consumers move to (domain.product)")
    version: str
    tags: list[str] = Field(default_factory=list)
    input_ports: list[InputPort] = Field(default_factory=list)
    output_ports: list[OutputPort] = Field(min_length=1)
    governance: Governance = Field(default_factory=Governance)
    _lines: YamlWithLines | None = PrivateAttr(default=None)  # set by load_manifest, for findings that cite a line

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not PRODUCT_ID.match(value):
            raise ValueError(f"'{value}' is not a product id; write domain.product in snake_case, like crm.customers")
        return value

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not SEMVER.match(str(value)):
            raise ValueError(f"'{value}' is not a semantic version; write MAJOR.MINOR.PATCH, like 1.0.0")
        return str(value)

    @field_validator("replaced_by")
    @classmethod
    def _replacement_id(cls, value: str | None) -> str | None:
        if value is not None and not PRODUCT_ID.match(value):
            raise ValueError(f"'{value}' is not a product id; write the replacement as domain.product, like crm.customers")
        return value

    @model_validator(mode="after")
    def _replacement_status(self) -> "Manifest":
        if self.replaced_by is not None and self.status not in ("deprecated", "retired"):
            raise ValueError(f"replaced_by is set but the status is {self.status}; set 'status: deprecated' (or "
                             "retired), or remove replaced_by")
        if self.replaced_by == self.id:
            raise ValueError(f"the product is replaced_by itself ({self.id}); name the product that replaces it")
        return self

    @property
    def processed(self) -> bool:
        """Whether runs process the product: a dormant or retired one publishes nothing new."""
        return self.status not in ("dormant", "retired")

    @model_validator(mode="after")
    def _unique_port_names(self) -> Manifest:
        for kind, ports in (("output", self.output_ports), ("input", self.input_ports)):
            duplicates = _repeated(p.name for p in ports)
            if duplicates:
                raise ValueError(f"{kind} port names {duplicates} are used twice; give each port its own name")
        return self

    @model_validator(mode="after")
    def _local_policy_ports_exist(self) -> "Manifest":
        names = [p.name for p in self.output_ports]
        for local in self.governance.policies:
            unknown = [p for p in local.ports or [] if p not in names]
            if local.ports is not None and (unknown or not local.ports):
                raise ValueError(f"local policy {local.id}: ports {unknown or '[]'} are not output ports {names}; "
                                 "list output ports, or remove 'ports' to check every port")
        return self

    @model_validator(mode="after")
    def _slo_inputs_exist(self) -> "Manifest":
        readable = [p.name for p in self.input_ports if p.source]
        for port in self.output_ports:
            ratio = port.slos.completeness and port.slos.completeness.rows_vs_input
            if ratio and ratio.input_port not in readable:
                raise ValueError(f"output port {port.name}: completeness rows_vs_input names input port "
                                 f"'{ratio.input_port}', which is not one of {readable}; name an input port with 'from:'")
        return self

    @property
    def domain(self) -> str:
        return self.id.split(".")[0]

    @property
    def product(self) -> str:
        return self.id.split(".")[1]

    def output_port(self, name: str) -> OutputPort | None:
        return next((p for p in self.output_ports if p.name == name), None)

    def line_of(self, *location: str | int) -> int:
        """The manifest line of a field path like ('output_ports', 0, 'contract'); 1 when unknown."""
        return self._lines.line_of(tuple(location)) if self._lines else 1


# --- loading ---------------------------------------------------------------------------------------

_FIXES = {  # by pydantic error type; "missing" and "literal_error" are described in _describe
    "extra_forbidden": "remove it, or check its spelling against the manifest fields",
    "string_type": "write a text value",
    "list_type": "write a YAML list",
    "bool_type": "write true or false",
    "too_short": "give at least one entry",
    "string_too_short": "write a non-empty text",
    "string_pattern_mismatch": "use snake_case: lower-case letters, digits and underscores",
}


def _describe(error: dict) -> tuple[str, str]:
    """(problem, fix) for one pydantic error."""
    kind = error["type"]
    if kind == "value_error":
        # Our validators write "problem; fix" in one message.
        message = str(error["ctx"]["error"])
        problem, _, fix = message.partition("; ")
        return problem, fix or "correct the value"
    if kind == "missing":
        return "is required but missing", "add it"
    if kind == "literal_error":
        return f"'{error.get('input')}' is not allowed", f"use one of {error['ctx']['expected']}"
    if kind == "extra_forbidden":
        return "is not a manifest field", _FIXES[kind]
    return error["msg"], _FIXES.get(kind, "correct the value")


def _field_name(location: tuple) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(document)"


def load_manifest(path: Path, text: str | None = None) -> Manifest:
    """Load and validate one manifest file (or its `text`, as published), raising ManifestErrors that point at file:line."""
    try:
        parsed = load_yaml_with_lines(path, text, max_bytes=MAX_MANIFEST_BYTES)
    except YamlRefused as exc:
        raise ManifestErrors([ManifestError(path, exc.line, _field_name(exc.location), exc.problem, exc.fix)]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        raise ManifestErrors([ManifestError(path, line, "(document)", f"is not valid YAML ({getattr(exc, 'problem', exc)})",
                                            "fix the YAML syntax at that line (indentation, a missing ':' or quote)")]) from None
    except OSError as exc:
        raise ManifestErrors([ManifestError(path, 1, "(document)", f"cannot be read ({exc.strerror})",
                                            "check that the file exists and is readable")]) from None
    if not isinstance(parsed.data, dict):
        raise ManifestErrors([ManifestError(path, 1, "(document)", "is not a YAML mapping",
                                            "start the file with 'id: domain.product' and the other manifest fields")])
    try:
        manifest = Manifest.model_validate(parsed.data)
        manifest._lines = parsed
        return manifest
    except ValidationError as exc:
        errors = []
        for error in exc.errors():
            location = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            # pydantic reports aliased fields by alias ('from'), which is how the YAML spells them.
            problem, fix = _describe(error)
            errors.append(ManifestError(path, parsed.line_of(location), _field_name(location), problem, fix))
        raise ManifestErrors(errors) from None
