"""A per-API calls-per-window quota shared by every thread AND every process on this host.

Tushare counts calls per API, per account, per minute. We keep a sliding log of calls so
that in ANY window of ``window_seconds`` at most ``limit`` calls reach the service: a
token bucket would allow a burst of ``2 * limit`` across a window boundary, which the
service answers with code 40203.

Why a file and not memory: each Dagster step runs in its own process. Dagster pools let
one step per API call Tushare at a time, but when one step ends and the next starts, the
new process would not know the calls the last one made a second ago, and could send a
whole quota again inside the same window. The log therefore lives in a small JSON file
per (endpoint, account, API), guarded by ``flock`` and replaced atomically, so every
process on the host sees the same calls. A process killed mid-call leaves its stamp.

Why two stamps per call: the server counts a call when it ARRIVES, which is some time
after we send it. A call is stamped when it is sent (so it counts while in flight) and
stamped again when its reply is back, which is after it arrived; the window is measured
from the later stamp, so no delivery delay can squeeze ``limit + 1`` arrivals into one
server window.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import json
import logging
import math
import os
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from zquant_orchestration.settings import get_settings

IN_FLIGHT, ANSWERED = 0, 1
# A call still "in flight" this many windows after it was sent belongs to a killed process.
STALE_WINDOWS = 10
LEARNED_LIMIT_SECONDS = 3600

log = logging.getLogger(__name__)


def default_quota_dir() -> Path:
    """``$ZQUANT_QUOTA_DIR``, else ``$DAGSTER_HOME/tushare_quota``, else a per-user temp dir:
    every process of one deployment on this host must agree on it."""
    settings = get_settings()
    if settings.quota_dir is not None:
        return settings.quota_dir
    if settings.dagster_home:
        return Path(settings.dagster_home) / "tushare_quota"
    return Path(tempfile.gettempdir()) / f"zquant-tushare-quota-{os.getuid()}"


class SharedCallLog:
    """The quota of one API: ``acquire()`` blocks until a call fits, ``done()`` restamps it."""

    _tickets = itertools.count()

    def __init__(self, path: Path, limit: int, window_seconds: float = 60.0):
        if limit < 1:
            raise ValueError(f"a quota must allow at least one call per window, got {limit}")
        self.path = Path(path)
        self.limit = limit
        self.window = window_seconds
        self._thread_lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)

    # --- what the client calls -------------------------------------------------------

    def acquire(self) -> tuple[float, str]:
        """Block until one more call fits; return (seconds waited, the call's ticket)."""
        started = time.monotonic()
        ticket = f"{os.getpid()}-{next(self._tickets)}"
        while True:
            with self._state() as state:
                now = time.time()
                calls = state["calls"]
                limit = min(self.limit, self._learned_limit(state, now) or self.limit)
                wait = state.get("blocked_until", 0.0) - now
                if wait <= 0 and len(calls) < limit:
                    calls[ticket] = [now, IN_FLIGHT]
                    return time.monotonic() - started, ticket
                if wait <= 0:
                    # The oldest answered call leaves the window first; calls still in
                    # flight leave only once answered, so look again soon.
                    answered = [stamp for stamp, status in calls.values() if status == ANSWERED]
                    wait = min(answered) + self.window - now if answered else self.window / 20
            time.sleep(min(max(wait, 0.001), self.window))

    def done(self, ticket: str) -> None:
        """The call's reply is back: it arrived before now, so count its window from now."""
        with self._state() as state:
            state["calls"][ticket] = [time.time(), ANSWERED]

    def block_for(self, seconds: float) -> None:
        """The server said we are over its quota: nobody on this host sends for ``seconds``."""
        with self._state() as state:
            state["blocked_until"] = max(state.get("blocked_until", 0.0), time.time() + seconds)

    def lower_limit(self, limit: int) -> None:
        """The server told us its real quota: no process on this host goes above it for
        ``LEARNED_LIMIT_SECONDS`` (then we believe our configuration again, so an account
        that gained points is not held to its old quota forever)."""
        if limit < 1:
            return
        with self._state() as state:
            now = time.time()
            state["learned_limit"] = [min(self._learned_limit(state, now) or limit, limit), now]

    def usage(self) -> tuple[int, int]:
        """(calls counting against the quota now, the limit in force), for health checks."""
        with self._state() as state:
            now = time.time()
            return len(state["calls"]), min(self.limit, self._learned_limit(state, now) or self.limit)

    @staticmethod
    def _learned_limit(state: dict, now: float) -> int | None:
        learned = state.get("learned_limit")
        if not learned or now - learned[1] > LEARNED_LIMIT_SECONDS:
            return None
        return int(learned[0])

    # --- the file --------------------------------------------------------------------

    @contextmanager
    def _state(self):
        """The log, read under an exclusive lock and written back atomically on exit."""
        lock_path = self.path.with_suffix(".lock")
        with self._thread_lock, open(lock_path, "a+") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                state = self._read()
                now = time.time()
                self._drop_the_future(state, now)
                state["calls"] = {ticket: call for ticket, call in state["calls"].items()
                                  if self._still_counts(call, now)}
                yield state
                tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps(state))
                os.replace(tmp, self.path)
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _still_counts(self, call, now: float) -> bool:
        """An answered call counts for one window after its answer. A call in flight counts
        until answered; one whose process was killed is forgotten after ``STALE_WINDOWS``.
        A stamp in the future means the clock went back: forget it, or it would block the
        API until the clock caught up."""
        stamp, status = call
        if stamp > now + 1:
            return False
        age = now - stamp
        return age < self.window if status == ANSWERED else age < self.window * STALE_WINDOWS

    def _drop_the_future(self, state: dict, now: float) -> None:
        """A block or stamp more than a window ahead cannot be right (we never write one):
        the clock went back. Kept, it would hold every call until the clock caught up."""
        horizon = now + self.window
        ahead = [stamp for stamp, _ in state["calls"].values() if stamp > horizon]
        if state.get("blocked_until", 0.0) > horizon:
            ahead.append(state.pop("blocked_until"))
        if state.get("learned_limit") and state["learned_limit"][1] > horizon:
            ahead.append(state.pop("learned_limit")[1])
        if ahead:  # calls stamped ahead are dropped by _still_counts, with those a little ahead
            log.warning("Tushare quota file %s holds times up to %.0f s in the future (the clock went back); "
                        "dropped them", self.path, max(ahead) - now)

    def _read(self) -> dict:
        try:
            state = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {"calls": {}}  # the first call on this host
        except ValueError:
            state = None
        if not _well_formed(state):
            # A crash mid-write cannot leave one (os.replace is atomic), so this is
            # someone's edit. Start afresh: at worst one window's calls are forgotten.
            log.warning("Tushare quota file %s is not a quota log (bad JSON or wrong shape): started it afresh",
                        self.path)
            return {"calls": {}}
        return state


