"""The asset of one output port: write, audit, publish, then measure, with lineage around it."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AutomationCondition,
    BackfillPolicy,
    Failure,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    asset,
)

from platform_resources import dbt, metrics, operational, ports, slo
from platform_resources.asset_metadata import column_schema, display_path, how_to_read, port_column_lineage
from platform_resources.contracts import CheckOutcome
from platform_resources.governance import model_reads
from platform_resources.governance.contract_changes import (contract_changes, contract_from_record, contract_record,
                                                            major_bumped, next_major)
from platform_resources.governance.engine import PolicyReport
from platform_resources.governance.runtime import checks_of, run_runtime_checks, static_policy_check
from platform_resources.home import domain_duckdb_path
from platform_resources.lineage import naming
from platform_resources.inputs import consumed_watermarks
from platform_resources.lineage.facets import (assertions_facet, column_lineage, port_static_facets, publish_facets,
                                               with_watermarks)
from platform_resources.lineage.resource import LineageResource
from platform_resources.manifest import Manifest, OutputPort
from platform_resources.partitions import PartitionWindow, partitioning_text, sql_predicate, window_of_run
from platform_resources.redaction import redacted_error
from platform_resources.registry import Registry
from platform_resources.slo import SLO_CHECKS, freshness_policy
from platform_resources.staged import StagedRelation


def _tags(manifest: Manifest, port: OutputPort, report: PolicyReport) -> dict[str, str]:
    tags = {tag: "" for tag in manifest.tags}
    tags.update({"mesh/archetype": manifest.archetype, "mesh/status": manifest.status, "mesh/visibility": port.visibility,
                 "mesh/compliance": report.status(manifest.id)})  # a tag, so the Dagster UI can filter on it
    return tags


def _policy_metadata(product_id: str, report: PolicyReport) -> dict:
    findings = report.for_product(product_id)
    metadata = {"mesh/policy_findings": MetadataValue.md(
        "| severity | policy | finding | where |\n|---|---|---|---|\n" + "\n".join(
            f"| {f.severity}{' (waived until ' + str(f.waived_until) + ')' if f.waived else ''} | {f.policy} {f.title} "
            f"| {f.message.replace('|', '/')} | {f.file}:{f.line} |" for f in findings)
        if findings else "No findings: every static policy passes.")}
    if product_id in report.blocked:
        metadata["mesh/blocked"] = report.blocked[product_id]
    return metadata


def _port_metadata(registry: Registry, manifest: Manifest, port: OutputPort, port_id: str) -> dict:
    manifest_file = display_path(registry.files[manifest.id])
    metadata = {
        "dagster/column_schema": column_schema(port),
        "dagster/column_lineage": port_column_lineage(port, dbt.internal_key(manifest.domain, port.dbt_model)),
        "dagster/table_name": f"{ports.CATALOG_NAME}.{ports.table_name(port_id)}",
        "mesh/product_id": manifest.id,
        "mesh/port_id": port_id,
        "mesh/contract_version": port.contract.version or manifest.version,
        "mesh/product_version": manifest.version,
        "mesh/primary_key": ", ".join(port.contract.primary_key),
        "mesh/actual_time": port.actual_time,
        **({"mesh/partitioning": partitioning_text(port)} if port.partitioning else {}),
        "mesh/visibility": port.visibility,
        "mesh/owner": manifest.owner.label,
        "mesh/consumers": ", ".join(registry.consumers(port_id)) or "none yet",
        "mesh/manifest": MetadataValue.path(manifest_file),  # relative to the workspace: the same for everyone
        "mesh/read": how_to_read(manifest, port, port_id, manifest_file),
        **lifecycle_metadata(manifest),
    }
    # No `dagster/uri` here: where the table lives is this machine's path; each materialization records the location
    # of the version it published.
    return metadata


def lifecycle_metadata(manifest: Manifest) -> dict:
    """Where a product's consumers go and when (deprecated, retired), and that a dormant one processes nothing."""
    metadata = {}
    if manifest.replaced_by:
        metadata["mesh/replaced_by"] = manifest.replaced_by
    if manifest.deprecation_date:
        metadata["mesh/deprecation_date"] = str(manifest.deprecation_date)
    if not manifest.processed:
        metadata["mesh/not_processed"] = f"{manifest.status}: runs and automation leave it alone" + (
            "; its ports still serve" if manifest.status == "dormant" else "; its ports serve nothing")
    return metadata


