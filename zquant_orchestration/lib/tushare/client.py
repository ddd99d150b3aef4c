"""The Tushare Pro client: quota, paging, retries and per-call counters.

Why not the ``tushare`` package's own ``DataApi`` for the wire (see README, "Why our
own wire client"): it turns an HTTP status >= 400 into an EMPTY DataFrame, so an outage
looks like "no data"; it raises a bare ``Exception(msg)`` and drops the reply code; its
endpoint is a name-mangled class attribute; and it opens a new connection per call.
The protocol is the same (``protocol.py``), and a test drives the real ``tushare``
client against our local server to keep it so.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
import requests

from . import protocol
from .catalog import known_fields
from .errors import (
    TushareAuthError,
    TushareEmptyReplyError,
    TushareNoPointsError,
    TusharePermissionError,
    TushareRequestError,
    TushareUnavailableError,
)
from .rate_limit import limiter_for

log = logging.getLogger(__name__)


@dataclass
class CallStats:
    """What one logical call (all its pages and retries) cost. Safe to show: no token."""

    api: str
    params: dict[str, Any]
    rows: int = 0
    pages: int = 0
    attempts: int = 0
    retries: int = 0
    rate_limit_waits: int = 0
    empty_replies: int = 0
    quota_wait_seconds: float = 0.0
    elapsed_ms: float = 0.0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    backoff_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    # Rate-limit replies are not counted as attempts (we waited, we did not fail), but a
    # quota that another client keeps eating must end somewhere.
    max_rate_limit_waits: int = 10

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with 'equal jitter': half fixed, half random."""
        ceiling = min(self.backoff_max_seconds, self.backoff_seconds * (2 ** (attempt - 1)))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


# How often a call whose rows must exist is asked when it comes back empty. Tushare answers
# an empty success now and then where the next call has the rows; one that stays empty is
# believed: the data is not published yet.
EMPTY_REPLY_ATTEMPTS = 3


class _Transient(Exception):
    """A fault worth retrying; its text goes into the stats and the final error."""


