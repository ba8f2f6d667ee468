"""A port's partitioning: its Dagster partitions, the window of partitions a run publishes, and that window as SQL,
as an Iceberg filter and partition spec, and as the vars a domain's incremental dbt models read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from platform_resources.manifest import OutputPort, Partitioning
from platform_resources.sql_sandbox import identifier, literal

# The vars every partitioned dbt step passes, as dagster-dbt documents partitioned dbt models: an incremental model
# selects `where <column> >= '{{ var("mesh_partition_start") }}' and <column> < '{{ var("mesh_partition_end") }}'`.
VAR_START, VAR_END, VAR_VALUES = "mesh_partition_start", "mesh_partition_end", "mesh_partition_values"
KEY_FORMAT = "%Y-%m-%d"  # Dagster's daily and monthly keys: 1995-03-01


@dataclass(frozen=True)
class PartitionWindow:
    """The partitions one publish replaces: [start, end) of a date column, or a set of values."""

    column: str
    by: str  # day, month or value
    keys: tuple[str, ...]  # the Dagster partition keys, in order
    start: date | None = None
    end: date | None = None  # exclusive
    whole: bool = False  # every partition of the port: the publish replaces the whole table

    @property
    def values(self) -> tuple[str, ...]:
        return self.keys if self.by == "value" else ()

    @property
    def label(self) -> str:
        return self.keys[0] if len(self.keys) == 1 else f"{self.keys[0]}..{self.keys[-1]} ({len(self.keys)} partitions)"


def partitions_def(partitioning: Partitioning):
    """The Dagster PartitionsDefinition of a partitioning (UTC days and months; a static set of values)."""
    from dagster import DailyPartitionsDefinition, MonthlyPartitionsDefinition, StaticPartitionsDefinition

    if partitioning.by == "value":
        return StaticPartitionsDefinition(list(partitioning.values))
    kind = DailyPartitionsDefinition if partitioning.by == "day" else MonthlyPartitionsDefinition
    end = partitioning.end.strftime(KEY_FORMAT) if partitioning.end else None
    return kind(start_date=partitioning.start.strftime(KEY_FORMAT), end_date=end, timezone="UTC")


def partitioning_text(port: OutputPort) -> str:
    """'by month of o_orderdate, from 1992-01-01 to 1998-09-01 (exclusive)', as people read it."""
    partitioning = port.partitioning
    if partitioning.by == "value":
        return f"by value of {port.partition_column}: {', '.join(partitioning.values)}"
    until = f" to {partitioning.end} (exclusive)" if partitioning.end else ", up to the last complete one"
    return f"by {partitioning.by} of {port.partition_column}, from {partitioning.start}{until}"


def same_partitions(a: Partitioning, b: Partitioning) -> bool:
    """Whether two partitionings have the same partitions (their columns may differ)."""
    return (a.by, a.start, a.end, a.values) == (b.by, b.start, b.end, b.values)


def window_of_keys(port: OutputPort, keys: list[str]) -> PartitionWindow:
    """The window of consecutive partition keys (or a set of values) of the port."""
    partitioning = port.partitioning
    every = all_keys(partitioning)
    whole = len(keys) == len(every) and keys[0] == every[0] and keys[-1] == every[-1]
    if partitioning.by == "value":
        return PartitionWindow(port.partition_column, "value", tuple(keys), whole=whole)
    start = datetime.strptime(keys[0], KEY_FORMAT).date()
    return PartitionWindow(port.partition_column, partitioning.by, tuple(keys), start,
                           _next(partitioning.by, datetime.strptime(keys[-1], KEY_FORMAT).date()), whole)


def window_of_run(context, port: OutputPort) -> PartitionWindow | None:
    """The window a Dagster step publishes (one partition, or a range in a single-run backfill); None when the port
    is not partitioned."""
    if port.partitioning is None:
        return None
    return window_of_keys(port, list(context.partition_keys))


def window_of_text(port: OutputPort, text: str) -> PartitionWindow:
    """`1995-03-01`, `1995-03` (a month), `1995-03-01..1995-03-07` or a value: the port's partitions it names.
    ValueError names the port's partitions when the text names none."""
    partitioning = port.partitioning
    every = all_keys(partitioning)
    if partitioning.by == "value":
        wanted = [v for v in text.split(",") if v]
        unknown = [v for v in wanted if v not in every]
        if unknown or not wanted:
            raise ValueError(f"{', '.join(unknown) or repr(text)} is not a partition of the port; its partitions are "
                             f"{', '.join(every[:20])}{' ...' if len(every) > 20 else ''}")
        return window_of_keys(port, [k for k in every if k in wanted])
    first, _, last = text.partition("..")
    low, high = _date(first, partitioning.by), _date(last or first, partitioning.by, end=True)
    keys = [k for k in every if low <= datetime.strptime(k, KEY_FORMAT).date() <= high]
    if not keys:
        raise ValueError(f"{text} holds no partition of the port: its partitions run from {every[0]} to {every[-1]} "
                         f"(by {partitioning.by}); write a date (YYYY-MM-DD) or a range FROM..TO inside them")
    return window_of_keys(port, keys)


