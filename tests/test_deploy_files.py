"""deploy/ against the repository: what can be checked here without Docker, Helm or a cluster.

The Dockerfile's paths and command, the Helm values' user deployments against workspace.yaml, and the PostgreSQL
instance and catalog configs loaded for real (against the local server when there is one)."""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from postgres import fresh_database

REPO_ROOT = Path(__file__).resolve().parent.parent
DEPLOY = REPO_ROOT / "deploy"
IMAGE_ROOT = "/opt/mesh"  # the Dockerfile's WORKDIR: repository paths land under it unchanged
MESH_ENV = {"MESH_REGISTRY_URL", "PYICEBERG_CATALOG__MESH__TYPE", "PYICEBERG_CATALOG__MESH__URI",
            "PYICEBERG_CATALOG__MESH__WAREHOUSE"}


def workspace_entries() -> list[dict]:
    entries = yaml.safe_load((REPO_ROOT / "workspace.yaml").read_text())["load_from"]
    assert all(list(e) == ["python_module"] for e in entries), "the deploy files assume python_module entries"
    return [e["python_module"] for e in entries]


DOMAINS = [e["location_name"] for e in workspace_entries()]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in (DEPLOY / "Dockerfile").read_text().splitlines()
                                          if not line.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in text.splitlines() if line.strip()]


def instruction(name: str) -> list[str]:
    return [args for kind, args in dockerfile_instructions() if kind == name]


def for_domain(text: str, domain: str) -> str:
    return text.replace("${DOMAIN}", domain).replace("$DOMAIN", domain).replace("${MESH_DOMAIN}", domain)


def cmd_arguments(domain: str) -> list[str]:
    """The code server command the image starts for `domain`, as an argument list."""
    (cmd,) = instruction("CMD")
    shell, flag, script = yaml.safe_load(cmd)  # exec form: a JSON array
    assert (shell, flag) == ("sh", "-c")
    return shlex.split(for_domain(script, domain).removeprefix("exec "))


def options(arguments: list[str]) -> dict[str, str]:
    return {arguments[i]: arguments[i + 1] for i in range(len(arguments) - 1) if arguments[i].startswith("--")}


@pytest.fixture(scope="module")
def helm_values() -> dict:
    return yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())


@pytest.fixture(scope="module")
def deployments(helm_values) -> list[dict]:
    return helm_values["dagster-user-deployments"]["deployments"]


# --- Dockerfile ------------------------------------------------------------------------------------------------------


def test_the_dockerfile_installs_the_pinned_platform_and_takes_the_domain_as_a_build_argument():
    assert "DOMAIN" in instruction("ARG")
    assert instruction("WORKDIR") == [IMAGE_ROOT]
    assert any(re.search(r"pip install (.* )?-c constraints\.txt \.", run) for run in instruction("RUN"))
    assert any("mesh prepare" in run for run in instruction("RUN")), "dbt is parsed at build time"


@pytest.mark.parametrize("domain", DOMAINS)
def test_every_path_the_dockerfile_copies_exists_and_lands_where_the_repository_has_it(domain):
    for copy in instruction("COPY"):
        *sources, destination = for_domain(copy, domain).split()
        for source in sources:
            assert (REPO_ROOT / source).exists(), f"COPY {source}: no such path in the repository"
            if len(sources) == 1 and not destination.endswith("./"):
                assert destination.rstrip("/") == source.rstrip("/"), "paths keep their repository layout"


@pytest.mark.parametrize("domain", DOMAINS)
def test_the_image_holds_the_domains_code_location_and_its_dbt_project_only(domain):
    copied = {for_domain(c, domain).split()[0].rstrip("/") for c in instruction("COPY")}
    assert f"mesh_code_locations/{domain}" in copied and f"dbt_projects/{domain}" in copied
    others = {d for d in DOMAINS if d != domain}
    assert not any(p.split("/")[-1] in others for p in copied)
    # The component finds its dbt project where the image put it.
    defs = yaml.safe_load((REPO_ROOT / "mesh_code_locations" / domain / f"{domain}_domain" / "defs" / "data_products"
                           / "defs.yaml").read_text())
    dbt_project = (Path("/x/mesh_code_locations") / domain / defs["attributes"]["dbt_project"]).resolve()
    assert str(dbt_project.relative_to("/x")) in copied