def port_asset(registry: Registry, manifest: Manifest, port: OutputPort, relations: dict[str, str],
               report: PolicyReport, current_policies: Callable[[], PolicyReport],
               partitions: PartitionsDefinition | None = None) -> AssetsDefinition:
    """report: the static findings at load (metadata, tags); current_policies: the gate, evaluated at publish;
    partitions: the port's, when it is published a partition window at a time (a range in one run)."""
    port_id = f"{manifest.id}.{port.name}"
    key = AssetKey([manifest.domain, manifest.product, port.name])
    model_key = dbt.internal_key(manifest.domain, port.dbt_model)
    checks = [AssetCheckSpec(c.name, asset=key, description=c.description, blocking=c.blocking)
              for c in (static_policy_check(), *checks_of(manifest, port))]
    declared_slos = {f"slo_{name}" for name, slo in port.slos if slo is not None}
    checks += [AssetCheckSpec(name, asset=key, description=text) for name, text in SLO_CHECKS.items() if name in declared_slos]

    @asset(key=key, deps=[model_key], group_name=manifest.domain, description=f"{manifest.description}\n\n**Port {port.name}**: {port.description}",
           owners=manifest.owner.dagster_owners, kinds={"iceberg"}, tags=_tags(manifest, port, report),
           metadata={**_port_metadata(registry, manifest, port, port_id), **_policy_metadata(manifest.id, report)},
           check_specs=checks, freshness_policy=freshness_policy(port.freshness),
           # A blocked product would only fail again: the daemon leaves it alone until a fixed manifest is deployed.
           # A dormant or retired one processes nothing new.
           automation_condition=None if manifest.id in report.blocked or not manifest.processed
           else AutomationCondition.eager(),
           code_version=port.contract.version or manifest.version, pool=dbt.duckdb_pool(manifest.domain),
           partitions_def=partitions, backfill_policy=BackfillPolicy.single_run() if partitions else None)
    def _publish(context: AssetExecutionContext, lineage: LineageResource) -> Iterator:
        run = lineage.port_run(context, manifest, port.name)
        inputs = [(*naming.relation_dataset(manifest.domain, relations[port.dbt_model]), {})] \
            if port.dbt_model in relations else []
        port_dataset = naming.port_dataset(port_id)
        policies = current_policies()  # the gate and its lineage agree, even if a waiver expired since load
        static = port_static_facets(manifest, port, port_id, policies)
        run.start(inputs, [(*port_dataset, static)])
        attempt = PublishAttempt()

        def tested() -> list:  # the checks ran on the staged table: its input facets, as the spec places them
            return [(*dataset, assertions_facet(attempt.checks)) for dataset in inputs] if attempt.checks else inputs

        try:
            yield from _write_audit_publish(context, registry, manifest, port, relations, policies, attempt)
        except Exception as exc:
            run.fail(exc, tested(), [(*port_dataset, {**static, **publish_facets(attempt.checks, attempt.staged, None, False)})])
            safe = redacted_error(exc)  # what reaches Dagster's event log quotes no row value
            if safe is exc:
                raise
            raise safe from None
        finally:
            if attempt.staged is not None:
                attempt.staged.close()  # what lineage reports of it below was counted when it was staged
        measured = publish_facets(attempt.checks, attempt.staged, attempt.published.snapshot_id,
                                  attempt.published.first_publish)
        identity = column_lineage({c.name: [(*inputs[0][:2], c.name)] for c in port.contract.columns})
        consumed = with_watermarks(static, attempt.watermarks)
        run.complete(tested(), [(*port_dataset, {**consumed, **measured, "columnLineage": identity})])

    return _publish


@dataclass
class PublishAttempt:
    """What one write-audit-publish got to, for the lineage events that report it."""

    checks: list[CheckOutcome] = field(default_factory=list)
    staged: StagedRelation | None = None
    published: ports.PublishResult | None = None
    watermarks: dict[str, dict] = field(default_factory=dict)  # input port -> the upstream version it consumed
    window: PartitionWindow | None = None  # the partitions it publishes; None for an unpartitioned port