class TushareClient:
    def __init__(
        self,
        http_url: str,
        token: str,
        calls_per_minute: int = 200,
        api_calls_per_minute: dict[str, int] | None = None,
        window_seconds: float = 60.0,
        timeout_seconds: float = 30.0,
        retry: RetryPolicy | None = None,
        row_limits: dict[str, int] | None = None,
    ):
        self.http_url = http_url.rstrip("/")
        self.__token = token  # name-mangled and kept out of repr: never logged
        self.calls_per_minute = calls_per_minute
        self.api_calls_per_minute = dict(api_calls_per_minute or {})
        self.window_seconds = window_seconds
        self.timeout_seconds = timeout_seconds
        self.retry = retry or RetryPolicy()
        self.row_limits = dict(row_limits or {})
        self._local = threading.local()
        self._stats: list[CallStats] = []
        self._stats_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TushareClient(http_url={self.http_url!r}, token=<hidden>)"

    # --- public ----------------------------------------------------------------------

    def query(
        self,
        api_name: str,
        params: dict[str, Any] | None = None,
        fields: str | list[str] | None = None,
        require_rows: bool = False,
        expect_rows: bool | None = None,
    ) -> pd.DataFrame:
        """All rows of one call, every page of it, or an exception.

        ``fields``: the columns wanted; without them, every column the catalog knows for
        the API (Tushare itself would send only its default-display ones). A reply lacking
        a wanted column is garbage and retried; a column not wanted is dropped.

        ``expect_rows``: rows should exist, so an empty reply is asked again (up to
        ``EMPTY_REPLY_ATTEMPTS`` calls) before it is believed. ``require_rows``: rows must
        exist (an open trading day), so one that stays empty is an error, never "no data".
        """
        params = {k: v for k, v in (params or {}).items() if v is not None}
        wanted = protocol.normalize_fields(fields) or known_fields(api_name)
        expect_rows = require_rows if expect_rows is None else expect_rows
        stats = CallStats(api=api_name, params=dict(params))
        started = time.monotonic()
        try:
            for asked in range(1, EMPTY_REPLY_ATTEMPTS + 1):
                columns, items = self._all_pages(api_name, params, wanted, stats)
                if items or not expect_rows or asked == EMPTY_REPLY_ATTEMPTS:
                    break
                stats.empty_replies += 1
                delay = self.retry.backoff(asked)
                log.info("Tushare %s(%s) returned no rows where rows should exist; asking again in %.2fs",
                         api_name, _describe(params), delay)
                time.sleep(delay)
        except Exception as exc:
            stats.errors.append(str(exc))
            raise
        finally:
            stats.elapsed_ms = round((time.monotonic() - started) * 1000, 1)
            with self._stats_lock:
                self._stats.append(stats)
        stats.rows = len(items)
        if require_rows and not items:
            raise TushareEmptyReplyError(
                f"Tushare {api_name}({_describe(params)}) returned no rows where rows must exist, "
                f"{EMPTY_REPLY_ATTEMPTS} times: the data is not published yet or the source is faulty; "
                "nothing was written, re-run later"
            )
        return pd.DataFrame(items, columns=columns)

    def stats_mark(self) -> int:
        with self._stats_lock:
            return len(self._stats)

    def stats_since(self, mark: int = 0) -> list[CallStats]:
        with self._stats_lock:
            return list(self._stats[mark:])

    # --- paging ----------------------------------------------------------------------

    def _row_limit(self, api_name: str) -> int:
        return self.row_limits.get(api_name) or protocol.row_limit(api_name)

    def _all_pages(self, api_name, params, wanted, stats) -> tuple[list[str], list[list]]:
        """Pages from offset 0 while the reply's ``has_more`` is true, whatever a page's size
        (the service may cap below the ``limit`` asked for). A reply without ``has_more``
        ends the call with its first page shorter than ``limit``."""
        limit = self._row_limit(api_name)
        offset = 0
        columns: list[str] | None = None
        items: list[list] = []
        empty_asks = 0
        promised = False  # the last page said has_more
        while True:
            page_params = dict(params, offset=offset, limit=limit)
            reply = _only_wanted(self._call_with_retries(api_name, page_params, wanted, stats), wanted)
            stats.pages += 1
            if promised and not reply.items:
                # The page before said has_more: an empty page here is a faulty reply, not the
                # end, or the rows after ``offset`` (a calendar's oldest days) would go missing.
                empty_asks += 1
                stats.empty_replies += 1
                if empty_asks >= EMPTY_REPLY_ATTEMPTS:
                    raise TushareUnavailableError(
                        f"Tushare {api_name}({_describe(params)}) promised rows after offset {offset}, then sent "
                        f"none {EMPTY_REPLY_ATTEMPTS} times; nothing was written, re-run")
                time.sleep(self.retry.backoff(empty_asks))
                continue
            empty_asks = 0
            if columns is None:
                columns = reply.fields
            elif reply.fields != columns:
                raise TushareUnavailableError(
                    f"Tushare {api_name}({_describe(params)}) changed its columns between pages "
                    f"({columns} then {reply.fields}); nothing was written, re-run"
                )
            items.extend(reply.items)
            promised = reply.has_more is True
            if reply.has_more is not None:
                if not reply.has_more:
                    return columns, items
            else:
                # A service that ignores our `limit` and returns more tells us its real page size.
                if len(reply.items) > limit:
                    limit = len(reply.items)
                if len(reply.items) < limit:
                    return columns, items
            offset += len(reply.items)

    # --- one page, retried -------------------------------------------------------------

    def quota_usage(self, api_name: str) -> tuple[int, int]:
        """(calls of ``api_name`` counting against the account's quota now, its limit): on this
        host, or on every host sharing ``ZQUANT_QUOTA_URL``."""
        return self._limiter(api_name).usage()

    def _limiter(self, api_name: str):
        return limiter_for(
            f"{self.http_url}\0{self.__token}",  # the quota is the account's at that endpoint
            api_name,
            self.api_calls_per_minute.get(api_name, self.calls_per_minute),
            self.window_seconds,
        )

    def _call_with_retries(self, api_name, params, wanted, stats) -> protocol.Reply:
        limiter = self._limiter(api_name)
        attempt = 0
        rate_limit_waits = 0
        last_error = ""
        while True:
            waited, ticket = limiter.acquire()
            stats.quota_wait_seconds += waited
            stats.attempts += 1
            attempt += 1
            try:
                try:
                    reply = self._post(api_name, params, wanted)
                finally:
                    limiter.done(ticket)  # the quota's window runs from the answer
            except _Transient as exc:
                last_error = str(exc)
            else:
                if reply.code == protocol.CODE_OK:
                    return reply
                limit = protocol.per_minute_limit_in(reply.msg)
                if protocol.is_bad_token(reply.code, reply.msg):
                    raise TushareAuthError(
                        f"Tushare rejected the token on {api_name} ({reply.msg}): "
                        "set TUSHARE_TOKEN to your token from https://tushare.pro/user/token"
                    )
                if protocol.is_no_permission(reply.msg):
                    raise TushareNoPointsError(
                        f"Tushare refused {api_name} for lack of permission ({reply.msg}): the account "
                        "behind TUSHARE_TOKEN needs more points for this API, or use an API it may call"
                    )
                if protocol.is_bad_request(reply.code, reply.msg):
                    raise TushareRequestError(
                        f"Tushare rejected the call {api_name}({_describe(params)}): {reply.msg}; "
                        "fix the API name or parameters"
                    )
                if protocol.is_daily_cap(reply.msg):
                    raise TusharePermissionError(
                        f"Tushare's daily cap for {api_name} is used up ({reply.msg}): "
                        "retry tomorrow or raise the account's points"
                    )
                if limit is not None:
                    # Over the quota: wait out a whole window instead of hammering, and
                    # believe the server's number from now on. Not a failed attempt.
                    rate_limit_waits += 1
                    stats.rate_limit_waits += 1
                    attempt -= 1
                    if limit:
                        limiter.lower_limit(limit)
                    if rate_limit_waits > self.retry.max_rate_limit_waits:
                        raise TushareUnavailableError(
                            f"Tushare kept answering {api_name} with its rate limit ({reply.msg}) after "
                            f"{rate_limit_waits - 1} full-window waits: another client shares the quota of "
                            "TUSHARE_TOKEN; lower TUSHARE_CALLS_PER_MINUTE or stop the other client"
                        )
                    log.warning("Tushare rate limit on %s (%s); waiting %.0fs",
                                api_name, reply.msg, self.window_seconds)
                    limiter.block_for(self.window_seconds)
                    continue
                last_error = f"code {reply.code}: {reply.msg}"
            stats.errors.append(last_error)
            if attempt >= self.retry.max_attempts:
                raise TushareUnavailableError(
                    f"Tushare {api_name}({_describe(params)}) failed {attempt} times, last: {last_error}; "
                    "nothing was written, retry the run later"
                )
            stats.retries += 1
            delay = self.retry.backoff(attempt)
            log.info("Tushare %s attempt %d failed (%s); retrying in %.2fs", api_name, attempt, last_error, delay)
            time.sleep(delay)

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
        return session

    def _post(self, api_name, params, wanted) -> protocol.Reply:
        body = protocol.encode_request(api_name, self.__token, params, wanted)
        url = f"{self.http_url}/{api_name}"
        try:
            response = self._session().post(
                url, data=body, headers={"Content-Type": "application/json"}, timeout=self.timeout_seconds
            )
            content = response.content
        except requests.Timeout:
            raise _Transient(f"timeout after {self.timeout_seconds}s") from None
        except requests.RequestException as exc:
            # Drop the session: its pooled connection may be the broken one.
            self._local.session = None
            raise _Transient(f"network error: {exc.__class__.__name__}") from None
        if response.status_code >= 400:
            raise _Transient(f"HTTP {response.status_code} from {url}")
        try:
            reply = protocol.decode_reply(content)
        except protocol.GarbageReply as exc:
            raise _Transient(f"garbage reply: {exc}") from None
        problem = _garbage_in(reply, wanted) if reply.code == protocol.CODE_OK else ""
        if problem:
            raise _Transient(f"garbage reply: {problem}")
        return reply