@pytest.mark.parametrize("entry", workspace_entries(), ids=DOMAINS)
def test_the_image_starts_the_code_server_of_the_module_the_domain_really_has(entry):
    domain = entry["location_name"]
    arguments = cmd_arguments(domain)
    assert arguments[:3] == ["dagster", "code-server", "start"]
    given = options(arguments)
    assert given == {"--module-name": entry["module_name"], "--working-directory": f"{IMAGE_ROOT}/{entry['working_directory']}",
                     "--location-name": domain}
    assert arguments[3:7] == ["-h", "0.0.0.0", "-p", "4000"]
    module_file = REPO_ROOT / entry["working_directory"] / Path(*entry["module_name"].split(".")).with_suffix(".py")
    assert module_file.exists(), f"{domain}: {module_file} is not in the repository"


def test_the_code_server_flags_are_real_dagster_flags():
    result = subprocess.run([str(Path(sys.executable).parent / "dagster"), "code-server", "start", "--help"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for flag in {*options(cmd_arguments(DOMAINS[0])), "-h", "-p"}:
        assert re.search(rf"(^|\s|,){re.escape(flag)}[\s,]", result.stdout), f"dagster code-server start has no {flag}"


def test_the_build_context_lets_through_what_the_dockerfile_copies_and_nothing_of_a_checkout():
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for copy in instruction("COPY"):
        top = copy.split()[0].split("/")[0]
        assert top in allowed, f"COPY {copy.split()[0]}: the build context excludes {top}"
    for local in (".venv", ".mesh", "**/target/", "**/logs/", "**/_mesh_sources.yml", "mesh_code_locations/*/.env"):
        assert local in ignore or local.rstrip("/") in ignore, f"{local} would reach the image"


def test_one_domain_alone_in_the_images_layout_prepares_and_loads_compliant(tmp_path):
    """What the image build does (the Dockerfile's own workspace line, then mesh prepare), in a folder holding only
    what the Dockerfile copies for geography; then its code location loads there with every product compliant."""
    domain, root = "geography", tmp_path / "opt" / "mesh"
    for copy in instruction("COPY"):
        source = for_domain(copy, domain).split()[0].rstrip("/")
        if not source.startswith(("mesh_code_locations/", "dbt_projects/", "governance/")):
            continue  # the platform itself is installed: here it is the virtualenv's
        ignored = shutil.ignore_patterns("target", "logs", "__pycache__", "_mesh_sources.yml", ".env")
        if (REPO_ROOT / source).is_dir():
            shutil.copytree(REPO_ROOT / source, root / source, ignore=ignored)
        else:
            (root / source).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO_ROOT / source, root / source)
    (printf,) = [run for run in instruction("RUN") if "workspace.yaml" in run and "printf" in run]
    template, *_ = shlex.split(printf.split(">", 1)[0].removeprefix("printf "))
    (root / "workspace.yaml").write_text(template.replace("%s", domain).replace("\\n", "\n"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MESH_", "PYICEBERG_", "OPENLINEAGE"))}
    env.update(MESH_WORKSPACE=str(root / "workspace.yaml"), MESH_HOME=str(tmp_path / "home"),
               DAGSTER_HOME=str(tmp_path / "home" / "dagster"), PYICEBERG_HOME=str(tmp_path))
    bin_dir = Path(sys.executable).parent
    prepared = subprocess.run([str(bin_dir / "mesh"), "prepare"], cwd=root, env=env, capture_output=True, text=True,
                              timeout=300)
    assert prepared.returncode == 0, prepared.stdout + prepared.stderr
    assert (root / "dbt_projects" / domain / "target" / "manifest.json").exists()
    probe = ("import importlib; d = importlib.import_module('geography_domain.definitions').defs\n"
             "print({s.key.to_user_string(): s.tags.get('mesh/compliance') for s in d.resolve_all_asset_specs()"
             " if 'mesh/compliance' in s.tags})")
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=root / "mesh_code_locations" / domain, env=env,
                            capture_output=True, text=True, timeout=300)
    assert loaded.returncode == 0, loaded.stderr
    assert eval(loaded.stdout.strip().splitlines()[-1]) == {"geography/nations/nations": "compliant"}


# --- Helm values -----------------------------------------------------------------------------------------------------


def test_the_user_deployments_are_exactly_the_workspaces_domains(deployments):
    assert [d["name"] for d in deployments] == DOMAINS


@pytest.mark.parametrize("entry", workspace_entries(), ids=DOMAINS)
def test_each_user_deployment_serves_its_domains_module_from_its_own_image(entry, deployments):
    domain = entry["location_name"]
    deployment = next(d for d in deployments if d["name"] == domain)
    assert "dagsterApiGrpcArgs" not in deployment
    # The chart runs `dagster code-server start -h 0.0.0.0 -p <port> <codeServerArgs>`: the image's own command.
    assert deployment["port"] == 4000
    assert ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", str(deployment["port"]),
            *deployment["codeServerArgs"]] == cmd_arguments(domain)
    first = deployments[0]["image"]
    prefix = first["repository"].rsplit("/", 1)[0]
    assert deployment["image"]["repository"] == f"{prefix}/{domain}" and deployment["image"]["tag"] == first["tag"]
    (register,) = deployment["initContainers"]
    assert register["image"] == f"{deployment['image']['repository']}:{deployment['image']['tag']}"
    assert register["command"] == ["mesh", "register"] and register["env"] == deployment["env"]
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}


