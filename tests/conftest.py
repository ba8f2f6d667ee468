"""Every test session gets its own mesh home, so tests never touch the user's .mesh/."""

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def session_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("mesh_home")
    os.environ["MESH_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    os.environ["DO_NOT_TRACK"] = "1"
    return home


@pytest.fixture
def fresh_home(tmp_path, monkeypatch) -> Path:
    """A mesh home of the test's own (empty catalog, empty DuckDB files)."""
    home = tmp_path / "mesh"
    monkeypatch.setenv("MESH_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    return home


@pytest.fixture(scope="session")
def prepared_dbt(session_home) -> None:
    """Every domain published to the registry store and its dbt manifest prepared (what `mesh run` does before
    loading code locations)."""
    from platform_resources import dbt_prepare
    from platform_resources.registry import published_registry

    dbt_prepare.prepare(published_registry())


@pytest.fixture(scope="session")
def mesh_run(session_home, prepared_dbt):
    """The whole sample mesh at scale 0.01, run once per session in the session's home."""
    from platform_resources.runner import format_summary, run_mesh

    summary = run_mesh(0.01, log=lambda *_: None)
    assert summary.ok, format_summary(summary)
    return summary
