"""The asset specs of every code location against a snapshot committed beside this test, so that any drift in what
the UI shows (keys, groups, owners, kinds, tags, metadata keys, check names) is a reviewed diff.

To accept a change: `MESH_UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/test_asset_specs.py`, then review and commit
tests/snapshots/asset_specs.yaml with the change that caused it."""

import difflib
import os
from pathlib import Path

import pytest
import yaml
from dagster import AssetKey

from platform_resources.governance.validate import load_definitions
from platform_resources.registry import load_registry

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_specs.yaml"
UPDATE_VARIABLE = "MESH_UPDATE_SNAPSHOTS"


def spec_of(graph, key: AssetKey) -> dict:
    node = graph.get(key)
    return {
        "key": key.to_user_string(),
        "group": node.group_name,
        "materializable": node.is_materializable,
        "owners": sorted(node.owners),
        "kinds": sorted(node.kinds),
        "tags": {k: v for k, v in sorted(node.tags.items()) if not k.startswith("dagster/kind/")},
        "metadata": sorted(node.metadata),
        "checks": sorted(check.name for check in node.check_keys),
        "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
        **({"partitions": str(node.partitions_def)} if node.partitions_def else {}),
    }


def current_specs() -> str:
    registry = load_registry()
    locations = {}
    for name in sorted(registry.domains):
        graph = load_definitions(registry.domains[name]).resolve_asset_graph()
        locations[name] = [spec_of(graph, key) for key in sorted(graph.get_all_asset_keys(), key=AssetKey.to_user_string)]
    return yaml.safe_dump(locations, sort_keys=False, width=120)


def by_asset(text: str) -> dict[str, str]:
    """'location: key' -> that asset's spec as YAML lines."""
    return {f"{location}: {spec['key']}": yaml.safe_dump(spec, sort_keys=False, width=120)
            for location, specs in (yaml.safe_load(text) or {}).items() for spec in specs}


def drift(expected: str, current: str) -> str:
    """Per asset: added, removed, or a diff of its spec, so a reviewer sees which asset of which location changed."""
    before, after = by_asset(expected), by_asset(current)
    lines = [f"+ {name} (new asset)" for name in sorted(after.keys() - before.keys())]
    lines += [f"- {name} (gone)" for name in sorted(before.keys() - after.keys())]
    for name in sorted(before.keys() & after.keys()):
        if before[name] != after[name]:
            diff = difflib.unified_diff(before[name].splitlines(keepends=True), after[name].splitlines(keepends=True),
                                        fromfile=f"{name} (snapshot)", tofile=f"{name} (now)", n=2)
            lines.append("".join(diff).rstrip("\n"))
    return "\n".join(lines) or "(the file differs only in layout)"


def test_the_asset_specs_of_every_location_match_the_snapshot(prepared_dbt):
    current = current_specs()
    if os.environ.get(UPDATE_VARIABLE) == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(current)
        pytest.skip(f"{UPDATE_VARIABLE}=1: wrote {SNAPSHOT.name}; review its diff and commit it")
    assert SNAPSHOT.exists(), f"no snapshot yet: run {UPDATE_VARIABLE}=1 .venv/bin/pytest {Path(__file__).name}"
    expected = SNAPSHOT.read_text()
    if current != expected:
        pytest.fail(f"The asset specs drifted from the snapshot:\n{drift(expected, current)}\nIf the change is intended, run "
                    f"{UPDATE_VARIABLE}=1 .venv/bin/pytest tests/test_asset_specs.py and commit the snapshot.",
                    pytrace=False)


def test_no_location_has_a_default_group_and_each_upstream_port_is_in_its_producers_group(prepared_dbt):
    registry = load_registry()
    for name in registry.domains:
        graph = load_definitions(registry.domains[name]).resolve_asset_graph()
        for key in graph.get_all_asset_keys():
            node = graph.get(key)
            assert node.group_name != "default", f"{name}: {key.to_user_string()} is in the default group"
            if key.path[0] != name:  # another domain's port, read here: shown as the producer's, not a copy
                producer = registry.products[".".join(key.path[:2])]
                assert not node.is_materializable and node.group_name == key.path[0]
                assert set(node.owners) == set(producer.owner.dagster_owners)


def test_every_primary_key_column_is_marked_a_composite_key_too(prepared_dbt):
    registry = load_registry()
    graph = load_definitions(registry.domains["sales"]).resolve_asset_graph()
    schema = graph.get(AssetKey(["sales", "orders", "order_lines"])).metadata["dagster/column_schema"]
    key = registry.products["sales.orders"].output_ports[1].contract.primary_key
    assert len(key) == 2, "order_lines has a composite key"
    marked = {c.name for c in schema.columns if "mesh/primary_key" in c.tags}
    assert marked == set(key)
    for column in schema.columns:
        if column.name in key:
            assert not column.constraints.nullable and not column.constraints.unique  # unique together, not alone
            assert column.constraints.other == [f"primary key ({', '.join(key)})"]
    assert schema.constraints.other == [f"primary key ({', '.join(key)})"]
