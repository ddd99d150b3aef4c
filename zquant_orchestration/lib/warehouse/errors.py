"""Exceptions of a warehouse write that mean the database itself is in trouble (unreachable,
locked, its schema not as expected), as opposed to rows it cannot take. The drivers' own
errors are listed too: bulk loads use their cursors directly, unwrapped by SQLAlchemy."""

from __future__ import annotations

import sqlite3

import psycopg2
from sqlalchemy import exc

DATABASE_ERRORS: tuple[type[Exception], ...] = (
    exc.OperationalError, exc.InterfaceError, exc.DisconnectionError,
    sqlite3.OperationalError, sqlite3.InterfaceError,
    psycopg2.OperationalError, psycopg2.InterfaceError,
)
