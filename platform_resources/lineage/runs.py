"""OpenLineage runs of the mesh's jobs: START, then COMPLETE or FAIL, linked to the product and Dagster runs."""

import traceback
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

import dagster
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
from openlineage.client.facet_v2 import error_message_run, parent_run, processing_engine_run
from openlineage.client.uuid import generate_new_uuid

from platform_resources.lineage.delivery import delivery
from platform_resources.lineage.facets import PRODUCER
from platform_resources.lineage.naming import domain_job, job_namespace, product_job
from platform_resources.redaction import redact_values

Dataset = tuple[str, str, dict]  # namespace, name, facets; an input may add its inputFacets as a fourth item


def product_run_id(dagster_run_id: str, product_id: str) -> str:
    """The run of a product inside one Dagster run: derived, so every job of the product agrees on it."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"dagster-run/{dagster_run_id}/{product_id}"))


@dataclass(frozen=True)
class DagsterRun:
    """Where a job ran: a Dagster run of a domain's code location. In lineage it is a run of the domain's job
    (named after the domain, whatever Dagster job it ran: the same job for `mesh run`, the UI and automation), with
    the Dagster run id as its run id: the root of every run it holds, and the way back to Dagster."""

    domain: str
    job_name: str  # the Dagster job
    run_id: str

    def parent_facet(self, product_id: str | None) -> parent_run.ParentRunFacet:
        """The product's run as parent when the job belongs to one product, else the domain's (Dagster) run."""
        namespace = job_namespace(self.domain)
        root = parent_run.Root(run=parent_run.RootRun(runId=self.run_id),
                               job=parent_run.RootJob(namespace=namespace, name=domain_job(self.domain)))
        run_id, name = (self.run_id, domain_job(self.domain)) if product_id is None else \
            (product_run_id(self.run_id, product_id), product_job(product_id))
        return parent_run.ParentRunFacet(run=parent_run.Run(runId=run_id), root=root,
                                         job=parent_run.Job(namespace=namespace, name=name))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


@dataclass
class JobRun:
    """One run of one job. Events go through the outbox; emitting never raises."""

    dagster_run: DagsterRun
    job_name: str
    job_facets: dict
    product_id: str | None = None
    run_id: str = field(default_factory=lambda: str(generate_new_uuid()))
    top_level: bool = False  # the domain's run itself: no parent

    def _event(self, state: RunState, inputs: list[Dataset], outputs: list[Dataset], when: str | None,
               run_facets: dict) -> RunEvent:
        facets = {} if self.top_level else {"parent": self.dagster_run.parent_facet(self.product_id)}
        facets.update({"processing_engine": processing_engine_run.ProcessingEngineRunFacet(
            version=dagster.__version__, name="Dagster", openlineageAdapterVersion=PRODUCER), **run_facets})
        return RunEvent(
            eventType=state, eventTime=when or _now(), producer=PRODUCER,
            run=Run(runId=self.run_id, facets=facets),
            job=Job(namespace=job_namespace(self.dagster_run.domain), name=self.job_name, facets=self.job_facets),
            inputs=[InputDataset(namespace=d[0], name=d[1], facets=d[2], inputFacets=d[3] if len(d) > 3 else None)
                    for d in inputs],
            outputs=[OutputDataset(namespace=ns, name=name, facets=f) for ns, name, f in outputs])

    def start(self, inputs: list[Dataset] = (), outputs: list[Dataset] = (), when: str | None = None) -> None:
        delivery().emit(self._event(RunState.START, inputs, outputs, when, {}))

    def complete(self, inputs: list[Dataset] = (), outputs: list[Dataset] = (), when: str | None = None) -> None:
        delivery().emit(self._event(RunState.COMPLETE, inputs, outputs, when, {}))

    def fail(self, error: BaseException | str, inputs: list[Dataset] = (), outputs: list[Dataset] = (),
             when: str | None = None) -> None:
        # dbt's and DuckDB's messages can quote a row's value: lineage gets them without (the stack too).
        message = redact_values(error if isinstance(error, str) else f"{type(error).__name__}: {error}")
        stack = None if isinstance(error, str) else redact_values("".join(traceback.format_exception(error)))
        facet = error_message_run.ErrorMessageRunFacet(message=message, programmingLanguage="python", stackTrace=stack)
        delivery().emit(self._event(RunState.FAIL, inputs, outputs, when, {"errorMessage": facet}))


def domain_run(dagster_run: DagsterRun, job_facets: dict) -> JobRun:
    """The run of the domain's job that a Dagster run is: the parent of its ingestion, models and products."""
    return JobRun(dagster_run, domain_job(dagster_run.domain), job_facets, run_id=dagster_run.run_id, top_level=True)


def product_run(dagster_run: DagsterRun, product_id: str, job_facets: dict) -> JobRun:
    """The run of one product inside a Dagster run: the parent of its ports' publish jobs."""
    return JobRun(dagster_run, product_job(product_id), job_facets, run_id=product_run_id(dagster_run.run_id, product_id))


def register_dataset(namespace: str, name: str, facets: dict) -> None:
    """A static DatasetEvent: tells the lineage backend about a dataset before any run touches it."""
    delivery().emit(DatasetEvent(eventTime=_now(), producer=PRODUCER,
                                 dataset=StaticDataset(namespace=namespace, name=name, facets=facets)))
