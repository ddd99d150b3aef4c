"""``market_gap_sensor``: keeps the last N trading days complete without anyone watching.

Every 10 minutes it looks at the trading days of the last ``ZQUANT_GAP_LOOKBACK_DAYS`` (30)
before today, finds those where an enabled trading-day dataset is missing or failed once
Tushare has published it (its declaration's ``published``), and requests each contiguous
run of such days as ONE range run (not a run per day) of the datasets with gaps. A day already queued or
running is never requested again; a day is re-requested at most ``ZQUANT_GAP_MAX_ATTEMPTS``
(3) times, then left failed and visible (the partition stays red in the UI and the sensor
says so in its tick log).
"""

from __future__ import annotations

import json
from datetime import datetime, time

import dagster as dg

from zquant_orchestration.defs.shared.partitions import SHANGHAI, pinned_today, trading_day_partitions
from zquant_orchestration.lib.datasets import DatasetSpec
from zquant_orchestration.lib.dates import to_date
from zquant_orchestration.lib.run_tags import IN_PROGRESS, PARTITION, RANGE_END, RANGE_START
from zquant_orchestration.settings import get_settings

from .assets import day_datasets
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
           description="Requests missing or failed trading days of the recent past as range runs, each dataset's "
                       "days only once Tushare has published them.")
def market_gap_sensor(context: dg.SensorEvaluationContext):
    settings = get_settings()
    lookback, max_attempts = settings.gap_lookback_days, settings.gap_max_attempts
    now = _now(context)
    trading_days = trading_day_partitions()
    all_days = trading_days.get_partition_keys()
    days = [d for d in all_days if d < now.date().isoformat()][-lookback:]
    specs = day_datasets(settings.datasets)
    status: dict[str, set] = {day: set() for day in days}
    gaps: dict[str, set[str]] = {day: set() for day in days}  # day -> datasets due and not landed
    due: dict[str, set[str]] = {day: set() for day in days}  # day -> datasets Tushare has published
    position = {d: i for i, d in enumerate(all_days)}
    for spec in specs:
        by_day = context.instance.get_status_by_partition(dg.AssetKey(spec.name), days, trading_days) or {}
        for day in days:
            if not is_published(spec, day, all_days, position, now):
                continue
            due[day].add(spec.name)
            status[day].add(by_day.get(day))
            if by_day.get(day) != dg.AssetPartitionStatus.MATERIALIZED:
                gaps[day].add(spec.name)
    cursor = json.loads(context.cursor or "{}")
    attempts = {d: n for d, n in cursor.get("attempts", {}).items()
                if d in status and status[d] != {dg.AssetPartitionStatus.MATERIALIZED}}
    ranges, given_up = gap_ranges(days, status, busy_days(context.instance, days), attempts, max_attempts)
    ranges = [part for r in ranges for part in _same_datasets(r, days, due)]
    requests = []
    for first, last in ranges:
        covered = [d for d in days if first <= d <= last]
        attempt = 1 + max(attempts.get(d, 0) for d in covered)
        for d in covered:
            attempts[d] = attempts.get(d, 0) + 1
        requests.append(dg.RunRequest(run_key=f"gap:{first}:{last}:{attempt}",
                                      asset_selection=_selection(set().union(*(gaps[d] for d in covered))),
                                      tags={RANGE_START: first, RANGE_END: last, "zquant/trigger": "gap_repair"}))
    if given_up:
        context.log.warning(f"left failed after {max_attempts} attempts: {', '.join(given_up)}; "
                            "re-run them by hand once the cause is fixed")
    return dg.SensorResult(run_requests=requests, cursor=json.dumps({"attempts": attempts}, sort_keys=True))


def is_published(spec: DatasetSpec, day: str, all_days: list[str], position: dict[str, int], now: datetime) -> bool:
    """Whether Tushare has published ``spec``'s rows of ``day`` by ``now`` (its declaration's
    time, on the day or the trading day(s) after it)."""
    if spec.published is None:
        return True
    later = position[day] + spec.published.trading_days_later
    if later >= len(all_days):
        return False
    return datetime.combine(to_date(all_days[later]), spec.published.at, tzinfo=SHANGHAI) <= now


def _same_datasets(span: tuple[str, str], days: list[str], due: dict[str, set[str]]) -> list[tuple[str, str]]:
    """``span`` cut where the published datasets change, so that no run asks for a dataset on a
    day Tushare has not published it yet (margin balances of the last day, the next morning)."""
    parts: list[list[str]] = []
    for day in (d for d in days if span[0] <= d <= span[1]):
        if parts and due[day] == due[parts[-1][-1]]:
            parts[-1].append(day)
        else:
            parts.append([day])
    return [(part[0], part[-1]) for part in parts]


def _selection(names: set[str]) -> list[dg.AssetKey]:
    """The datasets to repair, with the adjusted bars when their inputs are among them."""
    chosen = sorted(names) + (["daily_hfq"] if names & {"daily_bars", "adj_factor"} else [])
    return [dg.AssetKey(n) for n in chosen]


def _now(context: dg.SensorEvaluationContext) -> datetime:
    """Shanghai's now, or the start of the day ZQUANT_TODAY pins (``pinned_today``)."""
    pinned = pinned_today()
    return datetime.combine(pinned, time(0), tzinfo=SHANGHAI) if pinned else datetime.now(SHANGHAI)
