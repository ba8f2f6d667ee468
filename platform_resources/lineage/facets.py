"""OpenLineage facets built from the product manifests and what a publish measured."""

import os

import attr
import pyarrow as pa
from openlineage.client.facet_v2 import (
    DatasetFacet,
    column_lineage_dataset,
    data_quality_assertions_dataset,
    data_quality_metrics_dataset,
    dataset_version_dataset,
    datasource_dataset,
    documentation_dataset,
    documentation_job,
    job_type_job,
    lifecycle_state_change_dataset,
    ownership_dataset,
    ownership_job,
    schema_dataset,
    symlinks_dataset,
)

from platform_resources.contracts import CheckOutcome
from platform_resources.governance.engine import PolicyReport
from platform_resources.lineage.naming import namespace_prefix
from platform_resources.manifest import Manifest, OutputPort
from platform_resources.ports import PROCESSING_TIME_COLUMN
from platform_resources.redaction import redact_values
from platform_resources.staged import Staged, staged

PRODUCER = "https://mesh.example.com/mesh-platform/0.1.0"
# Where the project's own facet schemas are published; they ship in platform_resources/lineage/schemas/.
SCHEMA_BASE_URL = os.environ.get("MESH_FACET_SCHEMA_BASE_URL", "https://mesh.example.com/spec/")
MESH_FACET_SCHEMA = f"{SCHEMA_BASE_URL}facets/1-0-0/MeshDataProductDatasetFacet.json"


@attr.define
class MeshDataProductDatasetFacet(DatasetFacet):
    """The data product behind an output port (custom facet, prefix mesh_)."""

    productId: str  # noqa: N815
    portId: str  # noqa: N815
    domain: str
    owner: dict
    archetype: str
    status: str
    version: str
    contractVersion: str  # noqa: N815
    visibility: str
    actualTime: str  # noqa: N815
    primaryKey: list  # noqa: N815
    slos: dict
    compliance: dict | None = None
    replacedBy: str | None = None  # noqa: N815
    deprecationDate: str | None = None  # noqa: N815
    inputWatermarks: list | None = None  # noqa: N815

    @staticmethod
    def _get_schema() -> str:
        return f"{MESH_FACET_SCHEMA}#/$defs/MeshDataProductDatasetFacet"


@attr.define
class DataQualityMetricsFacet(data_quality_metrics_dataset.DataQualityMetricsDatasetFacet):
    """The client's facet names schema 1-0-1, which the spec never published; 1-0-0 has the same fields."""

    @staticmethod
    def _get_schema() -> str:
        return "https://openlineage.io/spec/facets/1-0-0/DataQualityMetricsDatasetFacet.json#/$defs/DataQualityMetricsDatasetFacet"


def owners(manifest: Manifest) -> list[tuple[str, str]]:
    return [(owner, "team" if owner.startswith("team:") else "email") for owner in manifest.owner.dagster_owners]


def port_static_facets(manifest: Manifest, port: OutputPort, port_id: str, report: PolicyReport | None = None) -> dict:
    """What is known of a port from its manifest (self-registration and every publish), with its policy status."""
    slos = {}
    if port.freshness:
        slos = {"freshnessMaxAge": port.freshness.max_age}
        if port.freshness.warn_after:
            slos["freshnessWarnAfter"] = port.freshness.warn_after
    columns = [(c.name, c.type, c.description) for c in port.contract.columns]
    columns.append((PROCESSING_TIME_COLUMN, "timestamp with time zone", "When this version was published."))
    return {
        # What the Iceberg table serves: the contract's columns and the processing time.
        "schema": schema_dataset.SchemaDatasetFacet(fields=[
            schema_dataset.SchemaDatasetFacetFields(name=name, type=kind, description=text, ordinal_position=i)
            for i, (name, kind, text) in enumerate(columns, start=1)]),
        "documentation": documentation_dataset.DocumentationDatasetFacet(
            description=f"{port.description} (data product {manifest.id}: {manifest.description})"),
        "ownership": ownership_dataset.OwnershipDatasetFacet(
            owners=[ownership_dataset.Owner(name=name, type=kind) for name, kind in owners(manifest)]),
        "dataSource": datasource_dataset.DatasourceDatasetFacet(name=f"{namespace_prefix()}-iceberg-{manifest.domain}"),
        "symlinks": symlinks_dataset.SymlinksDatasetFacet(identifiers=[
            symlinks_dataset.Identifier(namespace=namespace_prefix(), name=port_id, type="DATA_PRODUCT_PORT")]),
        "mesh_dataProduct": MeshDataProductDatasetFacet(
            productId=manifest.id, portId=port_id, domain=manifest.domain,
            owner=manifest.owner.model_dump(exclude_none=True), archetype=manifest.archetype,
            status=manifest.status, version=manifest.version, contractVersion=port.contract.version or manifest.version,
            visibility=port.visibility, actualTime=port.actual_time, primaryKey=list(port.contract.primary_key), slos=slos,
            compliance=compliance(manifest.id, report) if report else None, replacedBy=manifest.replaced_by,
            deprecationDate=str(manifest.deprecation_date) if manifest.deprecation_date else None),
    }


