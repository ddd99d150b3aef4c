"""The database connection: engine options, SQLite's tuning, and how writers take turns.

SQLite (the embedded default) has one writer at a time; here writers queue on a lock file,
and each copies the write-ahead log back after its transaction, outside the lock. On
Postgres the locks are no-ops and a write transaction is a plain transaction.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection

from ..redact import mask_engine_errors

# Above this the write-ahead log is copied back before the next write (_write_transaction).
WAL_CHECKPOINT_BYTES = 256 * 1024 * 1024

log = logging.getLogger(__name__)


def open_engine(url: str, given: str) -> Engine:
    """An engine for ``url`` (normalized: urls.normalize_url) whose errors never show the
    password of ``given``, the URL as the caller named it; a SQLite file's folder is created."""
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **_engine_options(url))
    mask_engine_errors(engine, given)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class WriterTurns:
    """Write transactions and the file locks that order SQLite's writers. Needs ``engine``
    and ``dialect`` (the engine's dialect name) on the instance."""

    engine: Engine
    dialect: str

    @contextmanager
    def _write_transaction(self) -> Iterator[Connection]:
        """A write transaction; on SQLite, in turn with other writers, and checkpointed after.

        SQLite copies committed pages from its write-ahead log into the database file in a
        checkpoint, which by default the committing writer runs inside its transaction's
        lock, while every other writer waits. Here the writer checkpoints after it has
        released the lock, while the next writer appends to the log. The log starts over
        only when a writer finds it all copied back, which never happens while writers
        follow each other; so a writer that finds it above ``WAL_CHECKPOINT_BYTES``
        finishes the copy first, holding the lock."""
        with self._sqlite_write_lock():
            if self.dialect == "sqlite" and self._wal_bytes() > WAL_CHECKPOINT_BYTES:
                self._checkpoint()
            with self.engine.begin() as conn:
                yield conn
        if self.dialect == "sqlite":
            self._checkpoint()

    def _wal_bytes(self) -> int:
        try:
            return os.path.getsize(f"{self.engine.url.database}-wal")
        except (OSError, TypeError):
            return 0

    def _checkpoint(self) -> None:
        """Copy what the write-ahead log holds into the database file (PASSIVE: no reader or
        writer waits for it, and pages a reader still needs stay in the log). One process at
        a time: SQLite refuses a checkpoint while another runs, instead of waiting for it.

        Durability does not depend on it: every commit has fsynced the log already
        (synchronous=FULL, _sqlite_pragmas), and pages left in the log are read from there
        and copied back by a later checkpoint. What it bounds is the log's size."""
        with self._sqlite_file_lock("checkpoint-lock"), self.engine.connect() as conn:
            busy, pages, copied = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        if busy or copied < pages:
            log.debug("SQLite checkpoint of %s left %d of %d pages in the log (busy=%d): a reader still needs "
                      "them; a later checkpoint copies them", self.engine.url.database, pages - copied,
                      pages, busy)

    def _sqlite_schema_lock(self):
        """Processes creating tables at once take turns (SQLite DDL races otherwise)."""
        return self._sqlite_file_lock("schema-lock")

    def _sqlite_write_lock(self):
        """On SQLite, writers queue on a lock file instead of on SQLite's busy handler.

        A writer that finds the database locked sleeps and polls (up to 100 ms a time), so
        with several steps writing by turns the database would sit idle between
        transactions; a process blocked in flock() wakes the moment the lock is released.
        A write that does not take it (schema changes) waits on SQLite's own lock."""
        return self._sqlite_file_lock("write-lock")

    @contextmanager
    def _sqlite_file_lock(self, suffix: str):
        """An exclusive flock on ``<database>.<suffix>``; nothing on other dialects. The
        kernel drops the lock of a killed process, so a crash never leaves it held."""
        database = self.engine.url.database if self.dialect == "sqlite" else None
        if not database or database == ":memory:":
            yield
            return
        with open(f"{database}.{suffix}", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _engine_options(url: str) -> dict:
    if url.startswith("sqlite"):
        # Several run processes may write at once: wait for the lock instead of failing.
        return {"connect_args": {"timeout": 120}}
    return {"pool_pre_ping": True}


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # 16 KiB pages (the default is 4): fewer page writes and checkpoint syncs per batch of
    # days (docs/benchmarks.md). It takes effect only on a new database file, before WAL is
    # set; on an existing one SQLite ignores it.
    cursor.execute("PRAGMA page_size=16384")
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: each commit fsyncs the write-ahead log before it returns, so a day the asset
    # reports materialized survives a power loss. NORMAL syncs the log only at checkpoints,
    # and a checkpoint stops short while a reader holds old pages, so committed days could
    # vanish while Dagster shows them green. EXTRA adds only a directory sync after a
    # rollback journal is deleted; in WAL mode SQLite syncs the directory of a new log
    # itself, so EXTRA would cost the same and add nothing.
    cursor.execute("PRAGMA synchronous=FULL")
    # Writers checkpoint after their transaction, outside the write lock (_write_transaction),
    # not inside their commit; a log that grew while writers followed each other is cut back
    # to this size once it starts over.
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.execute(f"PRAGMA journal_size_limit={64 * 1024 * 1024}")
    # 64 MiB of page cache (the default is 2 MiB): a batch of days touches most pages of a
    # table's per-stock index, and with a small cache they are spilled and written twice.
    # Memory is taken only as pages are used.
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.close()
