"""The offline OpenLineage validator (tests/openlineage_spec.py) accepts what the official client emits
and reports each kind of mistake it is meant to catch."""

import copy
import inspect
import json
import uuid
from pathlib import Path

import pytest
from openlineage.client import facet_v2
from openlineage.client.event_v2 import (
    DatasetEvent,
    InputDataset,
    Job,
    OutputDataset,
    Run,
    RunEvent,
    RunState,
    StaticDataset,
)
from openlineage.client.facet_v2 import (
    column_lineage_dataset,
    documentation_dataset,
    job_type_job,
    nominal_time_run,
    output_statistics_output_dataset,
    schema_dataset,
)
from openlineage.client.serde import Serde
from openlineage_spec import NEEDS_SPEC, SPEC_ROOT, marquez_problems, validate_event

pytestmark = NEEDS_SPEC

PRODUCER = "https://github.com/example/mesh-platform"
EVENT_TIME = "2024-05-01T06:00:00.000000+00:00"

def as_json(event) -> dict:
    return json.loads(Serde.to_json(event))


def run_event() -> dict:
    lines = InputDataset(
        namespace="duckdb://finance",
        name="finance.sales_orders.order_lines",
        facets={"schema": schema_dataset.SchemaDatasetFacet(fields=[
            schema_dataset.SchemaDatasetFacetFields(name="l_quantity", type="decimal(15,2)"),
        ])},
    )
    summary = OutputDataset(
        namespace="duckdb://finance",
        name="finance.main.pricing_summary",
        facets={
            "schema": schema_dataset.SchemaDatasetFacet(fields=[
                schema_dataset.SchemaDatasetFacetFields(name="sum_qty", type="decimal(38,2)", description="Total quantity."),
            ]),
            "documentation": documentation_dataset.DocumentationDatasetFacet(description="TPC-H Q1."),
            "columnLineage": column_lineage_dataset.ColumnLineageDatasetFacet(fields={
                "sum_qty": column_lineage_dataset.Fields(inputFields=[
                    column_lineage_dataset.InputField(
                        namespace="duckdb://finance", name="finance.sales_orders.order_lines", field="l_quantity"
                    ),
                ]),
            }),
        },
        outputFacets={"outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(rowCount=4)},
    )
    event = RunEvent(
        eventType=RunState.COMPLETE,
        eventTime=EVENT_TIME,
        producer=PRODUCER,
        run=Run(
            runId=str(uuid.UUID("0190b7a0-0000-7000-8000-000000000001")),
            facets={"nominalTime": nominal_time_run.NominalTimeRunFacet(nominalStartTime=EVENT_TIME)},
        ),
        job=Job(
            namespace="mesh",
            name="finance.pricing_summary",
            facets={"jobType": job_type_job.JobTypeJobFacet(processingType="BATCH", integration="DAGSTER", jobType="ASSET")},
        ),
        inputs=[lines],
        outputs=[summary],
    )
    return as_json(event)


def dataset_event() -> dict:
    event = DatasetEvent(
        eventTime=EVENT_TIME,
        producer=PRODUCER,
        dataset=StaticDataset(
            namespace="duckdb://sales",
            name="sales.sales_orders.orders",
            facets={
                "schema": schema_dataset.SchemaDatasetFacet(fields=[
                    schema_dataset.SchemaDatasetFacetFields(name="o_orderkey", type="bigint"),
                ]),
                "documentation": documentation_dataset.DocumentationDatasetFacet(description="Every order."),
            },
        ),
    )
    return as_json(event)


def test_spec_root_is_the_shared_directory_beside_the_repo():
    assert (SPEC_ROOT / "2-0-2" / "OpenLineage.json").is_file(), f"OpenLineage spec not found at {SPEC_ROOT}"


@pytest.mark.parametrize("make", [run_event, dataset_event], ids=["RunEvent", "DatasetEvent"])
def test_client_events_are_valid(make):
    event = make()
    assert event["schemaURL"].startswith("https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/")
    assert validate_event(event) == []
    assert marquez_problems(event) == []


def mutated(make, change) -> dict:
    event = copy.deepcopy(make())
    change(event)
    return event


def only(problems: list[str], *fragments: str) -> None:
    """At least one problem, and each names every fragment."""
    assert problems, "expected a problem"
    for fragment in fragments:
        assert any(fragment in p for p in problems), f"{fragment!r} not in {problems}"


# --- validate_event ---------------------------------------------------------------------------------


def test_missing_event_time():
    event = mutated(run_event, lambda e: e.pop("eventTime"))
    only(validate_event(event), "event:", "'eventTime' is a required property")


def test_missing_event_time_in_a_dataset_event():
    event = mutated(dataset_event, lambda e: e.pop("eventTime"))
    only(validate_event(event), "'eventTime' is a required property")


def test_formats_are_checked():
    def change(e):
        e["eventTime"] = "yesterday"
        e["run"]["runId"] = "run-1"
        e["producer"] = "mesh platform"

    problems = validate_event(mutated(run_event, change))
    only(problems, "'yesterday' is not a 'date-time'", "'run-1' is not a 'uuid'", "'mesh platform' is not a 'uri'")


def test_wrong_event_type_value():
    only(validate_event(mutated(run_event, lambda e: e.update(eventType="DONE"))), "$.eventType", "'DONE'")


def test_wrong_facet_field_type_is_caught_by_the_facet_schema():
    def change(e):
        e["outputs"][0]["facets"]["schema"]["fields"][0]["name"] = 5

    only(validate_event(mutated(run_event, change)), "outputs[0].facets.schema", "5 is not of type 'string'")


@pytest.mark.parametrize(
    ("where", "change", "message"),
    [
        ("run.facets.nominalTime", lambda e: e["run"]["facets"]["nominalTime"].update(nominalStartTime=3), "3 is not of type 'string'"),
        ("job.facets.jobType", lambda e: e["job"]["facets"]["jobType"].pop("integration"), "'integration' is a required property"),
        ("inputs[0].facets.schema", lambda e: e["inputs"][0]["facets"]["schema"].update(fields="l_quantity"), "is not of type 'array'"),
        ("outputs[0].facets.documentation", lambda e: e["outputs"][0]["facets"]["documentation"].pop("description"), "'description' is a required property"),
        ("outputs[0].outputFacets.outputStatistics", lambda e: e["outputs"][0]["outputFacets"]["outputStatistics"].update(rowCount="4"), "'4' is not of type 'integer'"),
        ("outputs[0].facets.columnLineage", lambda e: e["outputs"][0]["facets"]["columnLineage"]["fields"]["sum_qty"].pop("inputFields"), "'inputFields' is a required property"),
    ],
)
def test_every_facet_container_is_validated(where, change, message):
    only(validate_event(mutated(run_event, change)), where, message)


def test_dataset_event_facets_are_validated():
    def change(e):
        e["dataset"]["facets"]["documentation"]["description"] = ["not", "text"]

    only(validate_event(mutated(dataset_event, change)), "dataset.facets.documentation", "is not of type 'string'")


def test_unknown_facet_schema_url():
    url = "https://openlineage.io/spec/facets/9-9-9/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet"
    event = mutated(run_event, lambda e: e["outputs"][0]["facets"]["schema"].update(_schemaURL=url))
    only(validate_event(event), "outputs[0].facets.schema", f"unknown schema URL {url}")


def test_unknown_event_schema_url():
    url = "https://openlineage.io/spec/9-9-9/OpenLineage.json#/$defs/RunEvent"
    only(validate_event(mutated(run_event, lambda e: e.update(schemaURL=url))), f"unknown schema URL {url}")


def test_fragment_that_points_nowhere():
    # The legacy client wrote "#/definitions/..."; the published schemas use "$defs".
    url = "https://openlineage.io/spec/facets/1-0-1/NominalTimeRunFacet.json#/definitions/NominalTimeRunFacet"
    event = mutated(run_event, lambda e: e["run"]["facets"]["nominalTime"].update(_schemaURL=url))
    only(validate_event(event), "run.facets.nominalTime", "cannot resolve")


def test_facet_without_schema_url():
    event = mutated(run_event, lambda e: e["job"]["facets"]["jobType"].pop("_schemaURL"))
    only(validate_event(event), "job.facets.jobType: facet has no _schemaURL")


def test_facet_under_the_wrong_key():
    def change(e):
        e["outputs"][0]["facets"]["schemas"] = e["outputs"][0]["facets"].pop("schema")

    only(validate_event(mutated(run_event, change)), "outputs[0].facets.schemas", "is the 'schema' facet")


def test_deleted_facet_is_only_checked_by_the_core_schema():
    def change(e):
        doc = e["outputs"][0]["facets"]["documentation"]
        doc.pop("description")
        doc["_deleted"] = True

    assert validate_event(mutated(run_event, change)) == []


CUSTOM_URL = "https://mesh.example.com/spec/facets/1-0-0/MeshProductJobFacet.json"


@pytest.fixture
def custom_facet_schema(tmp_path) -> Path:
    path = tmp_path / "MeshProductJobFacet.json"
    path.write_text(json.dumps({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": CUSTOM_URL,
        "$defs": {
            "MeshProductJobFacet": {
                "allOf": [
                    {"$ref": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/JobFacet"},
                    {"type": "object", "properties": {"productId": {"type": "string"}}, "required": ["productId"]},
                ],
                "type": "object",
            }
        },
        "type": "object",
        "properties": {"meshProduct": {"$ref": "#/$defs/MeshProductJobFacet"}},
    }))
    return path


def with_custom_facet(fragment: str = "#/$defs/MeshProductJobFacet", **fields) -> dict:
    facet = {"_producer": PRODUCER, "_schemaURL": CUSTOM_URL + fragment, **fields}
    return mutated(run_event, lambda e: e["job"]["facets"].update(meshProduct=facet))


def test_custom_facet_needs_its_schema(custom_facet_schema):
    only(validate_event(with_custom_facet(productId="finance.pricing_summary")), "job.facets.meshProduct", "unknown schema URL")
    assert validate_event(with_custom_facet(productId="finance.pricing_summary"), {CUSTOM_URL: custom_facet_schema}) == []


def test_custom_facet_is_validated_against_its_schema(custom_facet_schema):
    extra = {CUSTOM_URL: custom_facet_schema}
    only(validate_event(with_custom_facet(productId=7), extra), "job.facets.meshProduct", "7 is not of type 'string'")
    only(validate_event(with_custom_facet(), extra), "'productId' is a required property")
    only(validate_event(with_custom_facet(productId="p", _producer="not a uri"), extra), "'not a uri' is not a 'uri'")


def test_custom_facet_url_without_fragment_uses_the_root_schema(custom_facet_schema):
    extra = {CUSTOM_URL: custom_facet_schema}
    assert validate_event(with_custom_facet("", productId="p"), extra) == []
    only(validate_event(with_custom_facet("", productId=1), extra), "1 is not of type 'string'")


# --- marquez_problems ------------------------------------------------------------------------------


def test_bad_job_namespace():
    event = mutated(run_event, lambda e: e["job"].update(namespace="my ns"))
    assert validate_event(event) == []  # the spec allows it; Marquez does not
    only(marquez_problems(event), "job.namespace: 'my ns'")


def test_bad_dataset_namespaces():
    def change(e):
        e["inputs"][0]["namespace"] = "my ns"
        e["outputs"][0]["namespace"] = "duckdb://finance?x=1"

    only(marquez_problems(mutated(run_event, change)), "inputs[0].namespace: 'my ns'", "outputs[0].namespace")
    only(marquez_problems(mutated(dataset_event, lambda e: e["dataset"].update(namespace="my ns"))), "dataset.namespace")


def test_dataset_name_starting_with_a_digit():
    event = mutated(run_event, lambda e: e["outputs"][0].update(name="1abc"))
    assert validate_event(event) == []
    only(marquez_problems(event), "outputs[0].name: '1abc' starts with a digit")
    only(marquez_problems(mutated(dataset_event, lambda e: e["dataset"].update(name="1abc"))), "dataset.name")


def test_dataset_name_with_a_hash():
    only(marquez_problems(mutated(run_event, lambda e: e["inputs"][0].update(name="a#b"))), "inputs[0].name", "contains '#'")


def test_missing_job_type_facet():
    event = mutated(run_event, lambda e: e["job"]["facets"].pop("jobType"))
    assert validate_event(event) == []
    only(marquez_problems(event), "job.facets.jobType: missing")


def test_job_type_facet_without_job_type():
    # jobType is optional in the spec's JobTypeJobFacet, but Marquez needs it.
    event = mutated(run_event, lambda e: e["job"]["facets"]["jobType"].pop("jobType"))
    assert validate_event(event) == []
    only(marquez_problems(event), "job.facets.jobType.jobType: missing")


# --- what the installed client emits ----------------------------------------------------------------

# Schema URLs the installed openlineage-python client emits that the shared spec copy lacks.
KNOWN_MISSING = {
    "https://openlineage.io/spec/facets/1-0-1/DataQualityMetricsDatasetFacet.json#/$defs/DataQualityMetricsDatasetFacet",
}


def client_schema_urls() -> set[str]:
    urls = set()
    for module_name in dir(facet_v2):
        module = getattr(facet_v2, module_name)
        if not inspect.ismodule(module):
            continue
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, facet_v2.BaseFacet) and cls.__module__ == module.__name__:
                urls.add(cls._get_schema())
    return urls


def test_client_facet_schema_urls_are_in_the_local_spec():
    urls = client_schema_urls()
    assert len(urls) > 30
    missing = set()
    for url in urls:
        probe = {"_producer": PRODUCER, "_schemaURL": url}
        event = mutated(run_event, lambda e: e["run"]["facets"].update(probe=probe))
        if any("unknown schema URL" in p or "cannot resolve" in p for p in validate_event(event)):
            missing.add(url)
    assert missing == KNOWN_MISSING, "the shared spec changed: update KNOWN_MISSING"
