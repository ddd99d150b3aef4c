"""The quota's store on one host: a small JSON file per (endpoint, account, API).

Why a file and not memory: each Dagster step runs in its own process. Dagster pools let
one step per API call Tushare at a time, but when one step ends and the next starts, the
new process would not know the calls the last one made a second ago, and could send a
whole quota again inside the same window. The log therefore lives in a file guarded by
``flock`` and replaced atomically, so every process on the host sees the same calls. A
process killed mid-call leaves its stamp. Hosts do not share it: ``quota_database.py``.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .quota_store import ANSWERED, IN_FLIGHT, STALE_WINDOWS, Snapshot

log = logging.getLogger(__name__)


class FileStore:
    """One API's call log: ``{"calls": {ticket: [stamp, status]}, "blocked_until": stamp,
    "learned_limit": [calls, stamp]}``, stamps on this host's clock (``time.time()``)."""

    def __init__(self, path: Path, window_seconds: float):
        self.path = Path(path)
        self.where = str(self.path)
        self.window = window_seconds
        self._thread_lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def attempt(self) -> Iterator[Snapshot]:
        with self._state() as state:
            calls = state["calls"]
            learned = state.get("learned_limit")
            answered = [stamp for stamp, status in calls.values() if status == ANSWERED]
            blocked = state.get("blocked_until", 0.0)
            snapshot = Snapshot(now=time.time(), calls=len(calls), oldest_answered=min(answered, default=None),
                                blocked_until=blocked, learned=(int(learned[0]), learned[1]) if learned else None)
            yield snapshot
            if snapshot.new_call:
                calls[snapshot.new_call] = [snapshot.now, IN_FLIGHT]
            if snapshot.blocked_until != blocked:
                state["blocked_until"] = snapshot.blocked_until
            if snapshot.learned:
                state["learned_limit"] = list(snapshot.learned)

    def answer(self, ticket: str) -> None:
        with self._state() as state:
            state["calls"][ticket] = [time.time(), ANSWERED]

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
