"""Dataset and job names, following the OpenLineage naming spec, identical for producers and consumers."""

import os
from urllib.parse import urlparse

from platform_resources import ports
from platform_resources.home import domain_duckdb_path

DEFAULT_PREFIX = "mesh"


def namespace_prefix() -> str:
    return os.environ.get("MESH_LINEAGE_NAMESPACE_PREFIX", DEFAULT_PREFIX)


def job_namespace(domain: str) -> str:
    """One job namespace per domain: <prefix>.<domain>."""
    return f"{namespace_prefix()}.{domain}"


def location_dataset(location: str) -> tuple[str, str]:
    """A table location URI -> (namespace, name): file:///a/b -> ('file', '/a/b'); s3://bkt/a -> ('s3://bkt', 'a')."""
    parsed = urlparse(location)
    if parsed.scheme in ("", "file"):
        return "file", parsed.path
    return f"{parsed.scheme}://{parsed.netloc}", parsed.path.lstrip("/")


def port_location(port_id: str) -> str:
    """Where the port's Iceberg table lives: from the catalog once it exists, else where it will be created."""
    try:
        return ports.catalog().load_table(ports.table_identifier(port_id)).location()
    except Exception:  # not published yet, or the catalog is unreachable
        default = ports.default_location(port_id)
        return default or f"iceberg://{ports.CATALOG_NAME}/{ports.table_name(port_id).replace('.', '/')}"


def port_dataset(port_id: str) -> tuple[str, str]:
    return location_dataset(port_location(port_id))


def duckdb_dataset(database_path: str, schema: str, table: str) -> tuple[str, str]:
    """Named as openlineage-dbt names dbt-duckdb relations: namespace duckdb://<file>, name <db>.<schema>.<table>."""
    database = os.path.splitext(os.path.basename(database_path))[0]
    return f"duckdb://{database_path}", f"{database}.{schema}.{table}"


def domain_table(domain: str, schema: str, table: str) -> tuple[str, str]:
    return duckdb_dataset(str(domain_duckdb_path(domain)), schema, table)


def relation_dataset(domain: str, relation: str) -> tuple[str, str]:
    """A dbt relation of the domain's DuckDB, '"db"."schema"."table"', as a dataset."""
    _, schema, table = (part.strip('"') for part in relation.split("."))
    return domain_table(domain, schema, table)


# Job names. Marquez stores a job whose run has a parent as `<parent's name>.<name>` unless the name already starts
# with the parent's name and a dot: every name here starts with its parent's, so Marquez shows it as emitted. They
# read as the Dagster asset keys: the domain's run `finance` is the parent of its products `finance.<product>`, of
# its dbt models `finance.internal.<model>`, its ingestion `finance.internal.<system>.<table>` and its input port
# loads `finance.inputs.<port id>`; a product is the parent of its ports' publish jobs, named by the port id.


def domain_job(domain: str) -> str:
    """The job of every Dagster run of the domain's code location, whatever Dagster job it ran."""
    return domain


def product_job(product_id: str) -> str:
    return product_id


def port_job(port_id: str) -> str:
    return port_id


def model_job(domain: str, model: str) -> str:
    return f"{domain}.internal.{model}"


def ingestion_job(domain: str, system: str, table: str) -> str:
    return f"{domain}.internal.{system}.{table}"


def input_load_job(domain: str, port_id: str) -> str:
    return f"{domain}.inputs.{port_id}"
