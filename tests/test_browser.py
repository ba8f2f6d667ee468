"""What an analyst sees in a real browser: the Dagster webserver on the mesh's instance after the sample mesh ran,
a product's port page in headless Chromium (Debian's `chromium`, driven by Playwright for Python) shows its owners,
its columns with the primary key, and the results of the checks of its latest publish.

Skips where Chromium or Playwright is absent: `apt-get install -y chromium` and the pinned `playwright` (in
constraints.txt). Playwright's own browser download is never used; MESH_CHROMIUM names another Chromium binary."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("MESH_CHROMIUM", "/usr/bin/chromium"))
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}: apt-get install -y chromium "
                                                              "(or set MESH_CHROMIUM to a Chromium binary)")
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed: "
                                                             ".venv/bin/pip install -c constraints.txt playwright")

REPO_ROOT = Path(__file__).resolve().parent.parent
LOAD_TIMEOUT_SECONDS = 300
PAGE_TIMEOUT_MS = 60_000
WORKSPACE_QUERY = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(base: str, query: str) -> dict:
    """The webserver's answer, as the UI asks it."""
    request = urllib.request.Request(f"{base}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)["data"]


def loaded_locations(base: str) -> dict[str, str]:
    entries = graphql(base, WORKSPACE_QUERY)["workspaceOrError"]["locationEntries"]
    return {entry["name"]: entry["loadStatus"] for entry in entries}


@pytest.fixture(scope="module")
def webserver(mesh_run, tmp_path_factory):
    """dagster-webserver on the session's mesh instance (read-only: looking changes nothing), every location loaded."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path_factory.mktemp("webserver") / "webserver.log").open("w")
    server = subprocess.Popen([str(Path(sys.executable).parent / "dagster-webserver"), "-w", "workspace.yaml",
                               "-h", "127.0.0.1", "-p", str(port), "--read-only"], cwd=REPO_ROOT, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, status = time.monotonic() + LOAD_TIMEOUT_SECONDS, {}
        while time.monotonic() < deadline and server.poll() is None:
            try:
                status = loaded_locations(base)
                if status and set(status.values()) == {"LOADED"}:
                    break
            except OSError:
                pass  # not listening yet
            time.sleep(2)
        assert status and set(status.values()) == {"LOADED"}, f"the webserver did not load every location: {status}" \
                                                               f" (log {log.name})"
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the webserver and the code servers it started
        try:
            server.wait(timeout=90)  # the code servers finish their calls first
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


@pytest.fixture(scope="module")
def page(webserver):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                             args=["--headless", "--no-sandbox", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        yield page
        browser.close()


def open_asset(page, base: str, key: str, view: str | None = None) -> None:
    page.goto(f"{base}/assets/{key}" + (f"?view={view}" if view else ""))
    skip = page.get_by_role("button", name="Skip")  # Dagster's "join the community" dialog on a first visit
    try:
        skip.click(timeout=5000)
    except sync_api.TimeoutError:
        pass


def test_a_port_page_shows_its_owners_columns_and_the_checks_of_its_latest_publish(webserver, page, mesh_run):
    from platform_resources.governance.runtime import checks_of, static_policy_check
    from platform_resources.registry import load_registry

    manifest = load_registry().products["crm.customers"]
    port = next(p for p in manifest.output_ports if p.name == "customers")
    checks = {static_policy_check().name, *(c.name for c in checks_of(manifest, port)),
              *(f"slo_{name}" for name, slo in port.slos if slo is not None)}
    expect = sync_api.expect
    open_asset(page, webserver, "crm/customers/customers")
    owners = page.get_by_text("Owners", exact=True).locator("..")
    expect(owners).to_contain_text(manifest.owner.email)
    columns = page.locator("table", has_text="Column name")
    for column in port.contract.columns:
        expect(columns.get_by_text(column.name, exact=True).first).to_be_visible()
    expect(page.get_by_text(f"primary key ({', '.join(port.contract.primary_key)})").first).to_be_visible()
    expect(page.get_by_text("Latest check results")).to_be_visible()

    open_asset(page, webserver, "crm/customers/customers", view="checks")
    expect(page.get_by_text(f"Checks ({len(checks)})")).to_be_visible()
    for name in checks:
        expect(page.get_by_text(name, exact=True).first).to_be_visible()
    expect(page.get_by_text("Succeeded", exact=True)).to_have_count(len(checks))  # every check of the latest publish


GROUPS_QUERY = """{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError {
  ... on RepositoryLocation { repositories { assetGroups { groupName } } } } } } } }"""
EDGE_QUERY = """{ assetNodeOrError(assetKey: {path: ["crm", "customers", "customer_contacts"]}) { ... on AssetNode {
  groupName repository { location { name } } dependedByKeys { path } } } }"""


def test_the_workspace_graph_has_no_default_group_and_joins_the_domains(webserver):
    for entry in graphql(webserver, GROUPS_QUERY)["workspaceOrError"]["locationEntries"]:
        groups = {g["groupName"] for r in entry["locationOrLoadError"]["repositories"] for g in r["assetGroups"]}
        assert "default" not in groups, f"{entry['name']} shows a default group"
        assert {entry["name"], f"{entry['name']}_internal"} <= groups
    port = graphql(webserver, EDGE_QUERY)["assetNodeOrError"]
    # The producer's asset, in its own group and location, with the consumers' models downstream of it.
    assert (port["groupName"], port["repository"]["location"]["name"]) == ("crm", "crm")
    downstream = {"/".join(k["path"]) for k in port["dependedByKeys"]}
    assert {"finance/internal/returned_items", "marketing/internal/large_volume_customers"} <= downstream
