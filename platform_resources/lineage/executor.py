"""The runs that hold a domain's jobs in lineage: the domain's run (one per Dagster run) and the run of each
product it publishes. They are the parents of the steps' jobs, so they report START before the first step and
COMPLETE or FAIL after the last: the executor of the domain's code location runs the steps between the two."""

from collections.abc import Iterator
from dataclasses import dataclass

from dagster import DagsterEventType, Executor, ExecutorDefinition, in_process_executor

from platform_resources.lineage.facets import job_facets
from platform_resources.lineage.runs import DagsterRun, domain_run, product_run
from platform_resources.manifest import Manifest


@dataclass(frozen=True)
class DomainJobs:
    """What the executor needs to know of a domain: its products and which step publishes which port."""

    domain: str
    products: list[Manifest]
    port_steps: dict[str, str]  # step key -> port id

    def domain_facets(self) -> dict:
        owners = sorted({o for m in self.products for o in m.owner.dagster_owners if o.startswith("team:")})
        return job_facets(None, f"A Dagster run of the code location of domain {self.domain}: its ingestion, dbt "
                          "models, input port loads and products.", integration="DAGSTER", job_type="JOB",
                          team_owners=owners)

    def product_facets(self, manifest: Manifest) -> dict:
        return job_facets(manifest, f"Data product {manifest.id}: {manifest.description}", integration="DAGSTER",
                          job_type="DATA_PRODUCT")


def lineage_executor(jobs: DomainJobs) -> ExecutorDefinition:
    """Dagster's in-process executor (same name and config), with the domain's and the products' runs around it."""

    def create(init_context) -> Executor:
        return _LineageExecutor(in_process_executor.executor_creation_fn(init_context), jobs)

    return ExecutorDefinition(name=in_process_executor.name, config_schema=in_process_executor.config_schema,
                              requirements=in_process_executor.get_requirements, executor_creation_fn=create,
                              description="Runs the steps in one process, reporting the lineage runs that hold them.")


class _LineageExecutor(Executor):
    def __init__(self, inner: Executor, jobs: DomainJobs):
        self._inner = inner
        self._jobs = jobs

    @property
    def retries(self):
        return self._inner.retries

    @property
    def step_dependency_config(self):
        return self._inner.step_dependency_config

    def execute(self, plan_context, execution_plan) -> Iterator:
        run = plan_context.dagster_run
        tracker = _RunTracker(self._jobs, DagsterRun(self._jobs.domain, run.job_name, run.run_id),
                              set(execution_plan.step_keys_to_execute))
        tracker.start()
        try:
            for event in self._inner.execute(plan_context, execution_plan):
                tracker.observe(event)
                yield event
        except BaseException as exc:  # interrupted or crashed: the runs end with it
            tracker.end(exc)
            raise
        tracker.end(None)


class _RunTracker:
    """The domain's run and the runs of the products whose ports this Dagster run publishes."""

    def __init__(self, jobs: DomainJobs, dagster_run: DagsterRun, planned_steps: set[str]):
        self.outcomes: dict[str, str] = {}  # step key -> "succeeded", "failed" or "skipped"
        self.domain = domain_run(dagster_run, jobs.domain_facets())
        self.ports: dict[str, list[tuple[str, str]]] = {}  # product id -> [(step key, port id)] planned
        for step, port_id in sorted(jobs.port_steps.items()):
            if step in planned_steps:
                self.ports.setdefault(port_id.rsplit(".", 1)[0], []).append((step, port_id))
        by_id = {m.id: m for m in jobs.products}
        self.products = {pid: product_run(dagster_run, pid, jobs.product_facets(by_id[pid])) for pid in self.ports}

    def start(self) -> None:
        self.domain.start()
        for run in self.products.values():
            run.start()

    def observe(self, event) -> None:
        outcome = {DagsterEventType.STEP_SUCCESS: "succeeded", DagsterEventType.STEP_FAILURE: "failed",
                   DagsterEventType.STEP_SKIPPED: "skipped"}.get(event.event_type)
        if outcome and event.step_key:
            self.outcomes[event.step_key] = outcome

    def end(self, error: BaseException | None) -> None:
        for product_id, run in self.products.items():
            missing = [f"{port_id} ({self.outcomes.get(step, 'not run')})" for step, port_id in self.ports[product_id]
                       if self.outcomes.get(step) != "succeeded"]
            if error is not None or missing:
                run.fail(error or f"not published: {', '.join(missing)}")
            else:
                run.complete()
        failed = sorted(step for step, outcome in self.outcomes.items() if outcome == "failed")
        if error is not None or failed:
            self.domain.fail(error or f"failed steps: {', '.join(failed)}")
        else:
            self.domain.complete()
