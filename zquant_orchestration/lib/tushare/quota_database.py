"""The quota's store shared by every host: two small tables in a PostgreSQL database
(``ZQUANT_QUOTA_URL``, e.g. the Dagster instance's).

This module holds SQL outside lib/warehouse on purpose: the tables are the quota's own
store, not the warehouse; they may live in any database the workers reach, and nothing
else reads them.

- ``tushare_quota_state``: one row per (account and endpoint, API): the block the server
  asked for and the limit it told us. Locking that row (``FOR UPDATE``, through the upsert
  that creates it) is what orders the attempts of every process on every host.
- ``tushare_quota_calls``: one row per call counting against the quota, stamped when sent
  (in flight) and again when answered.

The account and endpoint are kept as the same hash the file names carry: no token here.

Every stamp is the DATABASE's clock (``clock_timestamp()``), never a host's: two hosts
whose clocks disagree by seconds still agree on which calls are in the window. It is taken
after the row lock is granted, so stamps follow the order in which attempts got the lock.

Every attempt is one short transaction on a pooled connection; a process waiting for a
slot sleeps with no transaction open and its connection back in the pool, so a waiting
(or stopped) worker holds no lock that others queue behind. A transaction left open
anyway (a process frozen mid-attempt) is ended by the server after
``IDLE_IN_TRANSACTION_MS``. Commits do not wait for the disk (``synchronous_commit=off``,
for these connections only): that wait was most of a call's cost (docs/benchmarks.md,
"Quota store"), and what a database crash can lose is the last fraction of a second of
stamps, after which at worst Tushare refuses one call and the client waits a window, as
with a quota file started afresh.

Why not pyrate-limiter's ``PostgresBucket``: its rows are (name, weight, timestamp)
written once, so a call cannot count from its send until one window after its answer;
its rates are fixed per bucket, so a limit learned from a 40203 reply or a block cannot
be shared; it has no in-flight state to expire (a killed process's call); it answers a
busy table with "no" (``LOCK TABLE ... NOWAIT``) instead of a time to wait; and it needs
psycopg 3 and psycopg_pool beside the psycopg2 we ship.
"""

from __future__ import annotations

import logging
import os
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from ..redact import first_line, mask_engine_errors, redact_url
from .errors import TushareQuotaStoreError
from .quota_store import ANSWERED, IN_FLIGHT, STALE_WINDOWS, Snapshot

log = logging.getLogger(__name__)

IDLE_IN_TRANSACTION_MS = 60_000
CONNECT_TIMEOUT_SECONDS = 10
APPLICATION_NAME = "zquant-tushare-quota"
# Concurrent first use: CREATE TABLE IF NOT EXISTS alone can fail on a unique index of
# Postgres' catalog when two sessions create the same table at once; this lock queues them.
_CREATE_LOCK = zlib.crc32(b"zquant tushare quota tables")

_CREATE = (
    """CREATE TABLE IF NOT EXISTS tushare_quota_state (
        scope_digest TEXT NOT NULL,
        api TEXT NOT NULL,
        blocked_until DOUBLE PRECISION NOT NULL DEFAULT 0,
        learned_limit INTEGER,
        learned_at DOUBLE PRECISION,
        PRIMARY KEY (scope_digest, api))""",
    """CREATE TABLE IF NOT EXISTS tushare_quota_calls (
        scope_digest TEXT NOT NULL,
        api TEXT NOT NULL,
        ticket TEXT NOT NULL,
        stamp DOUBLE PRECISION NOT NULL,
        status SMALLINT NOT NULL,
        PRIMARY KEY (scope_digest, api, ticket))""",
)
# Stamps are seconds since the epoch on the database's clock, as the file store's are on
# the host's: the same arithmetic in both stores, and no time zone to get wrong.
_NOW = "extract(epoch FROM clock_timestamp())::float8"
_LOCK = f"""
    INSERT INTO tushare_quota_state (scope_digest, api) VALUES (:scope, :api)
    ON CONFLICT (scope_digest, api) DO UPDATE SET scope_digest = EXCLUDED.scope_digest
    RETURNING {_NOW}, blocked_until, learned_limit, learned_at"""
# What no longer counts: answered a window ago, in flight for STALE_WINDOWS (its process
# was killed), or stamped ahead of the clock (the clock went back).
_GONE = f"""(stamp > :now + 1 OR (status = {ANSWERED} AND stamp <= :now - :window)
             OR (status = {IN_FLIGHT} AND stamp <= :now - :stale))"""
_PRUNE_AND_COUNT = f"""
    WITH dropped AS (
        DELETE FROM tushare_quota_calls WHERE scope_digest = :scope AND api = :api AND {_GONE}
        RETURNING stamp)
    SELECT (SELECT max(stamp) FROM dropped), count(*), min(stamp) FILTER (WHERE status = {ANSWERED})
    FROM tushare_quota_calls WHERE scope_digest = :scope AND api = :api AND NOT {_GONE}"""
