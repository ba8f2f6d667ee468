"""The forkserver `mesh run` forks its run workers from (platform_resources.forkserver) imports its preload without
collections, then hands each fork a collector that works and a frozen heap it never scans."""

import gc
import multiprocessing
import sys

from platform_resources.forkserver import start_forkserver


def _collector(answers) -> None:
    answers.put((gc.isenabled(), gc.get_freeze_count() > 0, "dagster_dbt" in sys.modules))


def test_a_fork_of_the_forkserver_collects_garbage_and_inherits_the_preload_frozen():
    start_forkserver()
    context = multiprocessing.get_context("forkserver")
    answers = context.SimpleQueue()
    worker = context.Process(target=_collector, args=(answers,))
    worker.start()
    worker.join(120)
    assert worker.exitcode == 0
    enabled, frozen, preloaded = answers.get()
    assert enabled, "a run worker that never collects keeps every cycle it makes for as long as the run lasts"
    assert frozen and preloaded
