"""dbt commands run in a fork of the process (platform_resources.dbt_fork) behave like the `dbt` executable."""

import json
import os
import sys
from pathlib import Path

from platform_resources.dbt_fork import ForkedDbt

DBT = str(Path(sys.executable).parent / "dbt")


def _run(args: list[str], cwd: Path, **env: str) -> tuple[int, str]:
    process = ForkedDbt([DBT, *args], env={**os.environ, **env}, cwd=cwd)
    with process.stdout:
        output = process.stdout.read().decode()
    return process.wait(), output


def test_a_forked_command_prints_what_dbt_prints_and_exits_with_its_code(tmp_path):
    code, output = _run(["--version"], tmp_path)
    assert code == 0, output
    assert "dbt-core" in output.lower() or "core:" in output.lower(), output

    code, output = _run(["no-such-command"], tmp_path)
    assert code == 2, output  # dbt's usage error, as the executable exits with it
    assert "no-such-command" in output


def test_a_forked_command_streams_dbts_json_log_lines_from_its_folder_and_environment(tmp_path):
    (tmp_path / "dbt_project.yml").write_text("name: forked\nversion: '1.0'\nprofile: forked\n")
    (tmp_path / "profiles.yml").write_text("forked:\n  target: t\n  outputs:\n    t:\n      type: duckdb\n"
                                           "      path: \"{{ env_var('FORKED_DB') }}\"\n")
    code, output = _run(["--log-format", "json", "parse", "--profiles-dir", str(tmp_path)], tmp_path,
                        FORKED_DB=str(tmp_path / "forked.duckdb"), DBT_SEND_ANONYMOUS_USAGE_STATS="false")
    events = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert code == 0, output
    assert events and all("info" in event for event in events)
    assert (tmp_path / "target" / "manifest.json").exists()  # parsed in the folder it was given
    assert os.getcwd() != str(tmp_path)  # the fork changed folder, this process did not


def test_a_command_given_a_working_dir_opens_relative_databases_there_and_keeps_its_target_in_the_project(tmp_path):
    project, work = tmp_path / "project", tmp_path / "work"
    (project / "models").mkdir(parents=True)
    work.mkdir()
    (project / "dbt_project.yml").write_text("name: forked\nversion: '1.0'\nprofile: forked\n")
    (project / "models" / "answer.sql").write_text("select 42 as answer")
    (project / "profiles.yml").write_text("forked:\n  target: t\n  outputs:\n    t:\n      type: duckdb\n"
                                          "      path: forked.duckdb\n")
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DBT_TARGET_PATH": "target/one",
           "DBT_LOG_PATH": "target/one", "DBT_PROJECT_DIR": str(project), "DBT_PROFILES_DIR": str(project)}
    process = ForkedDbt([DBT, "run"], env=env, cwd=project, working_dir=work)
    with process.stdout:
        output = process.stdout.read().decode()
    assert process.wait() == 0, output
    assert (work / "forked.duckdb").exists() and not (project / "forked.duckdb").exists()
    assert (project / "target" / "one" / "run_results.json").exists()  # where dagster-dbt looks for it
    assert (project / "target" / "one" / "dbt.log").exists() and not (work / "target").exists()
