"""Offline validation of OpenLineage events against the JSON schemas in ../shared/openlineage-spec.

A test helper, not a test file. The spec directory mirrors https://openlineage.io/spec/ (for example
`2-0-2/OpenLineage.json`, `facets/1-2-0/SchemaDatasetFacet.json`), so every schema URL an event or
facet names, and every `$ref` between schemas (facets `$ref` the core schema, e.g.
`https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/DatasetFacet`), is served from disk by a
`referencing` Registry; nothing goes to the network.

    validate_event(event)     -> problems against the published schemas (empty when valid)
    marquez_problems(event)   -> problems with Marquez's stricter rules

Both take the event as JSON-ready dicts, e.g. `json.loads(Serde.to_json(event))`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource, Unresolvable
from referencing.jsonschema import DRAFT202012

SPEC_ROOT: Path = Path(__file__).resolve().parents[2] / "shared" / "openlineage-spec"
SPEC_URL = "https://openlineage.io/spec/"
# A user's clone has no ../shared: the tests that validate against the spec skip there (CI has it).
NEEDS_SPEC = pytest.mark.skipif(not SPEC_ROOT.is_dir(), reason=f"skipped: the OpenLineage spec is not at {SPEC_ROOT} "
                                "(../shared beside the clone, as CI has it)")

# --- formats ---------------------------------------------------------------------------------------
# jsonschema checks "date-time" and "uri" only with optional packages that are not installed; the
# core schema uses both (eventTime, producer, schemaURL, _producer, _schemaURL), so check them here.

FORMAT_CHECKER = FormatChecker(Draft202012Validator.FORMAT_CHECKER.checkers)
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")


@FORMAT_CHECKER.checks("date-time", raises=ValueError)
def _is_date_time(instance: object) -> bool:
    if not isinstance(instance, str):
        return True
    if not _RFC3339.match(instance):
        return False
    datetime.fromisoformat(instance.upper().replace("Z", "+00:00"))  # raises on e.g. month 13
    return True


@FORMAT_CHECKER.checks("uri", raises=ValueError)
def _is_uri(instance: object) -> bool:
    if not isinstance(instance, str):
        return True
    if not _URI_SCHEME.match(instance) or re.search(r"[\s<>\"{}|\\^`]", instance):
        return False
    urlsplit(instance)  # raises on e.g. an invalid IPv6 host
    return True


# --- schemas ---------------------------------------------------------------------------------------


def _base(url: str) -> str:
    return url.split("#", 1)[0]


def _local_file(url: str, extra_schemas: Mapping[str, Path]) -> Path | None:
    """The file holding the schema of `url` (fragment ignored), or None when there is none."""
    base = _base(url)
    if base in extra_schemas:
        path = Path(extra_schemas[base])
        return path if path.is_file() else None
    if base.startswith(SPEC_URL):
        relative = base[len(SPEC_URL) :]
        path = (SPEC_ROOT / relative).resolve()
        if relative and SPEC_ROOT.resolve() in path.parents and path.is_file():
            return path
    return None


@lru_cache(maxsize=None)
def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _registry(extra_schemas: Mapping[str, Path]) -> Registry:
    extra = dict(extra_schemas)

    def retrieve(uri: str) -> Resource:
        path = _local_file(uri, extra)
        if path is None:
            raise NoSuchResource(ref=uri)
        return Resource.from_contents(_load(path), default_specification=DRAFT202012)

    return Registry(retrieve=retrieve)


def _errors(instance: object, url: str, registry: Registry) -> Iterator[str]:
    """Messages of `instance` against the schema at `url` (`#/$defs/Name` selects a definition)."""
    validator = Draft202012Validator({"$ref": url}, registry=registry, format_checker=FORMAT_CHECKER)
    try:
        for error in validator.iter_errors(instance):
            # allOf / anyOf errors carry the specific failures in their context: report the best one.
            specific = best_match([error]) or error
            yield f"{specific.json_path}: {specific.message}"
    except Unresolvable as error:
        ref = getattr(error, "ref", None) or url
        yield f"cannot resolve {ref} while validating against {url}"


# --- events ----------------------------------------------------------------------------------------


def _facet_groups(event: dict) -> Iterator[tuple[str, object]]:
    """(where, facets) for every facet container of a run, job or dataset event."""
    run, job = event.get("run"), event.get("job")
    if isinstance(run, dict):
        yield "run.facets", run.get("facets")
    if isinstance(job, dict):
        yield "job.facets", job.get("facets")
    for side, own in (("inputs", "inputFacets"), ("outputs", "outputFacets")):
        datasets = event.get(side)
        for i, dataset in enumerate(datasets if isinstance(datasets, list) else []):
            if isinstance(dataset, dict):
                yield f"{side}[{i}].facets", dataset.get("facets")
                yield f"{side}[{i}].{own}", dataset.get(own)
    dataset = event.get("dataset")
    if isinstance(dataset, dict):
        yield "dataset.facets", dataset.get("facets")


def _facet_problems(where: str, key: str, facet: object, extra_schemas: Mapping[str, Path], registry) -> list[str]:
    label = f"{where}.{key}"
    if not isinstance(facet, dict):
        return [f"{label}: a facet must be an object, got {type(facet).__name__}"]
    url = facet.get("_schemaURL")
    if not url:
        return [f"{label}: facet has no _schemaURL"]
    if not isinstance(url, str):
        return [f"{label}: _schemaURL must be a string"]
    path = _local_file(url, extra_schemas)
    if path is None:
        return [f"{label}: unknown schema URL {url} (not in {SPEC_ROOT} nor in extra_schemas)"]
    if facet.get("_deleted") is True:
        return []  # a deletion marker carries no facet fields; the core schema has checked it
    problems: list[str] = []
    fragment = url.partition("#")[2]
    root = _load(path)
    facet_keys = root.get("properties") if isinstance(root.get("properties"), dict) else {}
    if fragment:
        instance, target = facet, url
        # The file's root names the key the facet goes under, e.g. {"schema": {"$ref": "#/$defs/SchemaDatasetFacet"}}.
        keys_for_def = [k for k, v in facet_keys.items() if isinstance(v, dict) and v.get("$ref") == f"#{fragment}"]
        if keys_for_def and key not in keys_for_def:
            problems.append(f"{label}: {url} is the '{keys_for_def[0]}' facet, stored under '{key}'")
    elif key in facet_keys:
        instance, target = {key: facet}, url  # a whole facet file: its root describes {key: facet}
    else:
        instance, target = facet, url  # a plain schema of the facet itself (custom facets)
    problems += [f"{label}: {message}" for message in _errors(instance, target, registry)]
    return problems


def validate_event(event: dict, extra_schemas: dict[str, Path] = {}) -> list[str]:  # noqa: B006 - read only
    """Problems (empty when valid): the event against the core schema its schemaURL names (Draft 2020-12,
    with a `referencing` Registry mapping every https://openlineage.io/spec/... URL to the local file),
    then every facet (run, job, dataset, inputFacets, outputFacets) against the schema its `_schemaURL`
    points to (URL with a #/$defs/Name fragment: validate the facet against that definition). Unknown
    schema URLs are a problem unless given in extra_schemas (URL without fragment -> local file, for the
    project's custom facets). A facet without `_schemaURL` is a problem.

    Also reported: a standard facet stored under another key than its schema file names (e.g. a
    SchemaDatasetFacet under "schemas"). A facet URL without a fragment is validated as `{key: facet}`
    against the file's root when the root lists that key, else the facet against the root. Facets marked
    `_deleted: true` are checked by the core schema only.
    """
    if not isinstance(event, dict):
        return [f"an event must be an object, got {type(event).__name__}"]
    extra = {_base(url): Path(path) for url, path in extra_schemas.items()}
    registry = _registry(extra)
    problems: list[str] = []

    url = event.get("schemaURL")
    if not isinstance(url, str) or not url:
        problems.append("event: no schemaURL, so no core schema to validate against")
    elif _local_file(url, extra) is None:
        problems.append(f"event: unknown schema URL {url} (not in {SPEC_ROOT} nor in extra_schemas)")
    else:
        problems += [f"event: {message}" for message in _errors(event, url, registry)]

    for where, facets in _facet_groups(event):
        if facets is None:
            continue
        if not isinstance(facets, dict):
            problems.append(f"{where}: facets must be an object, got {type(facets).__name__}")
            continue
        for key, facet in facets.items():
            problems += _facet_problems(where, key, facet, extra, registry)
    return problems


# --- Marquez ---------------------------------------------------------------------------------------

MARQUEZ_NAMESPACE = re.compile(r"^[a-zA-Z:;=/0-9_\-\.@+]{1,1024}$")


def _datasets(event: dict) -> Iterator[tuple[str, object]]:
    for side in ("inputs", "outputs"):
        datasets = event.get(side)
        for i, dataset in enumerate(datasets if isinstance(datasets, list) else []):
            yield f"{side}[{i}]", dataset
    if "dataset" in event:
        yield "dataset", event["dataset"]


def marquez_problems(event: dict) -> list[str]:
    r"""Marquez's stricter rules: job facet `jobType` present with processingType, integration and jobType;
    every namespace (job and datasets) matches ^[a-zA-Z:;=/0-9_\-\.@+]{1,1024}$; dataset names do not
    start with a digit and contain no '#'. (DatasetEvents have no job: only dataset rules.)"""
    if not isinstance(event, dict):
        return [f"an event must be an object, got {type(event).__name__}"]
    problems: list[str] = []
    is_dataset_event = "dataset" in event and "job" not in event and "run" not in event

    if not is_dataset_event:
        job = event.get("job")
        if not isinstance(job, dict):
            problems.append("job: missing (only a DatasetEvent has no job)")
        else:
            problems += _namespace_problems("job", job.get("namespace"))
            facets = job.get("facets") if isinstance(job.get("facets"), dict) else {}
            job_type = facets.get("jobType")
            if not isinstance(job_type, dict):
                problems.append("job.facets.jobType: missing; Marquez needs processingType, integration and jobType")
            else:
                for field in ("processingType", "integration", "jobType"):
                    value = job_type.get(field)
                    if not isinstance(value, str) or not value:
                        problems.append(f"job.facets.jobType.{field}: missing or empty")

    for where, dataset in _datasets(event):
        if not isinstance(dataset, dict):
            problems.append(f"{where}: a dataset must be an object")
            continue
        problems += _namespace_problems(where, dataset.get("namespace"))
        name = dataset.get("name")
        if not isinstance(name, str) or not name:
            problems.append(f"{where}.name: missing or empty")
        else:
            if name[0] in "0123456789":
                problems.append(f"{where}.name: {name!r} starts with a digit")
            if "#" in name:
                problems.append(f"{where}.name: {name!r} contains '#'")
    return problems


def _namespace_problems(where: str, namespace: object) -> list[str]:
    if not isinstance(namespace, str) or not MARQUEZ_NAMESPACE.match(namespace):
        return [f"{where}.namespace: {namespace!r} does not match {MARQUEZ_NAMESPACE.pattern}"]
    return []


# --- what Marquez stores ---------------------------------------------------------------------------
# Read from Marquez's source (api/.../db/OpenLineageDao.java, buildJobFromEvent and findParentJobRow; the jobs
# table's full name is written by the rewrite_jobs_fqn_table trigger, R__Jobs_view_and_rewrite_function.sql).


def marquez_job_name(name: str, parent_name: str | None) -> str:
    """The name Marquez stores for a job whose run has a parent job of (stored) name `parent_name`:
    `<parent>.<name>`, unless the name already starts with the parent's name and a dot."""
    if parent_name is None or name.startswith(parent_name + "."):
        return name
    return f"{parent_name}.{name}"


def _parse_parent_job_name(name: str) -> str:  # Utils.parseParentJobName
    return name.rsplit(".", 1)[0] if "." in name else name


def marquez_jobs(events: list[dict]) -> tuple[list[str | None], set[tuple[str, str]]]:
    """Replays run events, in order, as Marquez stores their jobs: (the stored job name of each event, None for a
    DatasetEvent; the placeholder jobs Marquez creates for parents it has never seen a run of)."""
    runs: dict[str, tuple[str, str]] = {}  # run id -> (namespace, stored job name)
    placeholders: set[tuple[str, str]] = set()
    names: list[str | None] = []
    for event in events:
        if "job" not in event:
            names.append(None)
            continue
        job, parent = event["job"], event["run"].get("facets", {}).get("parent")
        parent_name = None
        if parent:
            parent_name = parent["job"]["name"]
            if parent_name == job["name"]:
                parent_name = _parse_parent_job_name(parent_name)
            # The parent run's job is used when it is the job the facet names (by its stored name); otherwise, or
            # when Marquez has seen no event of that run, it creates a placeholder job, in the child's namespace.
            if runs.get(parent["run"]["runId"]) != (parent["job"]["namespace"], parent_name):
                placeholders.add((job["namespace"], parent_name))
                runs.setdefault(parent["run"]["runId"], (job["namespace"], parent_name))
        stored = marquez_job_name(job["name"], parent_name)
        runs[event["run"]["runId"]] = (job["namespace"], stored)
        names.append(stored)
    return names, placeholders