def _write_audit_publish(context: AssetExecutionContext, registry: Registry, manifest: Manifest, port: OutputPort,
                         relations: dict[str, str], report: PolicyReport, attempt: PublishAttempt) -> Iterator:
    """Stage the dbt model's result, run the policies on it, and publish it only if no blocking check failed.

    Every check result goes with the materialization it validated (MaterializeResult.check_results), so Dagster
    records it against this publish; when nothing is published, the results show on their own before the failure."""
    port_id = f"{manifest.id}.{port.name}"
    checks = [_static_policy_result(manifest.id, report)]
    try:
        published = _audit_and_publish(context, registry, manifest, port, relations, report, attempt, checks)
    except Exception:
        yield from checks  # the port keeps serving its previous version: the checks say why
        raise
    window = attempt.window
    where = f" of partitions {window.label}" if window and not window.whole else ""
    context.log.info(f"published {port_id}: {published.rows} rows{where}, processing time "
                     f"{published.processing_time.isoformat()}")
    input_rows = {p.name: ((metrics.latest(p.source) or {}).get("metrics") or {}).get("row_count")
                  for p in manifest.input_ports if p.source}
    if published.expired:
        context.log.info(f"retention ({ports.retention_text(port.retention)}) expired {published.expired} older "
                         f"versions of {port_id}; the epoch is now {published.epoch.isoformat()}")
    measured = slo.measure(port, attempt.staged, published.processing_time, metrics.latest(port_id), input_rows,
                           metrics.retained_records(port_id, published.epoch) if port.retention else None,
                           published.total_rows if where else None)
    attempt.staged.close()  # measured: the domain's DuckDB opens as usual again (the watermarks below read it)
    results = slo.evaluate(port, measured)
    attempt.watermarks = metrics.mark_reconsumed(  # before this publish's record: compared with the one before
        consumed_watermarks(manifest.domain, {p.name: p.source for p in manifest.input_ports if p.source}),
        metrics.latest(port_id))
    metrics.record(port_id, published.processing_time, {**slo.as_record(measured, results), "inputs": attempt.watermarks})
    slo_checks = [AssetCheckResult(check_name=result.name, passed=result.passed, description=result.summary,
                                   severity=AssetCheckSeverity.ERROR if result.severity == "error" else AssetCheckSeverity.WARN,
                                   metadata=result.metadata)
                  for result in results]
    yield MaterializeResult(metadata={
        "dagster/row_count": published.rows,
        "mesh/processing_time": MetadataValue.timestamp(published.processing_time),
        "mesh/snapshot_id": str(published.snapshot_id),
        "dagster/uri": published.location,
        **_metric_metadata(measured),
        **({"mesh/input_watermarks": MetadataValue.json(attempt.watermarks)} if attempt.watermarks else {}),
        **({"mesh/partitions": window.label, "mesh/total_rows": published.total_rows} if window else {}),
    }, check_results=[*checks, *slo_checks])


def _audit_and_publish(context: AssetExecutionContext, registry: Registry, manifest: Manifest, port: OutputPort,
                       relations: dict[str, str], report: PolicyReport, attempt: PublishAttempt,
                       checks: list[AssetCheckResult]) -> ports.PublishResult:
    """The gate and the commit; appends each check result to `checks` as it is known, raises when nothing is published."""
    port_id = f"{manifest.id}.{port.name}"
    if not manifest.processed:
        raise Failure(description=f"{manifest.id} is {manifest.status}: not processed, nothing published. Set "
                                  f"'status: active' in {display_path(registry.files[manifest.id])} to publish again.")
    if manifest.id in report.blocked:
        raise Failure(description=f"{manifest.id} is blocked by policy, nothing published; the port keeps serving its "
                                  f"previous version. {report.blocked[manifest.id]}. Run `mesh validate` for every finding.")
    if port.dbt_model not in relations:
        raise Failure(f"port {port_id} is built by dbt model '{port.dbt_model}', which dbt_projects/{manifest.domain} "
                      f"does not have; add the model or set `model:` on the port in {display_path(registry.files[manifest.id])}")
    leaks = model_reads.leaks_at_publish(registry, manifest, context.run.run_id)
    if leaks:  # the SQL dbt ran read more than the product may: its result is never served
        raise Failure(description=f"{port_id} was not published: MESH-ACC-003 " + "; ".join(leaks))
    refuse_unannounced_breaking_change(registry, manifest, port, port_id)
    attempt.window = window_of_run(context, port) if context.assets_def.partitions_def else None
    where = sql_predicate(attempt.window) if attempt.window is not None and not attempt.window.whole else None
    attempt.staged = StagedRelation(domain_duckdb_path(manifest.domain), relations[port.dbt_model], where,
                                    operational.systems_read(registry.products_of(manifest.domain)))
    results = run_runtime_checks(manifest, port, attempt.staged)
    attempt.checks = [outcome for _, outcome in results]
    checks += [AssetCheckResult(check_name=outcome.name, passed=outcome.passed, description=outcome.summary,
                                severity=AssetCheckSeverity.ERROR if check.blocking else AssetCheckSeverity.WARN,
                                metadata={"mesh/policy": check.policy.id, **outcome.details})
               for check, outcome in results]
    failed = [outcome for check, outcome in results if check.blocking and not outcome.passed]
    if failed:
        raise Failure(description=f"{port_id} failed blocking checks, nothing published; the port keeps serving "
                                  f"its previous version. " + "; ".join(f"{o.name}: {o.summary}" for o in failed))
    attempt.published = ports.publish(port_id, attempt.staged, {c.name: c.description for c in port.contract.columns},
                                      publish_stamp(manifest, port, context.run.run_id), port.retention,
                                      attempt.window)
    return attempt.published


