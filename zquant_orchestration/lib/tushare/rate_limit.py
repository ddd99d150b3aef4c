"""A per-API calls-per-window quota shared by every thread and process on this host, or by
every process on every host that names the same database (``ZQUANT_QUOTA_URL``).

Tushare counts calls per API, per account, per minute. We keep a sliding log of calls so
that in ANY window of ``window_seconds`` at most ``limit`` calls reach the service: a
token bucket would allow a burst of ``2 * limit`` across a window boundary, which the
service answers with code 40203.

Why two stamps per call: the server counts a call when it ARRIVES, which is some time
after we send it. A call is stamped when it is sent (so it counts while in flight) and
stamped again when its reply is back, which is after it arrived; the window is measured
from the later stamp, so no delivery delay can squeeze ``limit + 1`` arrivals into one
server window.

Where the log is kept is the store's business (``quota_store.py``): a JSON file per API on
this host (``quota_files.py``, the default) or two tables in PostgreSQL
(``quota_database.py``). The rules below are the same for both.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path

from zquant_orchestration.settings import get_settings

from .quota_database import DatabaseStore
from .quota_files import FileStore
from .quota_store import ANSWERED, IN_FLIGHT, STALE_WINDOWS, QuotaStore, Snapshot

__all__ = ["ANSWERED", "IN_FLIGHT", "LEARNED_LIMIT_SECONDS", "STALE_WINDOWS", "CallQuota", "default_quota_dir",
           "limiter_for", "open_quota"]

LEARNED_LIMIT_SECONDS = 3600


def default_quota_dir() -> Path:
    """``$ZQUANT_QUOTA_DIR``, else ``$DAGSTER_HOME/tushare_quota``, else a per-user temp dir:
    every process of one deployment on this host must agree on it."""
    settings = get_settings()
    if settings.quota_dir is not None:
        return settings.quota_dir
    if settings.dagster_home:
        return Path(settings.dagster_home) / "tushare_quota"
    return Path(tempfile.gettempdir()) / f"zquant-tushare-quota-{os.getuid()}"


class CallQuota:
    """The quota of one API: ``acquire()`` blocks until a call fits, ``done()`` restamps it."""

    def __init__(self, store: QuotaStore, limit: int, window_seconds: float = 60.0):
        if limit < 1:
            raise ValueError(f"a quota must allow at least one call per window, got {limit}")
        self.store = store
        self.limit = limit
        self.window = window_seconds

    # --- what the client calls -------------------------------------------------------

    def acquire(self) -> tuple[float, str]:
        """Block until one more call fits; return (seconds waited, the call's ticket).

        Each look is one short locked attempt; the wait between looks holds no lock."""
        started = time.monotonic()
        ticket = uuid.uuid4().hex  # unique across processes and hosts
        while True:
            with self.store.attempt() as quota:
                wait = quota.blocked_until - quota.now
                if wait <= 0 and quota.calls < self._limit_in_force(quota):
                    quota.new_call = ticket
                    return time.monotonic() - started, ticket
                if wait <= 0:
                    # The oldest answered call leaves the window first; calls still in
                    # flight leave only once answered, so look again soon.
                    oldest = quota.oldest_answered
                    wait = oldest + self.window - quota.now if oldest is not None else self.window / 20
            time.sleep(min(max(wait, 0.001), self.window))

    def done(self, ticket: str) -> None:
        """The call's reply is back: it arrived before now, so count its window from now."""
        self.store.answer(ticket)

    def block_for(self, seconds: float) -> None:
        """The server said we are over its quota: nobody sharing the store sends for ``seconds``."""
        with self.store.attempt() as quota:
            quota.blocked_until = max(quota.blocked_until, quota.now + seconds)

    def lower_limit(self, limit: int) -> None:
        """The server told us its real quota: no process sharing the store goes above it for
        ``LEARNED_LIMIT_SECONDS`` (then we believe our configuration again, so an account
        that gained points is not held to its old quota forever)."""
        if limit < 1:
            return
        with self.store.attempt() as quota:
            quota.learned = (min(_learned_limit(quota) or limit, limit), quota.now)

    def usage(self) -> tuple[int, int]:
        """(calls counting against the quota now, the limit in force), for health checks."""
        with self.store.attempt() as quota:
            return quota.calls, self._limit_in_force(quota)

    def _limit_in_force(self, quota: Snapshot) -> int:
        return min(self.limit, _learned_limit(quota) or self.limit)


def _learned_limit(quota: Snapshot) -> int | None:
    if not quota.learned or quota.now - quota.learned[1] > LEARNED_LIMIT_SECONDS:
        return None
    return int(quota.learned[0])


def open_quota(scope: str, api_name: str, limit: int, window_seconds: float,
               quota_dir: Path | None = None, quota_url: str | None = None) -> CallQuota:
    """A new view of one API's quota (``limiter_for`` hands out one per process).

    ``quota_url`` (else ``quota_dir``, else ``ZQUANT_QUOTA_URL``, else the host's quota
    folder) says where it is kept. ``scope`` names the account and endpoint; it is hashed,
    so a token in it never lands on disk or in the database."""
    quota_dir, quota_url = _where(quota_dir, quota_url)
    return _open(_digest(scope, window_seconds), api_name, limit, window_seconds, quota_dir, quota_url)


_registry: dict[tuple, CallQuota] = {}
_registry_lock = threading.Lock()


def limiter_for(scope: str, api_name: str, limit: int, window_seconds: float,
                quota_dir: Path | None = None, quota_url: str | None = None) -> CallQuota:
    """The quota of one API for one account at one endpoint.

    Every client with the same scope and store shares it, so two resources, twenty threads
    or five step processes (and, with ``ZQUANT_QUOTA_URL``, workers on other hosts)
    together still keep the account's quota.
    """
    quota_dir, quota_url = _where(quota_dir, quota_url)
    digest = _digest(scope, window_seconds)
    key = (quota_url, quota_dir, digest, api_name)
    with _registry_lock:
        known = _registry.get(key)
        if known is None:
            known = _registry[key] = _open(digest, api_name, limit, window_seconds, quota_dir, quota_url)
        known.limit = min(known.limit, limit)
        return known


def _where(quota_dir: Path | None, quota_url: str | None) -> tuple[Path | None, str | None]:
    if quota_url is None and quota_dir is None:
        settings = get_settings()
        if settings.quota_url is not None:
            return None, settings.quota_url.get_secret_value()
        return default_quota_dir(), None
    return quota_dir, quota_url


def _digest(scope: str, window_seconds: float) -> str:
    return hashlib.sha256(f"{scope}\0{window_seconds}".encode()).hexdigest()[:20]


def _open(digest, api_name, limit, window_seconds, quota_dir, quota_url) -> CallQuota:
    if quota_url is not None:
        return CallQuota(DatabaseStore(quota_url, digest, api_name, window_seconds), limit, window_seconds)
    return CallQuota(FileStore(quota_dir / f"{api_name}-{digest}.json", window_seconds), limit, window_seconds)
