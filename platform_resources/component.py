"""The Dagster component a domain's code location is made of: its product manifests + dbt project -> definitions.

One component instance covers one domain: a domain is one code location with one dbt project and one private
DuckDB file, built by one `dbt build` per run, so its products share those (see the README).
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import BaseModel, Field

from platform_resources.registry import PRODUCTS_FOLDER, Domain, domain_at


class DataMeshDomainScaffoldParams(BaseModel):
    """`dg scaffold defs platform_resources.component.DataMeshDomain <path> [--domain D] [--dbt-project P]`."""

    domain: str | None = Field(default=None, description="The domain (default: the dg project's code location name).")
    manifests: str = Field(default=PRODUCTS_FOLDER,
                           description="Folder of the product manifests, relative to the project.")
    dbt_project: str | None = Field(default=None, description="The dbt project folder, relative to the project "
                                                              "(default: dbt_projects/<domain> of the repository).")


class DataMeshDomainScaffolder(dg.Scaffolder[DataMeshDomainScaffoldParams]):
    """Writes the defs.yaml `mesh new domain` writes (`mesh new domain` creates the whole domain around it)."""

    @classmethod
    def get_scaffold_params(cls) -> type[DataMeshDomainScaffoldParams]:
        return DataMeshDomainScaffoldParams

    def scaffold(self, request: dg.ScaffoldRequest[DataMeshDomainScaffoldParams]) -> None:
        from platform_resources import scaffold  # Jinja2 only when scaffolding, never when a location loads

        params = request.params or DataMeshDomainScaffoldParams()
        scaffold.scaffold_component(request, params.domain, params.manifests, params.dbt_project)


@dg.scaffold_with(DataMeshDomainScaffolder)
class DataMeshDomain(dg.Component, dg.Resolvable, dg.Model):
    """A domain of the data mesh: every product manifest in `manifests` becomes output-port assets with their
    contracts, policy checks, SLOs and lineage; the dbt project becomes the domain's internal assets."""

    domain: str = Field(description="The domain's name: the code location and the first part of every product id.")
    manifests: str = Field(default=PRODUCTS_FOLDER,
                           description="Folder of the product manifests (*.yaml), relative to the project root.")
    dbt_project: str | None = Field(default=None,
                                    description="The domain's dbt project folder, relative to the project root.")

    def domain_at(self, project_root: Path) -> Domain:
        return domain_at(project_root, self.domain, self.manifests, self.dbt_project)

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        from platform_resources.build import build_domain  # Dagster lists components without building them

        return build_domain(self.domain_at(context.project_root))
