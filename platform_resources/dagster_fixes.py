"""A fix to Dagster 1.13's planned events, for the runs the mesh creates (`mesh run`'s run workers and launcher).

A run over a range of time partitions stores that range on the run. When the run is created, Dagster plans every
asset and check of the run with `DagsterRun.get_resolved_partitions_subset_for_events(partitions_def)`, which returns
the stored range whatever `partitions_def` is, so an unpartitioned entity is planned for every partition of the
range. For a check, the event log then stores one PLANNED execution per partition (80 months of finance: 33 checks x
80 rows, each with the whole serialized event; 1.3 s of the run's 8 s of CPU). Our checks evaluate once per publish,
with no partition, so none of those rows is ever resolved: Dagster adds a separate row for the evaluation, and 3,780
PLANNED rows were left behind by each run of the sample mesh at scale 0.01.

The fix: an entity without a partitions definition has no partition subset. A partitioned one gets what Dagster
resolves, unchanged. Runs created elsewhere (the webserver, the daemon) still get Dagster's behaviour.
"""

from __future__ import annotations

import functools

from dagster._core.storage.dagster_run import DagsterRun

_resolve = DagsterRun.get_resolved_partitions_subset_for_events


@functools.wraps(_resolve)
def _per_entity(self: DagsterRun, partitions_def):
    return None if partitions_def is None else _resolve(self, partitions_def)


def plan_unpartitioned_entities_once() -> None:
    """Apply the fix in this process (again: no-op)."""
    DagsterRun.get_resolved_partitions_subset_for_events = _per_entity