def _well_formed(state) -> bool:
    """The shape _state writes: {"calls": {ticket: [stamp, 0|1]}, "blocked_until": stamp,
    "learned_limit": [calls, stamp]}, the last two optional. Anything else (a NaN too)
    would raise on every call."""
    def number(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    def pair(value) -> bool:
        return isinstance(value, list) and len(value) == 2 and all(number(v) for v in value)

    if not isinstance(state, dict) or not isinstance(state.get("calls"), dict):
        return False
    if not all(pair(call) and call[1] in (IN_FLIGHT, ANSWERED) for call in state["calls"].values()):
        return False
    if "blocked_until" in state and not number(state["blocked_until"]):
        return False
    learned = state.get("learned_limit")
    return not learned or (pair(learned) and learned[0] >= 1)


_registry: dict[Path, SharedCallLog] = {}
_registry_lock = threading.Lock()


def limiter_for(scope: str, api_name: str, limit: int, window_seconds: float,
                quota_dir: Path | None = None) -> SharedCallLog:
    """The quota of one API for one account at one endpoint.

    ``scope`` names the account and endpoint; it is hashed into the file name, so a
    token in it never lands on disk. Every client on the host with the same scope
    shares the log, so two resources, twenty threads or five step processes together
    still keep the account's quota.
    """
    digest = hashlib.sha256(f"{scope}\0{window_seconds}".encode()).hexdigest()[:20]
    path = (quota_dir or default_quota_dir()) / f"{api_name}-{digest}.json"
    with _registry_lock:
        log = _registry.get(path)
        if log is None:
            log = _registry[path] = SharedCallLog(path, limit, window_seconds)
        elif limit < log.limit:
            log.limit = limit
        return log
