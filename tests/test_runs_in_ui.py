"""The runs of `mesh run` are the UI's runs: each domain job's page lists the run `mesh run` reported, with its
status, its tags and its code location as origin (asked through Dagster's GraphQL, as the webserver answers it)."""

import json
import subprocess
import sys
from pathlib import Path

from platform_resources.domain_job import DOMAIN_JOB_SUFFIX

RUN_FIELDS = "runId status tags { key value } repositoryOrigin { repositoryLocationName repositoryName }"


def job_pages_query(domains: list[str]) -> str:
    """One aliased `runsOrError` per domain job, filtered as a job's runs page filters (dagster-graphql's
    Pipeline.runs): the job's name and its repository label, `<repository>@<code location>`, which only runs
    launched from a code location carry."""
    pages = [f'{domain}: runsOrError(filter: {{pipelineName: "{domain}{DOMAIN_JOB_SUFFIX}", tags: '
             f'[{{key: ".dagster/repository", value: "__repository__@{domain}"}}]}}) {{ __typename '
             f'... on Runs {{ results {{ {RUN_FIELDS} }} }} ... on PythonError {{ message }} }}' for domain in domains]
    return "query JobPages {\n  " + "\n  ".join(pages) + "\n}"


def test_each_domain_job_page_lists_the_run_mesh_run_launched(mesh_run, tmp_path):
    domains = sorted(mesh_run.run_ids)
    assert domains == ["crm", "finance", "geography", "marketing", "sales", "supply"]
    answer = tmp_path / "answer.json"
    # One GraphQL process on the mesh's instance (DAGSTER_HOME); run queries need no code location loaded.
    result = subprocess.run([str(Path(sys.executable).parent / "dagster-graphql"), "--empty-workspace",
                             "-t", job_pages_query(domains), "-o", str(answer)],
                            capture_output=True, text=True, timeout=120, check=False)
    assert answer.exists(), result.stdout + result.stderr
    data = json.loads(answer.read_text())["data"]
    batches = set()
    for domain in domains:
        page = data[domain]
        assert page["__typename"] == "Runs", page
        runs = {run["runId"]: run for run in page["results"]}
        run = runs.get(mesh_run.run_ids[domain])
        assert run, f"{domain}: the job page lists {sorted(runs)}, not {mesh_run.run_ids[domain]}"
        assert run["status"] == "SUCCESS"
        assert run["repositoryOrigin"] == {"repositoryLocationName": domain, "repositoryName": "__repository__"}
        tags = {tag["key"]: tag["value"] for tag in run["tags"]}
        assert tags["mesh/domain"] == domain and tags["mesh/scale"] == "0.01"
        batches.add(tags["mesh/batch"])
    assert len(batches) == 1  # one mesh run, one batch
