"""The registry store: what each domain publishes about its products (its manifests), for every other domain.

A domain publishes when it is deployed (`mesh register`; local commands do it for you). Consumers resolve
input ports, approvals and contracts from here, never from another domain's folder, so a domain deployed
alone (its own image, its own code server) still sees the mesh. Locally the store is a SQLite file in the mesh
home; in production set MESH_REGISTRY_URL to the PostgreSQL database that holds the Dagster storage, for
example postgresql+psycopg2://dagster@db:5432/dagster (MESH_POSTGRES_URL, when set, is the default).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    insert,
    inspect,
    select,
)
from sqlalchemy.exc import SQLAlchemyError

from platform_resources.home import create_tolerating_others, mesh_home, postgres_url

REGISTRY_URL_VARIABLE = "MESH_REGISTRY_URL"

_metadata = MetaData()
published_manifests = Table(
    "mesh_published_manifests", _metadata,
    Column("product_id", String(255), primary_key=True),
    Column("domain", String(255), nullable=False, index=True),
    Column("source_file", Text, nullable=False),  # where the manifest lives in its domain's repository
    Column("manifest", Text, nullable=False),     # the YAML as written: the product's portable declaration
    Column("error", Text),                        # set when the manifest does not load: consumers see why
    Column("published_at", DateTime(timezone=True), nullable=False),
)


class RegistryStoreError(LookupError):
    """The store cannot be reached or refuses a publish: the `mesh` command prints it, without a traceback."""


@dataclass(frozen=True)
class PublishedManifest:
    product_id: str
    domain: str
    source_file: str
    manifest: str
    error: str | None
    published_at: datetime


def store_url() -> str:
    return os.environ.get(REGISTRY_URL_VARIABLE) or postgres_url() or f"sqlite:///{mesh_home() / 'registry.sqlite'}"


@functools.cache
def _engine(url: str) -> Engine:
    return create_engine(url, connect_args={"timeout": 30} if url.startswith("sqlite") else {})


def _sqlite_file(url: str) -> Path | None:
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def _store_error(url: str, exc: Exception) -> RegistryStoreError:
    return RegistryStoreError(f"the registry store at {safe_url(url)} cannot be used ({exc.__class__.__name__}: "
                              f"{str(exc).splitlines()[0]}); check {REGISTRY_URL_VARIABLE}")


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest and ":" in rest.split("@", 1)[0]:
        user = rest.split("@", 1)[0].split(":", 1)[0]
        rest = f"{user}:***@{rest.split('@', 1)[1]}"
    return f"{scheme}{sep}{rest}"


def publish(domain: str, manifests: list[tuple[str, str, str, str | None]], url: str | None = None) -> int:
    """Replace everything `domain` published with `manifests` (product_id, source_file, text, error), atomically.

    A product the domain no longer declares disappears from the mesh with this publish.
    """
    url = url or store_url()
    if file := _sqlite_file(url):
        file.parent.mkdir(parents=True, exist_ok=True)
    now = datetime.now(timezone.utc)
    try:
        engine = _engine(url)
        create_tolerating_others(lambda: _metadata.create_all(engine))  # domains publishing at once race to create it
        with engine.begin() as con:
            con.execute(delete(published_manifests).where(published_manifests.c.domain == domain))
            # Another domain may not take over a product id: the first publisher keeps it.
            taken = {row.product_id: row.domain for row in con.execute(
                select(published_manifests.c.product_id, published_manifests.c.domain))}
            clashes = sorted(pid for pid, *_ in manifests if pid in taken)
            if clashes:
                raise RegistryStoreError(f"{domain} cannot publish {', '.join(clashes)}: already published by "
                                         f"{', '.join(sorted({taken[p] for p in clashes}))}; give each product its own id")
            if manifests:
                con.execute(insert(published_manifests), [
                    {"product_id": pid, "domain": domain, "source_file": source, "manifest": text, "error": error,
                     "published_at": now} for pid, source, text, error in manifests])
    except (SQLAlchemyError, ImportError) as exc:  # ImportError: a URL whose driver is not installed
        raise _store_error(url, exc) from None
    return len(manifests)


def published(url: str | None = None) -> list[PublishedManifest]:
    """Everything every domain has published. Read only: a store nobody published to yet is empty, not created
    (code locations read this while they load)."""
    url = url or store_url()
    file = _sqlite_file(url)
    if file and not file.exists():
        return []
    try:
        with _engine(url).connect() as con:
            if not inspect(con).has_table(published_manifests.name):
                return []
            rows = con.execute(select(published_manifests).order_by(published_manifests.c.product_id)).all()
    except (SQLAlchemyError, ImportError) as exc:  # ImportError: a URL whose driver is not installed
        raise _store_error(url, exc) from None
    return [PublishedManifest(r.product_id, r.domain, r.source_file, r.manifest, r.error, r.published_at) for r in rows]
