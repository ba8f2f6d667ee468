"""What the forkserver does before its first fork (platform_resources.forkserver): import every module in PRELOAD,
with Python's garbage collector off, and compute the component library every run worker's location carries
(platform_resources.dagster_fixes).

Importing creates hundreds of thousands of objects and next to no garbage, and each collection meanwhile scans the
growing heap: the preload took 7.9 s with collections and 6.7 s without (median of 4, alternating), and every run
waits for it. What was imported is then frozen, as each run worker freezes what it inherits: collections, here or
in a fork, never scan it again.
"""

import gc
import importlib

from platform_resources.forkserver import PRELOAD, collect_from_here

gc.disable()
try:
    for module in PRELOAD:
        importlib.import_module(module)
    from platform_resources.dagster_fixes import component_library_once

    component_library_once()
finally:
    collect_from_here()