def _date(text: str, by: str, end: bool = False) -> date:
    text = text.strip()
    try:
        if len(text) == 7:  # a month: 1995-03
            first = datetime.strptime(text, "%Y-%m").date()
            return _next("month", first) - timedelta(days=1) if end else first
        day = datetime.strptime(text, KEY_FORMAT).date()
    except ValueError:
        raise ValueError(f"'{text}' is not a date; write YYYY-MM-DD (or YYYY-MM), or a range FROM..TO") from None
    # A day inside a month names that month's partition (keys are the months' first days).
    return day.replace(day=1) if by == "month" and not end else day


def all_keys(partitioning: Partitioning) -> list[str]:
    """Every partition key, oldest first (time partitions up to the last complete one, or to the declared end)."""
    if partitioning.by == "value":
        return list(partitioning.values)
    today = datetime.now(timezone.utc).date()
    end = min(partitioning.end, today) if partitioning.end else today
    keys, day = [], partitioning.start
    while _next(partitioning.by, day) <= end:
        keys.append(day.strftime(KEY_FORMAT))
        day = _next(partitioning.by, day)
    return keys


def _next(by: str, day: date) -> date:
    if by == "day":
        return day + timedelta(days=1)
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def sql_predicate(window: PartitionWindow) -> str:
    """The window's rows, as a DuckDB condition (values quoted)."""
    column = identifier(window.column)
    if window.by == "value":
        return f"{column} in ({', '.join(literal(v) for v in window.values)})"
    return f"{column} >= date {literal(window.start.isoformat())} and {column} < date {literal(window.end.isoformat())}"


def iceberg_filter(window: PartitionWindow):
    from pyiceberg.expressions import And, GreaterThanOrEqual, In, LessThan

    if window.by == "value":
        return In(window.column, set(window.values))
    return And(GreaterThanOrEqual(window.column, window.start.isoformat()), LessThan(window.column, window.end.isoformat()))


def dbt_vars(window: PartitionWindow) -> dict[str, object]:
    """What a partitioned dbt step passes with --vars: the window's dates (ISO), or its values."""
    if window.by == "value":
        return {VAR_VALUES: list(window.values)}
    return {VAR_START: window.start.isoformat(), VAR_END: window.end.isoformat()}


def transform_name(by: str) -> str:
    """The Iceberg partition transform of a partitioning."""
    return {"day": "day", "month": "month", "value": "identity"}[by]


# The tags of a single-run backfill: one run publishes a range of partitions (BackfillPolicy.single_run).
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def partitioned_port(products: list) -> OutputPort | None:
    """The port whose partitioning a domain's job runs (a job has one): the first declared, by product id."""
    return next((port for m in sorted(products, key=lambda m: m.id) if m.processed
                 for port in m.output_ports if port.partitioning), None)


def run_tags(products: list, text: str | None) -> dict[str, str]:
    """The partition range a domain's run publishes: every partition, or those `text` names (ValueError when it
    names none); no tags for a domain without partitioned ports."""
    port = partitioned_port(products)
    if port is None:
        return {}
    keys = window_of_text(port, text).keys if text else all_keys(port.partitioning)
    if not keys:
        raise ValueError(f"{port.name} has no complete partition yet (it starts {port.partitioning.start})")
    return {RANGE_START: keys[0], RANGE_END: keys[-1]}


# Dagster 1.13 records, when a run covers a range of partitions, a planned materialization per partition for every
# asset of the run, the unpartitioned ones too (80 months x 12 assets: 6.6 s of finance's run). This Dagster setting
# records one planned event per asset with the range instead; its cost: the partitions of a failed range run show as
# missing rather than failed in the UI (the run, its steps and `mesh run` still say what failed).
ONE_PLANNED_EVENT_PER_ASSET = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"


def plan_ranges_in_one_event() -> None:
    """For the runs this process creates (mesh run) and the processes it starts (mesh dev's webserver and daemon);
    a value set by the user wins."""
    import os

    os.environ.setdefault(ONE_PLANNED_EVENT_PER_ASSET, "1")
