"""Warehouse URLs the tests run against: SQLite always, Postgres on the local server.

Postgres tests get a database of their own (created and dropped per test), so they can
run on a machine whose Postgres holds other data. ``ZQUANT_TEST_POSTGRES_URL`` points at
the server's admin database (default: the local trust-auth server CI provides).
"""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import create_engine, text

ADMIN_URL = os.environ.get("ZQUANT_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")

_created: list[str] = []


def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'warehouse.sqlite'}"


def postgres_url(tmp_path) -> str:
    name = f"zq_test_{uuid.uuid4().hex[:12]}"
    try:
        engine = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
        engine.dispose()
    except Exception as exc:  # pragma: no cover - CI provides Postgres; a laptop may not
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no Postgres at {ADMIN_URL}: {exc.__class__.__name__}")
    _created.append(name)
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def drop_test_databases() -> None:
    if not _created:
        return
    engine = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for name in _created:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    engine.dispose()
    _created.clear()


def warehouse_urls(postgres_marks=()):
    """SQLite and Postgres; ``postgres_marks`` (e.g. ``pytest.mark.slow``) mark the Postgres case alone."""
    return [pytest.param(sqlite_url, id="sqlite"), pytest.param(postgres_url, id="postgres", marks=postgres_marks)]
