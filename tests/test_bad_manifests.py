"""A corpus of bad manifests: each is refused with its file, line and fix, never a traceback, and never spreads.

Every case is a file `crm/products/bad.yaml` added to a copy of the sample mesh. The mesh must still load its
14 products, evaluate its policies, and draw its catalog, map and report; the bad file is one MESH-SCHEMA-001
finding that names it. The whole corpus at once goes through the `mesh` commands and the Dagster definitions of
every domain.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from dagster import AssetKey
from workspaces import copy_sample_mesh, product

from platform_resources.manifest import MAX_MANIFEST_BYTES, ManifestErrors, load_manifest
from platform_resources.registry import Registry, load_registry

SAMPLE_PRODUCTS = 14
BAD_FILE = "mesh_code_locations/crm/products/bad.yaml"


def good() -> dict:
    """A product of crm that loads and passes every policy; each case breaks one thing in it."""
    manifest = product("crm.bad", fresh=True)
    manifest["owner"] = {"team": "crm", "email": "crm-data@example.com"}
    manifest["output_ports"][0]["contract"]["columns"].append(
        {"name": "seen_at", "type": "timestamp", "description": "When.", "classification": "public"})
    return manifest


def dump(manifest: dict) -> str:
    return yaml.safe_dump(manifest, sort_keys=False)


def port(manifest: dict) -> dict:
    return manifest["output_ports"][0]


def changed(change: Callable[[dict], object]) -> str:
    manifest = good()
    change(manifest)
    return dump(manifest)


GOOD_TEXT = dump(good())


@dataclass(frozen=True)
class Case:
    name: str
    content: str | bytes
    problem: str  # in the error's problem or fix
    field: str | None = None  # the error's field, when the case names one
    line: int | None = None

    def __str__(self) -> str:
        return self.name


def laughs(levels: int = 9) -> str:
    lines = ["id: crm.bad", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels + 1)]
    return "\n".join([*lines, f"name: *a{levels}", ""])


def freshness(**values: str) -> str:
    return changed(lambda m: port(m).__setitem__("freshness", values))


YAML_CASES = [
    Case("non_utf8", b"id: crm.bad\nname: caf\xe9\n", "not UTF-8", line=2),
    Case("non_utf8_late", GOOD_TEXT.encode() + b"# \xff\xfe\n", "not UTF-8", line=GOOD_TEXT.count("\n") + 1),
    Case("nul_bytes", b"id: crm.bad\x00\nname: x\n", "not valid YAML"),
    Case("recursive_alias_list", "id: crm.bad\nname: &a [*a]\n", "recursive alias", "name[0]", 2),
    Case("recursive_alias_mapping", "id: crm.bad\nowner: &o {team: *o}\n", "recursive alias", "owner.team", 2),
    Case("billion_laughs", laughs(), "expands to more than"),
    Case("complex_key_list", "id: crm.bad\n? [a, b]\n: c\n", "complex key", line=2),
    Case("complex_key_mapping", "id: crm.bad\n? {a: b}\n: c\n", "complex key", line=2),
    Case("complex_key_nested", GOOD_TEXT.replace("  visibility: public", "  ? [visibility]\n  : public"),
         "complex key"),
    Case("duplicate_id", GOOD_TEXT.replace("name: crm.bad", "id: crm.orders"), "key 'id' is given twice", "id", 2),
    Case("duplicate_nested_key", GOOD_TEXT.replace("  visibility: public", "  visibility: restricted\n  visibility: public"),
         "key 'visibility' is given twice", "output_ports[0].visibility"),
    Case("merge_key", "base: &b {name: x}\nid: crm.bad\nowner:\n  <<: *b\n", "merge keys"),
    Case("invalid_waiver_date", changed(lambda m: m.setdefault("governance", {}).__setitem__(
        "waivers", [{"policy": "MESH-DOC-001", "reason": "x", "expires": "DATE"}])).replace("DATE", "2025-13-45"),
        "'2025-13-45' is not a valid date", "governance.waivers[0].expires"),
    Case("invalid_deprecation_date", GOOD_TEXT.replace("status: active", "status: deprecated\ndeprecation_date: 2026-02-30"),
         "not a valid date", "deprecation_date"),
    Case("bad_int_tag", GOOD_TEXT.replace("version: 1.0.0", "version: !!int one"), "not a valid int", "version"),
    Case("python_tag", "id: crm.bad\nname: !!python/object/apply:os.system [echo]\n", "is not allowed", "name", 2),
    Case("python_scalar_tag", "id: crm.bad\nname: !!python/name:os.system x\n", "is not allowed", "name", 2),
    Case("unknown_tag", "id: crm.bad\nname: !secret x\n", "the tag !secret is not allowed", "name", 2),
    Case("binary_tag", "id: crm.bad\nname: !!binary aGk=\n", "is not allowed", "name", 2),
    Case("set_tag", "id: crm.bad\ntags: !!set {a, b}\n", "is not allowed", "tags", 2),
    Case("deep_nesting", "id: crm.bad\nname: " + "[" * 3000 + "]" * 3000 + "\n", "nested"),
    Case("nesting_past_the_limit", "id: crm.bad\nname: " + "[" * 80 + "]" * 80 + "\n", "nested more than 64"),
    Case("too_big", GOOD_TEXT + "# padding\n" * (MAX_MANIFEST_BYTES // 10 + 1), "more than the limit", line=1),
    Case("two_documents", GOOD_TEXT + "---\n" + GOOD_TEXT, "not valid YAML"),
    Case("a_list", "- id: crm.bad\n", "not a YAML mapping", line=1),
    Case("empty", "", "not a YAML mapping", line=1),
    Case("tabs", "id: crm.bad\nowner:\n\tteam: crm\n", "not valid YAML", line=3),
    Case("unclosed", "id: crm.bad\nname: [unclosed\n", "not valid YAML"),
    Case("null_key", GOOD_TEXT + "~: x\n", "is read as NoneType, not text", line=GOOD_TEXT.count("\n") + 1),
    Case("number_key", GOOD_TEXT + "1: x\n", "is read as int, not text"),
    Case("date_key", GOOD_TEXT.replace("  email: crm", "  2026-01-01: x\n  email: crm"), "is read as date"),
]

MODEL_CASES = [
    Case("cron_out_of_range", freshness(cron="61 * * * *"), "not a cron schedule", "output_ports[0].freshness.cron"),
    Case("cron_words", freshness(cron="every morning at six"), "not a cron schedule", "output_ports[0].freshness.cron"),
    Case("cron_shortcut", freshness(cron="@daily"), "not a cron schedule", "output_ports[0].freshness.cron"),
    Case("time_zone_unknown", freshness(cron="0 6 * * *", cron_timezone="Mars/Olympus"), "not an IANA time zone",
         "output_ports[0].freshness.cron_timezone"),
    Case("time_zone_folder", freshness(cron="0 6 * * *", cron_timezone="America"), "not an IANA time zone"),
    Case("time_zone_path", freshness(cron="0 6 * * *", cron_timezone="../../etc/passwd"), "not an IANA time zone"),
    Case("cron_window_past_the_ticks", freshness(cron="0 * * * *", cron_window="2h"), "shortest gap between two ticks"),
    Case("cron_window_zero", freshness(cron="0 6 * * *", cron_window="0s"), "zero duration"),
    Case("cron_with_warn_after", freshness(cron="0 6 * * *", warn_after="1h"), "warn_after only applies with max_age"),
    Case("duration_zero", freshness(max_age="0h"), "zero duration", "output_ports[0].freshness.max_age"),
    Case("duration_below_a_minute", freshness(max_age="30s"), "at least one minute"),
    Case("warn_after_zero", freshness(max_age="26h", warn_after="0m"), "zero duration"),
    Case("warn_after_past_max_age", freshness(max_age="2h", warn_after="3h"), "not shorter than max_age",
         "output_ports[0].freshness"),
    Case("warn_after_equals_max_age", freshness(max_age="2h", warn_after="2h"), "not shorter than max_age"),
    Case("duration_huge", freshness(max_age="99999999999d"), "longer than ten years", "output_ports[0].freshness.max_age"),
    Case("duration_hundreds_of_digits", freshness(max_age="9" * 500 + "s"), "longer than ten years"),
    Case("timeliness_huge", changed(lambda m: port(m).__setitem__("slos", {"timeliness": {"max_delay": "99999999999d"}})),
         "longer than ten years", "output_ports[0].slos.timeliness.max_delay"),
    Case("timeliness_zero", changed(lambda m: port(m).__setitem__("slos", {"timeliness": {"max_delay": "0d"}})),
         "zero duration"),
    Case("model_parent_folder", changed(lambda m: port(m).__setitem__("model", "../finance/top_supplier")),
         "not a dbt model name", "output_ports[0].model"),
    Case("model_path", changed(lambda m: port(m).__setitem__("model", "staging/stg_customer")), "not a dbt model name"),
    Case("model_selector_syntax", changed(lambda m: port(m).__setitem__("model", "+main tag:x")), "not a dbt model name"),
    Case("model_dots", changed(lambda m: port(m).__setitem__("model", "..")), "not a dbt model name"),
    Case("min_rows_past_max_rows", changed(lambda m: port(m).__setitem__(
        "slos", {"volume": {"min_rows": 10, "max_rows": 5}})), "min_rows 10 is more than max_rows 5",
         "output_ports[0].slos.volume"),
    Case("actual_time_varchar", changed(lambda m: (port(m)["contract"]["columns"].append(
        {"name": "note", "type": "varchar", "description": "A note.", "classification": "public"}),
        port(m).__setitem__("actual_time", "note"))), "is a varchar column, not a point in time",
        "output_ports[0].actual_time"),
    Case("actual_time_bigint", changed(lambda m: port(m).__setitem__("actual_time", "id")), "is a bigint column"),
    Case("actual_time_unknown", changed(lambda m: port(m).__setitem__("actual_time", "nope")), "neither 'snapshot'"),
    Case("column_names_not_a_regex", changed(lambda m: m.__setitem__("governance", {"policies": [
        {"id": "CRM-001", "title": "t", "rationale": "r", "severity": "error", "column_names": "("}]})),
         "not a regular expression", "governance.policies[0].column_names"),
    Case("column_names_lookahead", changed(lambda m: m.__setitem__("governance", {"policies": [
        {"id": "CRM-001", "title": "t", "rationale": "r", "severity": "error", "column_names": "(?=a)a"}]})),
         "no lookarounds"),
    Case("column_names_backreference", changed(lambda m: m.__setitem__("governance", {"policies": [
        {"id": "CRM-001", "title": "t", "rationale": "r", "severity": "error", "column_names": r"(a)\1"}]})),
         "not a regular expression"),
    Case("id_a_list", changed(lambda m: m.__setitem__("id", ["crm", "bad"])), "valid string", "id"),
    Case("columns_a_mapping", changed(lambda m: port(m)["contract"].__setitem__("columns", {"id": "bigint"})),
         "valid list"),
    Case("max_change_nan", GOOD_TEXT.replace("  freshness:", "  slos: {volume: {max_change: .nan}}\n  freshness:"),
         "greater than 0"),
    Case("ports_empty", changed(lambda m: m.__setitem__("output_ports", [])), "at least one entry", "output_ports"),
]

CASES = YAML_CASES + MODEL_CASES


@pytest.fixture(scope="module")
def mesh(tmp_path_factory) -> Path:
    """A copy of the sample mesh (its workspace.yaml) to add bad files to."""
    return copy_sample_mesh(tmp_path_factory.mktemp("bad_manifests"))


def write(root: Path, name: str, content: str | bytes) -> Path:
    path = root / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def assert_names_the_file(errors: ManifestErrors, path: Path, case: Case) -> None:
    assert errors.errors, case
    for error in errors.errors:
        assert error.file == str(path) and error.line >= 1, error
        assert str(error).startswith(f"{path}:{error.line}: field "), error
        assert len(str(error)) < 2000, "a message quotes the file, never all of it"
    text = " ".join(f"{e.problem} {e.fix}" for e in errors.errors)
    assert case.problem in text, str(errors)
    first = errors.errors[0]
    if case.field is not None:
        assert case.field in [e.field for e in errors.errors], str(errors)
    if case.line is not None:
        assert first.line == case.line, str(errors)


def assert_the_mesh_still_works(registry: Registry) -> None:
    """The other products load and resolve; the bad file blocks only itself (the commands: see the corpus tests)."""
    from platform_resources.governance.engine import evaluate

    assert len(registry.products) == SAMPLE_PRODUCTS and not registry.problems
    assert set(evaluate(registry).blocked) == set(registry.broken)
    assert registry.domain_order()


@pytest.mark.parametrize("case", CASES, ids=str)
def test_a_bad_manifest_is_refused_with_its_file_and_line_and_stays_in_its_file(mesh, case):
    path = write(mesh.parent, BAD_FILE, case.content)
    try:
        with pytest.raises(ManifestErrors) as caught:
            load_manifest(path)
        assert_names_the_file(caught.value, path, case)
        registry = load_registry(mesh, published=False)
        assert set(registry.broken) == {"crm.bad"}
        assert_the_mesh_still_works(registry)
    finally:
        path.unlink()


def test_a_file_that_is_no_regular_file_is_refused_without_reading_it(tmp_path):
    import os

    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)  # reading it would block forever
    with pytest.raises(ManifestErrors, match="pipe.yaml:1: field '\\(document\\)': is not a regular file"):
        load_manifest(fifo)
    (tmp_path / "folder.yaml").mkdir()
    with pytest.raises(ManifestErrors, match="is not a regular file"):
        load_manifest(tmp_path / "folder.yaml")


def test_the_corpus_covers_every_case_once():
    names = [c.name for c in CASES]
    assert len(names) == len(set(names)) and len(CASES) >= 60


def test_the_good_base_manifest_is_good(mesh):
    """Each case breaks one thing of a manifest that loads: the error is that thing."""
    path = write(mesh.parent, BAD_FILE, GOOD_TEXT)
    try:
        assert load_manifest(path).id == "crm.bad"
        from platform_resources.governance.engine import evaluate

        registry = load_registry(mesh, published=False)
        assert "crm.bad" in registry.products and not evaluate(registry).for_product("crm.bad")
    finally:
        path.unlink()


# --- what the mesh finds beyond one file ----------------------------------------------------------------------
def test_an_approval_for_an_unknown_consumer_is_a_finding(mesh):
    from platform_resources.governance.engine import evaluate

    manifest = good()
    port(manifest).update(visibility="restricted", approved_access=[
        {"consumer": "finance.returned_itemz", "reason": "typo"}, {"consumer": "finance.returned_items", "reason": "ok"}])
    path = write(mesh.parent, BAD_FILE, dump(manifest))
    try:
        report = evaluate(load_registry(mesh, published=False))
        [finding] = [f for f in report.for_product("crm.bad") if f.policy == "MESH-REG-002"]
        assert "finance.returned_itemz, which no domain publishes" in finding.message
        assert finding.file == str(path) and path.read_text().splitlines()[finding.line - 1].lstrip().startswith(
            "- consumer: finance.returned_itemz")
    finally:
        path.unlink()


def test_a_domain_cycle_is_a_finding_on_the_products_that_make_it_and_the_run_order_still_exists(mesh):
    """crm reads a finance port: finance already reads crm, so the domains would wait for each other."""
    from platform_resources.governance.engine import evaluate

    path = write(mesh.parent, BAD_FILE, dump(product("crm.bad", inputs=["finance.top_supplier.top_supplier"],
                                                     fresh=True) | {"owner": {"team": "crm", "email": "c@x.com"}}))
    try:
        registry = load_registry(mesh, published=False)
        [problem] = registry.problems["crm.bad"]
        assert "closes a cycle of domains that wait for each other: crm reads from finance reads from crm" in problem
        findings = [f for f in evaluate(registry).errors if f.policy == "MESH-REG-001"]
        assert {f.product for f in findings} == {"crm.bad"} and findings[0].file == str(path)
        order = registry.domain_order()  # the cyclic product cannot publish: it orders nothing
        assert order.index("finance") > order.index("crm")
    finally:
        path.unlink()


def test_a_dangerous_pattern_in_a_threshold_is_refused_and_a_backtracking_one_cannot_hang(mesh):
    from platform_resources.governance.engine import evaluate

    manifest = good()
    manifest["governance"] = {
        "thresholds": {"MESH-CLS-002": {"pii_name_patterns": ["(?=x)"]}},
        "policies": [{"id": "CRM-001", "title": "Names", "rationale": "r", "severity": "warning",
                      "column_names": "^(a+)+$"}]}
    port(manifest)["contract"]["columns"].append(
        {"name": "a" * 40 + "b", "type": "bigint", "description": "x", "classification": "public"})
    path = write(mesh.parent, BAD_FILE, dump(manifest))
    try:
        findings = evaluate(load_registry(mesh, published=False)).for_product("crm.bad")
        assert any(f.policy == "MESH-GOV-001" and "no lookarounds" in f.message for f in findings)
        # Python's re would take hours on the long name; RE2 answers at once.
        named = sorted(f.message.split()[1] for f in findings if f.policy == "CRM-001")
        assert named == [f"main.{'a' * 40}b", "main.id", "main.seen_at"]
    finally:
        path.unlink()


# --- workspace.yaml -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("old", "new", "field", "problem"), [
    ("{module_name: crm_domain.definitions, location_name: crm,", "{location_name: crm,",
     "load_from.1.python_module.module_name", "is missing"),
    ("working_directory: mesh_code_locations/crm}", "working_directory: mesh_code_locations/nope}",
     "load_from.1.python_module.working_directory", "is not a folder"),
    ("module_name: crm_domain.definitions", "module_name: crm_domian.definitions",
     "load_from.1.python_module.module_name", "is not a package"),
    ("  - python_module: {module_name: crm_domain", "  - python_modul: {module_name: crm_domain",
     "load_from.1.python_modul", "is not a code location entry"),
])
def test_a_workspace_entry_that_loads_nothing_is_an_error_with_its_line(tmp_path, old, new, field, problem):
    workspace = copy_sample_mesh(tmp_path)
    text = workspace.read_text()
    assert old in text
    workspace.write_text(text.replace(old, new))
    registry = load_registry(workspace, published=False)
    [error] = registry.workspace_errors
    assert (error.file, error.field) == (str(workspace), field) and problem in error.problem
    assert "crm" in workspace.read_text().splitlines()[error.line - 1]
    assert len(registry.products) == SAMPLE_PRODUCTS - 1  # crm is known only as it published; the others load
    assert not registry.domains["crm"].is_local


@pytest.mark.parametrize("content", [b"type: [\n", b"type: caf\xe9\n"], ids=["not_yaml", "not_utf8"])
def test_a_domain_whose_defs_yaml_does_not_load_is_an_error_of_its_workspace_entry(tmp_path, content):
    workspace = copy_sample_mesh(tmp_path)
    defs = tmp_path / "mesh_code_locations/crm/crm_domain/defs/data_products/defs.yaml"
    defs.write_bytes(content)
    registry = load_registry(workspace, published=False)
    [error] = registry.workspace_errors
    assert error.file == str(workspace) and "does not load" in error.problem and str(defs) in error.problem
    assert len(registry.products) == SAMPLE_PRODUCTS - 1


def test_a_workspace_that_is_not_yaml_is_an_error_not_a_crash(tmp_path):
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text("load_from: [\n")
    [error] = load_registry(workspace, published=False).workspace_errors
    assert error.file == str(workspace) and "not valid YAML" in error.problem


# --- every command, and every domain's definitions, with the whole corpus at once -----------------------------
@pytest.fixture(scope="module")
def corpus_mesh(tmp_path_factory, prepared_dbt) -> Path:
    """The sample mesh with every case of the corpus as crm/products/bad_<case>.yaml."""
    workspace = copy_sample_mesh(tmp_path_factory.mktemp("corpus"))
    for case in CASES:
        write(workspace.parent, BAD_FILE.replace("bad.yaml", f"bad_{case.name}.yaml"), case.content)
    return workspace


def test_every_domain_builds_its_definitions_with_the_whole_corpus_in_crm(corpus_mesh):
    from platform_resources.build import build_domain

    registry = load_registry(corpus_mesh, published=False)
    assert len(registry.broken) == len(CASES) and len(registry.products) == SAMPLE_PRODUCTS
    for name, domain in registry.domains.items():
        graph = build_domain(domain, registry).resolve_asset_graph()
        for manifest in registry.products_of(name):
            key = AssetKey([manifest.domain, manifest.product, manifest.output_ports[0].name])
            assert graph.get(key).tags["mesh/compliance"] != "blocked", key
    crm = build_domain(registry.domains["crm"], registry).resolve_asset_graph()
    broken = crm.get(AssetKey(["crm", "bad_duration_huge"]))
    assert not broken.is_materializable and "longer than ten years" in broken.description


@pytest.mark.parametrize("command", [
    ["list"], ["catalog"], ["map"], ["report", "--manifests-only"], ["validate", "--manifests-only"],
    ["read", "sales.orders.orders", "--limit", "1"],
], ids=lambda command: command[0])
def test_every_command_works_for_the_other_domains_with_the_whole_corpus_in_crm(corpus_mesh, fresh_home, monkeypatch,
                                                                             capsys, command):
    from platform_resources.cli import main

    monkeypatch.setenv("MESH_WORKSPACE", str(corpus_mesh))
    code = main([*command, *(["--out", str(fresh_home / "map.html")] if command == ["map"] else [])])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    if command[0] == "read":  # nothing is published in this home: the port is found, and has no version yet
        assert code == 2 and "sales.orders.orders" in err and "bad_" not in err
    elif command[0] == "validate":
        assert code == 1
        for case in CASES:
            assert f"bad_{case.name}.yaml:" in out, case
        assert "sales: 1 products, 0 errors" in out and "geography: 1 products, 0 errors" in out
    else:
        assert code == 0, err
    if command == ["list"]:
        assert out.count("BROKEN MANIFEST") == len(CASES) and "sales.orders.orders" in out
    if command == ["catalog"]:
        assert "sales.orders - Orders" in out and "crm.bad_non_utf8" in out.split("broken manifests")[1]
    if command == ["map"]:
        page = (fresh_home / "map.html").read_text()
        assert page.count('class="broken"') == len(CASES) and "sales.orders" in page
    if command[0] == "report":
        report = Path(out.splitlines()[0]).read_text()
        assert "bad_duration_huge.yaml" in report and "sales.orders" in report


def test_a_domain_deployed_alone_sees_the_broken_manifests_as_published(corpus_mesh, fresh_home, monkeypatch):
    """What crm publishes (its broken files by their errors) is what every other code location reads."""
    from platform_resources.registry import domain_registry, publish_domains

    monkeypatch.setenv("MESH_WORKSPACE", str(corpus_mesh))
    publish_domains(load_registry(corpus_mesh, published=False))
    finance = load_registry(corpus_mesh, published=False).domains["finance"]
    registry = domain_registry(finance)
    assert len(registry.broken) == len(CASES) and len(registry.products) == SAMPLE_PRODUCTS
    [error] = registry.broken["crm.bad_non_utf8"].errors
    assert error.file.endswith("bad_non_utf8.yaml") and error.line == 2 and "not UTF-8" in error.problem
    assert not registry.problems
    with pytest.raises(LookupError, match=r"crm.bad_too_big.main is not served while the manifest of crm.bad_too_big "
                                          r"is broken \(.*bad_too_big.yaml:1: "):
        registry.port("crm.bad_too_big.main")


def test_a_model_refused_by_the_manifest_is_never_given_to_dagster():
    """Every duration, cron and time zone the manifest accepts builds Dagster's FreshnessPolicy."""
    from platform_resources.manifest import Freshness
    from platform_resources.slo import freshness_policy

    for values in ({"max_age": "1m"}, {"max_age": "3650d", "warn_after": "3649d"}, {"cron": "*/5 * * * *",
                   "cron_window": "5m", "cron_timezone": "Europe/Berlin"}, {"cron": "0 0 1 * *", "cron_window": "28d"}):
        assert freshness_policy(Freshness.model_validate(copy.deepcopy(values))) is not None


