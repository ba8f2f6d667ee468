"""A domain's dbt parse serves every mesh home: a new home (a test, a benchmark, a new machine's first run of a
checkout that ran before) starts dbt from the parse state, not from a parse of the whole project."""

import os
import shutil
import subprocess
import sys
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
