"""The registry store: what each domain publishes about its products (its manifests), for every other domain.

A domain publishes when it is deployed (`mesh register`; local commands do it for you). Consumers resolve
input ports, approvals and contracts from here, never from another domain's folder, so a domain deployed
alone (its own image, its own code server) still sees the mesh. Locally the store is a SQLite file in the mesh
home; in production set MESH_REGISTRY_URL to the PostgreSQL database that holds the Dagster storage, for
example postgresql+psycopg2://dagster@db:5432/dagster.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import Column, DateTime, Engine, MetaData, String, Table, Text, create_engine, delete, insert, select
from sqlalchemy.exc import SQLAlchemyError

from platform_resources.home import mesh_home

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


class RegistryStoreError(RuntimeError):
    pass


@dataclass(frozen=True)
class PublishedManifest:
    product_id: str
    domain: str
    source_file: str
    manifest: str
    error: str | None
    published_at: datetime


def store_url() -> str:
    return os.environ.get(REGISTRY_URL_VARIABLE) or f"sqlite:///{mesh_home() / 'registry.sqlite'}"


@functools.cache
def _engine(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30} if url.startswith("sqlite") else {})
    _metadata.create_all(engine)
    return engine


def _connect(url: str | None = None) -> Engine:
    url = url or store_url()
    try:
        return _engine(url)
    except SQLAlchemyError as exc:
        raise RegistryStoreError(f"the registry store at {_safe(url)} cannot be opened ({exc.__class__.__name__}: "
                                 f"{exc.args[0] if exc.args else exc}); check {REGISTRY_URL_VARIABLE}") from None


def _safe(url: str) -> str:
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
    now = datetime.now(timezone.utc)
    with _connect(url).begin() as con:
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
    return len(manifests)


def published(url: str | None = None) -> list[PublishedManifest]:
    """Everything every domain has published, by product id."""
    with _connect(url).connect() as con:
        rows = con.execute(select(published_manifests).order_by(published_manifests.c.product_id)).all()
    return [PublishedManifest(r.product_id, r.domain, r.source_file, r.manifest, r.error, r.published_at) for r in rows]
