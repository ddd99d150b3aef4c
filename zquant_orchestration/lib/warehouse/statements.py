"""Guards of the financial statement tables: which names a read may put into SQL, and the
lock that makes merges of one report period take turns."""

from __future__ import annotations

import hashlib
from datetime import date

from sqlalchemy import text
from sqlalchemy.engine import Connection

from .tables import FINANCE_TABLES


def require_statement_table(table_name: str) -> None:
    """Refuse any name but a statement table's: a name that goes into SQL is never free text."""
    if table_name not in FINANCE_TABLES:
        raise ValueError(f"point-in-time reads cover the statement tables {', '.join(FINANCE_TABLES)} only, "
                         f"not {table_name!r}; name one of them")


def lock_period(conn: Connection, table_name: str, period: date) -> None:
    """Hold, until ``conn``'s transaction ends, Postgres' lock on one (table, period).

    A statement table has no key to refuse a second copy of a version: two merges of one
    period that both delete before either inserts would both insert it. With the lock the
    second merge starts after the first committed, and its delete sees the first's rows.
    SQLite needs none: it has one writer at a time."""
    if conn.dialect.name != "postgresql":
        return
    digest = hashlib.sha256(f"merge:{table_name}:{period.isoformat()}".encode()).digest()
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": int.from_bytes(digest[:8], "big", signed=True)})
