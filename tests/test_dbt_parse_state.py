"""A domain's dbt parse serves every mesh home: a new home (a test, a benchmark, a new machine's first run of a
checkout that ran before) starts dbt from the parse state, not from a parse of the whole project."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from platform_resources import dbt, dbt_sandbox
from platform_resources import dbt_prepare
from platform_resources.registry import published_registry

DOMAIN = "geography"


def test_a_new_home_starts_dbt_from_the_parse_of_another(prepared_dbt, tmp_path, monkeypatch):
    domain = published_registry().domains[DOMAIN]
    assert dbt_prepare.is_prepared(domain)
    monkeypatch.setenv("MESH_HOME", str(tmp_path / "another_home"))
    assert dbt_prepare.is_prepared(domain)  # `mesh run` in the new home parses nothing ahead

    # dbt as the platform runs it in the new home (MeshDbtCliResource.cli), from a copy of the prepared state.
    target, domains = tmp_path / "target", tmp_path / "another_home" / "domains"
    domains.mkdir(parents=True)
    target.mkdir()
    shutil.copy(domain.dbt_project / "target" / dbt.PARTIAL_PARSE, target)
    env = {**os.environ, **dbt_sandbox.environment(DOMAIN, []), **dbt_prepare.database_environment(DOMAIN),
           "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "--debug", "parse", "--project-dir", str(domain.dbt_project),
         "--profiles-dir", str(dbt_prepare.PLATFORM_PROFILES_DIR), "--profile", dbt_prepare.PLATFORM_PROFILE,
         "--target-path", str(target), "--log-path", str(target)],
        cwd=domains, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Partial parsing enabled" in result.stdout, result.stdout[-3000:]
    assert "Unable to do partial parsing" not in result.stdout, result.stdout[-3000:]


def test_a_step_keeps_only_its_latest_dbt_target_folders(tmp_path):
    """dagster-dbt gives each dbt command a target folder: the step's latest stay, and any of the last day."""
    day = 24 * 3600
    ages = {"geography_dbt_models-aaaaaaa-0000001": 9 * day, "geography_dbt_models-bbbbbbb-0000002": 8 * day,
            **{f"geography_dbt_models-c{n}cccccc-000000{n}": (7 - n) * day for n in range(5)},
            "geography_dbt_models-ddddddd-0000009": 60,
            "geography_dbt_partitioned_models-eeeeeee-0000003": 30 * day}  # another step's
    for name, age in ages.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text("{}")
        os.utime(tmp_path / name, (time.time() - age, time.time() - age))
    (tmp_path / dbt.PARTIAL_PARSE).write_text("state")

    removed = dbt.prune_invocations(tmp_path, "geography_dbt_models")

    assert sorted(f.name for f in removed) == ["geography_dbt_models-aaaaaaa-0000001",
                                               "geography_dbt_models-bbbbbbb-0000002",
                                               "geography_dbt_models-c0cccccc-0000000"]
    left = sorted(f.name for f in tmp_path.iterdir())
    assert len(left) == len(ages) + 1 - 3 and dbt.PARTIAL_PARSE in left
    assert "geography_dbt_partitioned_models-eeeeeee-0000003" in left

    for n in range(6):  # within a day, a folder may be a run's still going: kept, however many there are
        (tmp_path / f"geography_dbt_models-f{n}ffffff-0000000").mkdir()
    removed = dbt.prune_invocations(tmp_path, "geography_dbt_models")
    assert sorted(f.name for f in removed) == [f"geography_dbt_models-c{n}cccccc-000000{n}" for n in range(1, 5)]
    assert len(list(tmp_path.glob("geography_dbt_models-*"))) == 7  # the six new ones and the one of a minute ago
