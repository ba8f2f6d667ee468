"""What the static policies cost as a mesh grows: evaluate() against loading the registry it checks.

Synthetic meshes of N products (10 domains, each product reading two ports of the previous domain), one run:
prints the seconds of load_registry (the baseline: reading and validating the manifests) and of evaluate,
and their ratio. Usage: .venv/bin/python benchmarks/governance_overhead.py [N ...]
"""

import sys
import tempfile
import time
from pathlib import Path

import yaml

from platform_resources.governance.engine import evaluate
from platform_resources.registry import load_registry

DOMAINS = 10


def product(domain: int, index: int, per_domain: int) -> dict:
    inputs = [{"name": f"in_{k}", "from": f"d{domain - 1}.p{(index + k) % per_domain}.main"} for k in range(2)] \
        if domain else [{"name": "system", "operational": "src_db.things"}]
    return {
        "id": f"d{domain}.p{index}", "name": f"Product {index}", "description": "A synthetic product for the benchmark.",
        "owner": {"team": f"d{domain}", "email": f"d{domain}@example.com"}, "archetype": "aggregate",
        "status": "active", "version": "1.0.0", "input_ports": inputs,
        "output_ports": [{"name": "main", "description": "The product's one port.", "visibility": "public",
                          "actual_time": "snapshot", "freshness": {"max_age": "26h"}, "contract": {
                              "primary_key": ["id"], "columns": [
                                  {"name": "id", "type": "bigint", "description": "Key.", "classification": "public"},
                                  {"name": "customer_email", "type": "varchar", "description": "Contact.",
                                   "classification": "internal"}]}}],
    }


def write_mesh(root: Path, products: int) -> Path:
    per_domain = max(1, products // DOMAINS)
    for domain in range(DOMAINS):
        folder = root / "locations" / f"d{domain}" / "products"
        folder.mkdir(parents=True)
        for index in range(per_domain):
            (folder / f"p{index}.yaml").write_text(yaml.safe_dump(product(domain, index, per_domain)))
    (root / "governance").mkdir()
    (root / "governance" / "teams.yaml").write_text(yaml.safe_dump(
        {"teams": [{"name": f"d{d}", "email": f"d{d}@example.com"} for d in range(DOMAINS)]}))
    workspace = root / "workspace.yaml"
    workspace.write_text(yaml.safe_dump({"load_from": [
        {"python_module": {"module_name": f"locations.d{d}.definitions", "location_name": f"d{d}"}}
        for d in range(DOMAINS)]}))
    return workspace


def main(sizes: list[int]) -> None:
    print(f"{'products':>9} {'load_registry s':>16} {'evaluate s':>11} {'ratio':>6} {'findings':>9}")
    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            workspace = write_mesh(Path(tmp), size)
            started = time.perf_counter()
            registry = load_registry(workspace)
            loaded = time.perf_counter() - started
            started = time.perf_counter()
            report = evaluate(registry)
            evaluated = time.perf_counter() - started
        # every product has one error (customer_email classified internal): a realistic worst case for reporting
        print(f"{len(registry.products):>9} {loaded:>16.3f} {evaluated:>11.3f} {evaluated / loaded:>6.2f} "
              f"{len(report.findings):>9}")


if __name__ == "__main__":
    main([int(n) for n in sys.argv[1:]] or [10, 100, 1000])
