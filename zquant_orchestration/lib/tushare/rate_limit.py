"""A per-API calls-per-window quota shared by every thread of the process.

Tushare counts calls per API per minute. We keep a sliding log of the moments we sent
calls, so that in ANY window of ``window_seconds`` at most ``limit`` calls leave this
process: a token bucket would allow a burst of ``2 * limit`` across a window boundary,
which the service answers with code 40203.

The server stamps a call when it arrives, a little after we stamp it when we send, so
each window is widened by ``margin_seconds`` (default: 1/60 of the window, one second
per minute) to absorb that delivery delay.
"""

from __future__ import annotations

import threading
import time
from collections import deque


class SlidingWindowLimiter:
    def __init__(self, limit: int, window_seconds: float = 60.0, margin_seconds: float | None = None):
        if limit < 1:
            raise ValueError(f"a quota must allow at least one call per window, got {limit}")
        self.limit = limit
        self.window = window_seconds
        self.margin = window_seconds / 60.0 if margin_seconds is None else margin_seconds
        self._sent: deque[float] = deque()
        self._blocked_until = 0.0
        self._cond = threading.Condition()

    def acquire(self) -> float:
        """Block until one more call fits in the quota; return the seconds waited."""
        started = time.monotonic()
        with self._cond:
            while True:
                now = time.monotonic()
                span = self.window + self.margin
                while self._sent and self._sent[0] <= now - span:
                    self._sent.popleft()
                wait = self._blocked_until - now
                if wait <= 0 and len(self._sent) < self.limit:
                    self._sent.append(now)
                    return now - started
                if wait <= 0:
                    wait = self._sent[0] + span - now
                self._cond.wait(timeout=max(wait, 0.001))

    def block_for(self, seconds: float) -> None:
        """The server said we are over its quota: send nothing more for ``seconds``."""
        with self._cond:
            self._blocked_until = max(self._blocked_until, time.monotonic() + seconds)
            self._cond.notify_all()

    def lower_limit(self, limit: int) -> None:
        """The server told us its real quota; never go above it again in this process."""
        with self._cond:
            if 1 <= limit < self.limit:
                self.limit = limit


_registry: dict[tuple[str, str, float], SlidingWindowLimiter] = {}
_registry_lock = threading.Lock()


def limiter_for(scope: str, api_name: str, limit: int, window_seconds: float) -> SlidingWindowLimiter:
    """The process-wide limiter of one API at one endpoint (created on first use).

    Every client in the process that talks to the same endpoint shares it, so two
    resources or twenty threads together still keep the account's quota.
    """
    key = (scope, api_name, window_seconds)
    with _registry_lock:
        limiter = _registry.get(key)
        if limiter is None:
            limiter = SlidingWindowLimiter(limit, window_seconds)
            _registry[key] = limiter
        elif limit < limiter.limit:
            limiter.lower_limit(limit)
        return limiter
