"""A throwaway PostgreSQL database on the local server (127.0.0.1:5432) for the tests that need one.

Each database is created for the test (or session) that asks and dropped after it, so runs never see each other.
Without a reachable server the test is skipped, saying so.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

HOST, PORT = "127.0.0.1", 5432
USERS = ("postgres", "root")  # trust authentication on the CI machine; the first that connects is used


def _admin_url() -> str:
    problems = []
    for user in USERS:
        url = f"postgresql+psycopg2://{user}@{HOST}:{PORT}/postgres"
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        try:
            with engine.connect():
                return url
        except OperationalError as exc:
            problems.append(f"{user}: {str(exc.orig).strip().splitlines()[0]}")
        finally:
            engine.dispose()
    pytest.skip(f"no PostgreSQL server on {HOST}:{PORT}: {'; '.join(problems)}")


@contextmanager
def fresh_database(prefix: str = "mesh_test") -> Iterator[str]:
    """CREATE DATABASE <prefix>_<random>, yield its SQLAlchemy URL, DROP it (whoever is still connected)."""
    admin_url = _admin_url()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as con:
            con.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as con:
            con.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def query(url: str, sql: str, **params) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.connect() as con:
            return [tuple(row) for row in con.execute(text(sql), params)]
    finally:
        engine.dispose()
