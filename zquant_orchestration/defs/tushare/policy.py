"""How every step that calls Tushare runs, whatever its domain: its pool, its retries, and
which errors are worth a retry at all."""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from zquant_orchestration.lib.tushare import TushareError, TushareUnavailableError


def tushare_pool(api_name: str) -> str:
    """The Dagster pool of the steps that call ``api_name``. Tushare's quota is per API and per
    account, so dagster.yaml gives each pool ONE slot: whatever runs at once (schedule, backfill,
    manual run), one step per API calls Tushare, held to the quota by its client; different
    APIs still run side by side, and no two runs write the same table at once."""
    return f"tushare_{api_name}"


# Each step retries transient failures after the client's own retries gave up.
STEP_RETRY = dg.RetryPolicy(max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


@contextmanager
def failing_fast_on_permanent_errors() -> Iterator[None]:
    """Only a transient fault earns a step retry. A bad token, a missing permission, a bad
    request or a day with no data yet would fail the same way again: fail now, with the
    one-line cause (the gap sensor re-requests unfinished days later)."""
    try:
        yield
    except TushareUnavailableError:
        raise
    except TushareError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