def publish_stamp(manifest: Manifest, port: OutputPort, run_id: str) -> ports.Stamp:
    """What a publish records about its version: the versions and the contract it serves, the run that published it."""
    return ports.Stamp(product_version=manifest.version, contract_version=port.contract.version or manifest.version,
                       contract=contract_record(port.contract), run_id=run_id)


def refuse_unannounced_breaking_change(registry: Registry, manifest: Manifest, port: OutputPort, port_id: str) -> None:
    """A contract change that breaks the port's consumers publishes only with a major version bump: compared with
    the contract the port serves now (recorded with its publish), so it holds without git and without CI."""
    served = ports.served_stamp(port_id)
    old = contract_from_record(served.contract) if served and served.contract else None
    if old is None or served.product_version is None:
        return  # never published, or published before publishes recorded their contract: nothing to compare with
    changes = contract_changes(old, port.contract)
    if changes and not major_bumped(served.product_version, manifest.version):
        consumers = ", ".join(registry.consumers(port_id)) or "none registered"
        raise Failure(description=(
            f"{port_id}: breaking contract change since the version it serves (product version "
            f"{served.product_version}): {'; '.join(changes)}. Nothing published; the port keeps serving its previous "
            f"version. Fix: bump the major version in {registry.files[manifest.id]} (version: {manifest.version} -> "
            f"{next_major(served.product_version)}) and tell its consumers ({consumers}), or undo the change."))


def _static_policy_result(product_id: str, report: PolicyReport) -> AssetCheckResult:
    findings = report.for_product(product_id)
    errors = [f for f in findings if f.blocking]
    blocked = report.blocked.get(product_id)
    summary = blocked or (f"{len(findings)} findings, none blocking" if findings else "every static policy passes")
    return AssetCheckResult(check_name=static_policy_check().name, passed=blocked is None, description=summary,
                            severity=AssetCheckSeverity.ERROR,
                            metadata={"errors": len(errors), "warnings": sum(f.open_warning for f in findings),
                                      "waived": sum(f.waived for f in findings)})


def _metric_metadata(measured: dict) -> dict:
    """Numeric metadata, so the Dagster UI plots every metric over time, and the durations as people read them."""
    metadata = {f"mesh/{name}": float(measured[name]) for name in
                ("timeliness_seconds", "processing_interval_seconds", "row_count_change") if measured[name] is not None}
    for name in ("timeliness", "processing_interval"):
        if measured[f"{name}_seconds"] is not None:
            metadata[f"mesh/{name}"] = slo.duration_text(measured[f"{name}_seconds"])
    shares = [share for share in measured["completeness"].values() if share is not None]
    if shares:
        metadata["mesh/completeness_min"] = min(shares)
    for name in ("epoch_processing_time", "epoch_actual_time", "last_actual_time"):
        if measured[name]:
            metadata[f"mesh/{name}"] = MetadataValue.timestamp(datetime.fromisoformat(measured[name]))
    return metadata
