"""Two changes to Dagster 1.13 where the platform loads locations and creates runs: `mesh run` (its run workers, their
forkserver, its launcher) and `mesh validate`.

**Planned events of unpartitioned entities.** A run over a range of time partitions stores that range on the run.
When the run is created, Dagster plans every asset and check of the run with
`DagsterRun.get_resolved_partitions_subset_for_events(partitions_def)`, which returns the stored range whatever
`partitions_def` is, so an unpartitioned entity is planned for every partition of the range. For a check, the event
log then stores one PLANNED execution per partition (80 months of finance: 33 checks x 80 rows, each with the whole
serialized event; 1.3 s of the run's 8 s of CPU). Our checks evaluate once per publish, with no partition, so none
of those rows is ever resolved: Dagster adds a separate row for the evaluation, and 3,780 PLANNED rows were left
behind by each run of the sample mesh at scale 0.01. Fixed: an entity without a partitions definition has no
partition subset; a partitioned one gets what Dagster resolves, unchanged.

**The component library, once per process.** Every location loaded from a defs folder carries, for the UI, the
JSON of every component type the Python environment provides: its entry points scanned and a JSON schema built per
type, in every run worker. It depends on the environment only: computed once, in the forkserver before it forks
(loading finance's location and creating its run: 0.94 s of a worker's CPU, was 1.32 s; sales 0.79 s, was 1.28 s).

Runs created elsewhere (the webserver, the daemon) get Dagster's own behaviour.
"""

from __future__ import annotations

import functools

from dagster import Definitions
from dagster._core.storage.dagster_run import DagsterRun
from dagster.components.core import load_defs

_resolve = DagsterRun.get_resolved_partitions_subset_for_events
_library_defs = load_defs.get_library_json_enriched_defs


@functools.wraps(_resolve)
def _per_entity(self: DagsterRun, partitions_def):
    return None if partitions_def is None else _resolve(self, partitions_def)


@functools.cache
def _library_metadata():
    return _library_defs(None).metadata


@functools.wraps(_library_defs)
def _library_once(tree):
    return Definitions(metadata=_library_metadata(), component_tree=tree)


def plan_unpartitioned_entities_once() -> None:
    """Apply the first change in this process (again: no-op)."""
    DagsterRun.get_resolved_partitions_subset_for_events = _per_entity


def component_library_once() -> None:
    """Apply the second change in this process and compute the library now (again: no-op)."""
    load_defs.get_library_json_enriched_defs = _library_once
    _library_metadata()
