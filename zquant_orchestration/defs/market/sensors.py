"""``market_gap_sensor``: keeps the last N trading days complete without anyone watching.

Every 10 minutes it looks at the trading days of the last ``ZQUANT_GAP_LOOKBACK_DAYS`` (30)
before today, finds those where a market asset is missing or failed, and requests each
contiguous run of such days as ONE range run (not a run per day). A day already queued or
running is never requested again; a day is re-requested at most ``ZQUANT_GAP_MAX_ATTEMPTS``
(3) times, then left failed and visible (the partition stays red in the UI and the sensor
says so in its tick log).
"""

from __future__ import annotations

import json
from datetime import date, datetime

import dagster as dg

from zquant_orchestration.defs.shared.partitions import SHANGHAI, pinned_today, trading_day_partitions
from zquant_orchestration.lib.run_tags import IN_PROGRESS, PARTITION, RANGE_END, RANGE_START
from zquant_orchestration.settings import get_settings

from .assets import MARKET_TABLES
from .jobs import market_data_job


def gap_ranges(days: list[str], status: dict[str, set], busy: set[str], attempts: dict[str, int],
               max_attempts: int) -> tuple[list[tuple[str, str]], list[str]]:
    """(contiguous ranges to request, days given up on). ``status``: day -> the statuses of its
    assets (None for never materialized)."""
    ranges, given_up, current = [], [], []
    for day in days:
        statuses = status.get(day, {None})
        gap = statuses - {dg.AssetPartitionStatus.MATERIALIZED} and dg.AssetPartitionStatus.IN_PROGRESS not in statuses
        if gap and day not in busy and attempts.get(day, 0) >= max_attempts:
            given_up.append(day)
            gap = False
        if gap and day not in busy:
            current.append(day)
        elif current:
            ranges.append((current[0], current[-1]))
            current = []
    if current:
        ranges.append((current[0], current[-1]))
    return ranges, given_up


def busy_days(instance: dg.DagsterInstance, days: list[str]) -> set[str]:
    """Trading days a queued or running run already covers (by its partition tags)."""
    busy = set()
    for run in instance.get_runs(dg.RunsFilter(statuses=IN_PROGRESS)):
        tags = run.tags
        first = tags.get(RANGE_START, tags.get(PARTITION))
        last = tags.get(RANGE_END, tags.get(PARTITION))
        if first and last:
            busy.update(d for d in days if first <= d <= last)
    return busy


@dg.sensor(job=market_data_job, minimum_interval_seconds=600, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Requests missing or failed trading days of the recent past as range runs.")
def market_gap_sensor(context: dg.SensorEvaluationContext):
    settings = get_settings()
    lookback, max_attempts = settings.gap_lookback_days, settings.gap_max_attempts
    today = _today(context)
    trading_days = trading_day_partitions()
    days = [d for d in trading_days.get_partition_keys() if d < today.isoformat()][-lookback:]
    status: dict[str, set] = {day: set() for day in days}
    for table in MARKET_TABLES:
        by_day = context.instance.get_status_by_partition(dg.AssetKey(table.asset_name), days, trading_days) or {}
        for day in days:
            status[day].add(by_day.get(day))
    cursor = json.loads(context.cursor or "{}")
    attempts = {d: n for d, n in cursor.get("attempts", {}).items()
                if d in status and status[d] != {dg.AssetPartitionStatus.MATERIALIZED}}
    ranges, given_up = gap_ranges(days, status, busy_days(context.instance, days), attempts, max_attempts)
    requests = []
    for first, last in ranges:
        covered = [d for d in days if first <= d <= last]
        attempt = 1 + max(attempts.get(d, 0) for d in covered)
        for d in covered:
            attempts[d] = attempts.get(d, 0) + 1
        requests.append(dg.RunRequest(run_key=f"gap:{first}:{last}:{attempt}",
                                      tags={RANGE_START: first, RANGE_END: last, "zquant/trigger": "gap_repair"}))
    if given_up:
        context.log.warning(f"left failed after {max_attempts} attempts: {', '.join(given_up)}; "
                            "re-run them by hand once the cause is fixed")
    return dg.SensorResult(run_requests=requests, cursor=json.dumps({"attempts": attempts}, sort_keys=True))


def _today(context: dg.SensorEvaluationContext) -> date:
    """Shanghai's today, or the day ZQUANT_TODAY pins (``pinned_today``)."""
    return pinned_today() or datetime.now(SHANGHAI).date()