_SEND = f"""
    INSERT INTO tushare_quota_calls (scope_digest, api, ticket, stamp, status)
    VALUES (:scope, :api, :ticket, :now, {IN_FLIGHT})"""
_ANSWER = f"""
    INSERT INTO tushare_quota_calls (scope_digest, api, ticket, stamp, status)
    VALUES (:scope, :api, :ticket, {_NOW}, {ANSWERED})
    ON CONFLICT (scope_digest, api, ticket) DO UPDATE SET stamp = EXCLUDED.stamp, status = EXCLUDED.status"""
_KEEP_STATE = """
    UPDATE tushare_quota_state SET blocked_until = :blocked, learned_limit = :limit, learned_at = :at
    WHERE scope_digest = :scope AND api = :api"""


class DatabaseStore:
    """One API's quota for one account and endpoint (``scope_digest``) in the database at ``url``."""

    def __init__(self, url: str, scope_digest: str, api: str, window_seconds: float):
        self._url = url
        self.where = f"{redact_url(url)} (tables tushare_quota_*, API {api})"
        self.keys = {"scope": scope_digest, "api": api}
        self.window = window_seconds

    @contextmanager
    def attempt(self) -> Iterator[Snapshot]:
        with self._transaction() as conn:
            now, blocked, limit, learned_at = conn.execute(text(_LOCK), self.keys).one()
            loaded = (blocked, (limit, learned_at) if limit is not None else None)
            ahead, calls, oldest = conn.execute(text(_PRUNE_AND_COUNT), dict(
                self.keys, now=now, window=self.window, stale=self.window * STALE_WINDOWS)).one()
            blocked, learned = self._drop_the_future(now, ahead, *loaded)
            snapshot = Snapshot(now=now, calls=calls, oldest_answered=oldest, blocked_until=blocked, learned=learned)
            yield snapshot
            if snapshot.new_call:
                conn.execute(text(_SEND), dict(self.keys, ticket=snapshot.new_call, now=now))
            if (snapshot.blocked_until, snapshot.learned) != loaded:
                limit, at = snapshot.learned or (None, None)
                conn.execute(text(_KEEP_STATE), dict(self.keys, blocked=snapshot.blocked_until, limit=limit, at=at))

    def answer(self, ticket: str) -> None:
        with self._transaction() as conn:
            conn.execute(text(_ANSWER), dict(self.keys, ticket=ticket))

    def _drop_the_future(self, now, ahead, blocked, learned):
        """A block or stamp more than a window ahead of the database's clock cannot be right
        (we never write one): that clock went back. Kept, it would hold every call until the
        clock caught up. Calls stamped ahead are already deleted (``_GONE``)."""
        horizon = now + self.window
        times = [t for t in (ahead, blocked, learned and learned[1]) if t and t > horizon]
        if blocked > horizon:
            blocked = 0.0
        if learned and learned[1] > horizon:
            learned = None
        if times:
            log.warning("Tushare quota in %s holds times up to %.0f s in the future (the database's clock went "
                        "back); dropped them", self.where, max(times) - now)
        return blocked, learned

    @contextmanager
    def _transaction(self):
        """A short transaction on a pooled connection; a database that fails is one line
        naming ZQUANT_QUOTA_URL with its password masked."""
        try:
            engine = engine_for(self._url)
        except (SQLAlchemyError, ImportError, ValueError) as exc:  # a URL no driver takes
            raise quota_database_error(self._url, exc) from None
        try:
            with engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise quota_database_error(self._url, exc) from None


def quota_database_error(url: str, exc: BaseException) -> TushareQuotaStoreError:
    return TushareQuotaStoreError(
        f"The Tushare quota database ZQUANT_QUOTA_URL={redact_url(url)} cannot be used "
        f"({first_line(exc, url)}): nothing was sent to Tushare; check that "
        "the database is up and its user may create tables there, or unset ZQUANT_QUOTA_URL to keep "
        "the quota in this host's files")


_engines: dict[tuple[str, int], Engine] = {}
_engines_lock = threading.Lock()


def engine_for(url: str) -> Engine:
    """The process's engine for ``url``, its tables created on first use. Keyed by process
    too: a forked child must not use the sockets of its parent's pooled connections."""
    key = (url, os.getpid())
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            for other in [k for k in _engines if k[1] != key[1]]:
                _engines.pop(other).dispose(close=False)  # the parent's: leave its connections alone
            engine = _open(url)
            _engines[key] = engine
        return engine


def _open(url: str) -> Engine:
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg2://" + url[len(prefix):]
    engine = create_engine(url, pool_pre_ping=True, isolation_level="READ COMMITTED", connect_args={
        "connect_timeout": CONNECT_TIMEOUT_SECONDS, "application_name": APPLICATION_NAME,
        "options": f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS} -c synchronous_commit=off"})
    mask_engine_errors(engine, url)
    try:
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CREATE_LOCK})
            for statement in _CREATE:
                conn.execute(text(statement))
    except BaseException:
        engine.dispose()
        raise
    return engine