def _garbage_in(reply: protocol.Reply, wanted: list[str]) -> str:
    """Why a successful reply cannot be used as it is, or "" when it can."""
    if reply.items or reply.fields:
        missing = [f for f in wanted if f not in reply.fields]
        if missing:
            return f"it lacks the requested column(s) {', '.join(missing)}"
    if reply.has_more and not reply.items:
        return "it says more rows follow but holds none"
    return ""


def _only_wanted(reply: protocol.Reply, wanted: list[str]) -> protocol.Reply:
    """The reply with exactly the ``wanted`` columns in that order: a column added at the
    source (or sent by mistake) is dropped, so it never reaches a table."""
    if not wanted or reply.fields == wanted:
        return reply
    if not reply.items and not reply.fields:  # "no rows" without a header: same answer
        return protocol.Reply(reply.code, reply.msg, list(wanted), [], reply.has_more)
    at = [reply.fields.index(f) for f in wanted]
    return protocol.Reply(reply.code, reply.msg, list(wanted), [[row[i] for i in at] for row in reply.items],
                          reply.has_more)


def _describe(params: dict[str, Any]) -> str:
    shown = {k: v for k, v in params.items() if k not in ("offset", "limit")}
    return ", ".join(f"{k}={v}" for k, v in shown.items())


def summarize(stats: list[CallStats]) -> dict[str, Any]:
    """Totals for materialization metadata."""
    return {
        "api_calls": len(stats),
        "pages": sum(s.pages for s in stats),
        "attempts": sum(s.attempts for s in stats),
        "retries": sum(s.retries for s in stats),
        "rate_limit_waits": sum(s.rate_limit_waits for s in stats),
        "empty_replies_asked_again": sum(s.empty_replies for s in stats),
        "quota_wait_seconds": round(sum(s.quota_wait_seconds for s in stats), 3),
        "fetch_ms": round(sum(s.elapsed_ms for s in stats), 1),
    }