def with_watermarks(static: dict, watermarks: dict[str, dict]) -> dict:
    """The port's facets with the upstream version each input port consumed (its processing-time watermark)."""
    if not watermarks:
        return static
    marks = [{"inputPort": name, "sourcePort": mark["port"], "processingTime": mark["processing_time"],
              **({"snapshotId": str(mark["snapshot_id"])} if mark.get("snapshot_id") is not None else {}),
              "reconsumed": bool(mark.get("reconsumed"))} for name, mark in sorted(watermarks.items())]
    return {**static, "mesh_dataProduct": attr.evolve(static["mesh_dataProduct"], inputWatermarks=marks)}


def compliance(product_id: str, report: PolicyReport) -> dict:
    """The product's static policy results, for governance reviewing lineage."""
    summary: dict = {"status": report.status(product_id), "findings": [
        {"policy": f.policy, "severity": f.severity, "message": f.message, "waived": f.waived}
        for f in report.for_product(product_id)]}
    if product_id in report.blocked:
        summary["blockedReason"] = report.blocked[product_id]
    return summary


def assertions_facet(checks: list[CheckOutcome]) -> dict:
    """The runtime checks of a publish, as the input facet of the staged table they tested (the spec's place)."""
    return {"dataQualityAssertions": data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
        assertions=[data_quality_assertions_dataset.Assertion(assertion=c.name, success=c.passed, severity="error",
                                                              description=redact_values(c.summary)) for c in checks])}


def publish_facets(checks: list[CheckOutcome], data: Staged | pa.Table | None, snapshot_id: int | None, first_publish: bool) -> dict:
    """What a publish attempt measured, as facets of the port: row and null counts, the Iceberg snapshot. (The
    checks go on the staged input: `assertions_facet`.)"""
    facets: dict = {}
    if data is not None:
        data = staged(data)
        facets["dataQualityMetrics"] = DataQualityMetricsFacet(
            rowCount=data.num_rows,
            columnMetrics={name: data_quality_metrics_dataset.ColumnMetrics(nullCount=data.null_count(name))
                           for name in data.column_names})
    if snapshot_id is not None:
        facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=str(snapshot_id))
        state = lifecycle_state_change_dataset.LifecycleStateChange.CREATE if first_publish \
            else lifecycle_state_change_dataset.LifecycleStateChange.OVERWRITE
        facets["lifecycleStateChange"] = lifecycle_state_change_dataset.LifecycleStateChangeDatasetFacet(
            lifecycleStateChange=state)
    return facets


def duckdb_facets(namespace: str, columns: dict[str, str], descriptions: dict[str, str | None] | None = None) -> dict:
    """Schema and data source of a DuckDB relation; the data source as openlineage-dbt gives it (name and uri the
    dataset namespace), so the dataset's source does not change with the emitter."""
    descriptions = descriptions or {}
    return {"schema": schema_dataset.SchemaDatasetFacet(fields=[
                schema_dataset.SchemaDatasetFacetFields(name=name, type=kind, description=descriptions.get(name) or None)
                for name, kind in columns.items()]),
            "dataSource": datasource_dataset.DatasourceDatasetFacet(name=namespace, uri=namespace)}


def identity_lineage(source: tuple[str, str], columns: list[str]) -> dict:
    """Column lineage of a copy: every column comes from the column of the same name in `source`."""
    return {"columnLineage": column_lineage({c: [(*source, c)] for c in columns})}


def column_lineage(fields: dict[str, list[tuple[str, str, str]]]) -> column_lineage_dataset.ColumnLineageDatasetFacet:
    """fields: output column -> [(input namespace, input name, input column)]."""
    return column_lineage_dataset.ColumnLineageDatasetFacet(fields={
        column: column_lineage_dataset.Fields(inputFields=[
            column_lineage_dataset.InputField(namespace=ns, name=name, field=field) for ns, name, field in inputs])
        for column, inputs in fields.items()})


def job_facets(manifest: Manifest | None, description: str, integration: str, job_type: str,
               team_owners: list[str] = ()) -> dict:
    names = owners(manifest) if manifest else [(o, "team") for o in team_owners]
    return {
        "jobType": job_type_job.JobTypeJobFacet(processingType="BATCH", integration=integration, jobType=job_type),
        "documentation": documentation_job.DocumentationJobFacet(description=description),
        "ownership": ownership_job.OwnershipJobFacet(owners=[ownership_job.Owner(name=n, type=t) for n, t in names]),
    }
