"""How every step that calls Tushare runs, whatever its domain: its pool, its retries, and
which errors are worth a retry at all."""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from zquant_orchestration.lib.datasets import DatasetSpec
from zquant_orchestration.lib.tushare import TushareError, TushareNoPointsError, TushareUnavailableError


def tushare_pool(api_name: str) -> str:
    """The Dagster pool of the steps that call ``api_name``. Tushare's quota is per API and per
    account, so dagster.yaml gives each pool ONE slot: whatever runs at once (schedule, backfill,
    manual run), one step per API calls Tushare, held to the quota by its client; different
    APIs still run side by side, and no two runs write the same table at once."""
    return f"tushare_{api_name}"


# Each step retries transient failures after the client's own retries gave up.
STEP_RETRY = dg.RetryPolicy(max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


@contextmanager
def failing_fast_on_permanent_errors(spec: DatasetSpec | None = None) -> Iterator[None]:
    """Only a transient fault earns a step retry. A bad token, a missing permission, a bad
    request or a day with no data yet would fail the same way again: fail now, with the
    one-line cause (the gap sensor re-requests unfinished days later). An API the account
    lacks the points for names the points the dataset needs and the setting that drops it."""
    try:
        yield
    except TushareUnavailableError:
        raise
    except TushareNoPointsError as exc:
        if spec is None:
            raise dg.Failure(description=str(exc), allow_retries=False) from None
        raise dg.Failure(description=no_points_message(spec), allow_retries=False) from None
    except TushareError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None


def no_points_message(spec: DatasetSpec) -> str:
    if spec.core:
        remedy = f"it is part of the foundation and cannot be turned off: raise the account to {spec.points} points"
    else:
        remedy = (f"raise the account to {spec.points} points, or leave {spec.name} out of ZQUANT_DATASETS "
                  "to stop fetching it")
    return (f"{spec.name}: Tushare refused {spec.api} for lack of points: the dataset needs {spec.points} points "
            f"({spec.doc_url}); {remedy}")
