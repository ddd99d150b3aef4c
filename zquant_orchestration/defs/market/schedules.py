"""Schedules (Asia/Shanghai), over the jobs of jobs.py. `dagster schedule start/stop` and the
UI toggles switch them on and off; see README "Automation".

- ``market_after_close_schedule``: each weekday at ``ZQUANT_MARKET_CRON`` (default 18:30,
  after Tushare publishes the day), the stock list and that trading day's datasets in ONE
  run: those Tushare has published by then (each declaration's ``published``). The market
  assets do not wait for ``stock_basic`` (a ``trade_date`` call needs no stock list), only
  the check of the day's bars against the listed stocks does. Holidays skip.
  ``ZQUANT_TODAY`` pins the day it asks for (replays, tests), as it pins the gap sensor's.
- ``late_datasets_schedule``: the enabled datasets Tushare publishes after that tick (money
  flow at 19:00, the dragon-tiger list at 20:00, margin balances the next morning), each at
  its own time, for the day it publishes.
- ``reference_data_schedule``: the calendars, the stock list and the other reference
  datasets every morning (08:00), so next year's holidays and new listings arrive without
  anyone asking.
"""

from __future__ import annotations

import functools
import re
from datetime import time

import dagster as dg

from zquant_orchestration.defs.shared.lazy import lazy_attributes
from zquant_orchestration.defs.shared.partitions import SHANGHAI, pinned_today, trading_day_partitions
from zquant_orchestration.lib.datasets import DatasetSpec
from zquant_orchestration.settings import get_settings

from .assets import day_datasets
from .jobs import daily_market_job, reference_data_job

SCHEDULE_NAMES = ("market_after_close_schedule", "reference_data_schedule", "late_datasets_schedule")


def tick_time(cron: str) -> time | None:
    """The time of day of a cron that fires once a day at a fixed minute, else None."""
    match = re.fullmatch(r"(\d{1,2}) (\d{1,2}) .*", cron.strip())
    return time(int(match.group(2)), int(match.group(1))) if match else None


def split_by_tick(specs: tuple[DatasetSpec, ...], evening: time | None) -> tuple[list[str], list[DatasetSpec]]:
    """(datasets the evening tick fetches, datasets fetched later at their own time)."""
    now_ready, later = [], []
    for spec in specs:
        p = spec.published
        if p is not None and (p.trading_days_later or (evening is not None and p.at > evening)):
            later.append(spec)
        else:
            now_ready.append(spec.name)
    return now_ready, later


def build_schedules() -> tuple[dg.ScheduleDefinition, ...]:
    """The schedules, at the crons and over the datasets the settings hold when the definitions are built."""
    settings = get_settings()
    evening_names, later = split_by_tick(day_datasets(settings.datasets), tick_time(settings.market_cron))
    # Only when a dataset waits for a later tick does the evening run name its assets;
    # otherwise it is the whole job, checks and all.
    evening_selection = ([dg.AssetKey(n) for n in ("stock_basic", *evening_names, "daily_hfq")] if later else None)

    @dg.schedule(job=daily_market_job, cron_schedule=settings.market_cron, execution_timezone="Asia/Shanghai",
                 default_status=dg.DefaultScheduleStatus.RUNNING,
                 description="After the close on trading days: the day's market data (holidays skip).")
    def market_after_close_schedule(context: dg.ScheduleEvaluationContext):
        day = (pinned_today() or context.scheduled_execution_time.astimezone(SHANGHAI).date()).isoformat()
        if not trading_day_partitions().has_partition_key(day):
            return dg.SkipReason(f"{day} is not an SSE trading day: nothing to fetch")
        return dg.RunRequest(run_key=day, partition_key=day, tags={"zquant/trigger": "schedule"},
                             asset_selection=evening_selection)

    reference_data_schedule = dg.ScheduleDefinition(
        name="reference_data_schedule", job=reference_data_job, cron_schedule=settings.reference_cron,
        execution_timezone="Asia/Shanghai", default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Trading calendars, the stock list and the other reference datasets, every morning.",
    )
    if not later:
        return market_after_close_schedule, reference_data_schedule
    return market_after_close_schedule, reference_data_schedule, _late_schedule(later)


def _late_schedule(later: list[DatasetSpec]) -> dg.ScheduleDefinition:
    ticks = sorted({s.published.at for s in later})

    @dg.schedule(job=daily_market_job, cron_schedule=[f"{t.minute} {t.hour} * * 1-5" for t in ticks],
                 execution_timezone="Asia/Shanghai", default_status=dg.DefaultScheduleStatus.RUNNING,
                 name="late_datasets_schedule",
                 description="Datasets Tushare publishes after the evening run, each at its time: "
                             + ", ".join(f"{s.name} {s.published}" for s in later))
    def late_datasets_schedule(context: dg.ScheduleEvaluationContext):
        moment = context.scheduled_execution_time.astimezone(SHANGHAI)
        today = (pinned_today() or moment.date()).isoformat()
        days = trading_day_partitions().get_partition_keys()
        if today not in days:
            return dg.SkipReason(f"{today} is not an SSE trading day: nothing is published")
        due = [s for s in later if (s.published.at.hour, s.published.at.minute) == (moment.hour, moment.minute)]
        requests = []
        for lag in sorted({s.published.trading_days_later for s in due}):
            day = days[days.index(today) - lag]
            names = sorted(s.name for s in due if s.published.trading_days_later == lag)
            requests.append(dg.RunRequest(run_key=f"{day}:{'+'.join(names)}", partition_key=day,
                                          asset_selection=[dg.AssetKey(n) for n in names],
                                          tags={"zquant/trigger": "schedule"}))
        return requests or dg.SkipReason(f"no dataset is published at {moment:%H:%M}")

    return late_datasets_schedule


def _built_schedule(name: str) -> dg.ScheduleDefinition:
    built = {s.name: s for s in build_schedules()}
    if name not in built:  # a schedule the enabled datasets do not need
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return built[name]


# The schedules as attributes, for tests and tools that import them.
__getattr__ = lazy_attributes(__name__, {name: functools.partial(_built_schedule, name) for name in SCHEDULE_NAMES})
