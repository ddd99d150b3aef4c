"""Schedules (Asia/Shanghai), over the jobs of jobs.py. `dagster schedule start/stop` and the
UI toggles switch them on and off; see README "Automation".

- ``market_after_close_schedule``: each weekday at ``ZQUANT_MARKET_CRON`` (default 18:30,
  after Tushare publishes the day), the stock list and that trading day's market data in
  ONE run: the market assets do not wait for ``stock_basic`` (a ``trade_date`` call needs
  no stock list), only the check of the day's bars against the listed stocks does, so the
  day's rows land seconds sooner. Holidays skip. ``ZQUANT_TODAY`` pins the day it asks for
  (replays, tests), as it pins the gap sensor's today.
- ``reference_data_schedule``: the calendars and the stock list every morning (08:00), so
  next year's holidays and new listings arrive without anyone asking.
"""

from __future__ import annotations

import dagster as dg

from zquant_orchestration.defs.shared.partitions import SHANGHAI, pinned_today, trading_day_partitions
from zquant_orchestration.settings import get_settings

from .jobs import daily_market_job, reference_data_job


def build_schedules() -> tuple[dg.ScheduleDefinition, dg.ScheduleDefinition]:
    """The two schedules, at the crons the settings hold when the definitions are built."""
    settings = get_settings()

    @dg.schedule(job=daily_market_job, cron_schedule=settings.market_cron, execution_timezone="Asia/Shanghai",
                 default_status=dg.DefaultScheduleStatus.RUNNING,
                 description="After the close on trading days: the day's market data (holidays skip).")
    def market_after_close_schedule(context: dg.ScheduleEvaluationContext):
        day = (pinned_today() or context.scheduled_execution_time.astimezone(SHANGHAI).date()).isoformat()
        if not trading_day_partitions().has_partition_key(day):
            return dg.SkipReason(f"{day} is not an SSE trading day: nothing to fetch")
        return dg.RunRequest(run_key=day, partition_key=day, tags={"zquant/trigger": "schedule"})

    reference_data_schedule = dg.ScheduleDefinition(
        name="reference_data_schedule", job=reference_data_job, cron_schedule=settings.reference_cron,
        execution_timezone="Asia/Shanghai", default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Trading calendars and the stock list, every morning.",
    )
    return market_after_close_schedule, reference_data_schedule


def __getattr__(name: str):
    # The schedules as attributes, for tests and tools that import them.
    if name in ("market_after_close_schedule", "reference_data_schedule"):
        return dict(zip(("market_after_close_schedule", "reference_data_schedule"), build_schedules(),
                        strict=True))[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