def test_every_domain_gets_the_same_mesh_environment(deployments):
    first = deployments[0]["env"]
    assert MESH_ENV <= {variable["name"] for variable in first}
    assert all(d["env"] == first for d in deployments)
    urls = [v["valueFrom"]["secretKeyRef"] for v in first if v["name"] in {"MESH_REGISTRY_URL", "PYICEBERG_CATALOG__MESH__URI"}]
    assert len(urls) == 2 and urls[0] == urls[1], "registry store and catalog in the same database, from one secret"


def test_the_chart_runs_the_daemon_with_a_run_queue_on_an_external_postgresql(helm_values):
    assert helm_values["postgresql"]["enabled"] is False and helm_values["postgresql"]["postgresqlHost"]
    assert helm_values["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"  # what the platform installs
    assert helm_values["generatePostgresqlPasswordSecret"] is False and helm_values["global"]["postgresqlSecretName"]
    daemon = helm_values["dagsterDaemon"]
    assert daemon["enabled"] and daemon["runCoordinator"]["enabled"]
    assert daemon["runCoordinator"]["type"] == "QueuedRunCoordinator"
    assert helm_values["telemetry"] == {"enabled": False}
    assert helm_values["dagster-user-deployments"]["enabled"] and helm_values["dagster-user-deployments"]["enableSubchart"]


def test_the_helm_run_queue_says_what_the_plain_dagster_yaml_says(helm_values):
    queued = helm_values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    plain = yaml.safe_load((DEPLOY / "postgres" / "dagster.yaml").read_text())["run_coordinator"]
    assert plain["class"] == "QueuedRunCoordinator"
    assert queued["maxConcurrentRuns"] == plain["config"]["max_concurrent_runs"]
    assert queued["tagConcurrencyLimits"] == plain["config"]["tag_concurrency_limits"]


# --- deploy/postgres -------------------------------------------------------------------------------------------------


def test_the_postgres_dagster_yaml_is_a_valid_instance_config():
    from dagster._core.instance.config import dagster_instance_config

    config, _ = dagster_instance_config(str(DEPLOY / "postgres"))
    assert set(config["storage"]) == {"postgres"} and config["telemetry"] == {"enabled": False}
    assert config["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"


@pytest.fixture
def postgres_url():
    with fresh_database("mesh_test_deploy") as url:
        yield url


def test_the_postgres_dagster_yaml_loads_as_an_instance_on_a_real_server(postgres_url, tmp_path, monkeypatch):
    from dagster import DagsterInstance
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage
    from sqlalchemy.engine import make_url

    url = make_url(postgres_url)
    for name, value in {"HOST": url.host, "PORT": str(url.port), "USER": url.username, "PASSWORD": url.password or "",
                        "DB": url.database}.items():
        monkeypatch.setenv(f"DAGSTER_POSTGRES_{name}", value)
    shutil.copy(DEPLOY / "postgres" / "dagster.yaml", tmp_path / "dagster.yaml")
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        assert instance.get_runs() == []


def test_the_pyiceberg_example_is_the_mesh_catalog_in_postgres(postgres_url, tmp_path, monkeypatch):
    from platform_resources import ports

    monkeypatch.setenv("PYICEBERG_HOME", str(DEPLOY / "postgres"))
    monkeypatch.setenv("PYICEBERG_CATALOG__MESH__URI", postgres_url)
    monkeypatch.setenv("MESH_HOME", str(tmp_path))
    monkeypatch.delenv("MESH_POSTGRES_URL", raising=False)
    catalog = ports.catalog()
    assert type(catalog).__name__ == "SqlCatalog"
    assert catalog.properties["warehouse"] == "s3://mesh-warehouse/"  # the file's; the URI from the environment
    catalog.create_namespace("probe")
    assert ("probe",) in catalog.list_namespaces()
    catalog.engine.dispose()
