"""Code-location load time per domain: a fresh Python process imports the domain's definitions and builds its
repository, as a code server does at start. Median of --repeat runs; prints one line per domain.

    .venv/bin/python benchmarks/code_location_load.py [--repeat 5]
"""

import argparse
import json
import statistics
import subprocess
import sys

from platform_resources import dbt_prepare
from platform_resources.home import prepare_home
from platform_resources.registry import published_registry

PROBE = """
import sys, time
started = time.perf_counter()
sys.path.insert(0, sys.argv[2])
import importlib
importlib.import_module(sys.argv[1]).defs.get_repository_def()
print(time.perf_counter() - started)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    prepare_home()
    registry = published_registry()
    dbt_prepare.prepare(registry)  # loading reads the prepared dbt manifest; parsing it is not part of a load
    medians = {}
    for name, domain in registry.domains.items():
        if not domain.is_local:
            continue
        seconds = [float(subprocess.run([sys.executable, "-c", PROBE, domain.module, str(domain.working_directory)],
                                        capture_output=True, text=True, check=True).stdout.split()[-1])
                   for _ in range(args.repeat)]
        medians[name] = statistics.median(seconds)
        print(f"{name:<12} {medians[name]:.2f} s (median of {args.repeat})")
    print(json.dumps({"median_seconds": medians}))


if __name__ == "__main__":
    main()
