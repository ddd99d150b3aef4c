"""Shared helpers: a Tushare resource pointed at a local server, and the quota arithmetic."""

from __future__ import annotations

import dagster as dg

from zquant_orchestration.defs.tushare.resources import TushareResource
from zquant_orchestration.lib.tushare_server import LOCAL_TOKEN


def resource_for(server, **overrides) -> TushareResource:
    options = dict(token=LOCAL_TOKEN, http_url=server.url, timeout_seconds=1.0, backoff_seconds=0.01,
                   backoff_max_seconds=0.05, max_attempts=10)
    options.update(overrides)
    resource = TushareResource(**options)
    resource.setup_for_execution(dg.build_init_resource_context())
    return resource


def max_calls_in_window(times: list[float], window: float) -> int:
    """The most arrivals inside any window of ``window`` seconds (two pointers over sorted times)."""
    times = sorted(times)
    best = lo = 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best
