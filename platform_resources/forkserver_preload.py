"""What the forkserver imports before its first fork (platform_resources.forkserver): every module in PRELOAD, with
Python's garbage collector off.

Importing creates hundreds of thousands of objects and next to no garbage, and each collection meanwhile scans the
growing heap: the preload took 7.9 s with collections and 6.7 s without (median of 4, alternating), and every run
waits for it. What was imported is then frozen, as each run worker freezes what it inherits: collections, here or
in a fork, never scan it again.
"""

import gc
import importlib

from platform_resources.forkserver import PRELOAD

gc.disable()
try:
    for module in PRELOAD:
        importlib.import_module(module)
finally:
    gc.freeze()
    gc.enable()