def test_a_run_names_the_broken_manifest_not_the_dbt_error_it_causes(corpus_mesh):
    """What `mesh run` prints when a domain's dbt project cannot parse because a manifest of it is broken."""
    from platform_resources.governance.validate import location_failure
    from platform_resources.runner import MeshRunSummary, PortOutcome, format_summary

    registry = load_registry(corpus_mesh, published=False)
    dbt_error = RuntimeError("dbt parse failed: depends on a source named 'crm_db.customer' which was not found")
    why = location_failure(registry, "crm", dbt_error)
    first = next(iter(registry.broken_in("crm").values())).errors[0]
    assert why.startswith(f"{first.file}:{first.line} is a broken manifest ({first.problem}); fix it first. Then ")
    assert location_failure(registry, "sales", dbt_error) == f"RuntimeError: {dbt_error}"

    summary = MeshRunSummary(0.01, ports={"sales.orders.orders": PortOutcome("sales.orders.orders", rows=1)},
                             failed_domains={"crm": why},
                             broken={pid: str(e.errors[0]) for pid, e in registry.broken_in("crm").items()})
    text = format_summary(summary)
    assert not summary.ok
    assert f"crm.bad_duration_zero{' ' * 24}" in text and "NOT BUILT: broken manifest " in text
    assert "bad_duration_zero.yaml:" in text and "'0h' is a zero duration" in text
    assert f"products, {len(CASES)} broken manifests, 1/1 ports published" in text
