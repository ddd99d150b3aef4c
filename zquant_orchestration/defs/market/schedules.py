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

import os

import dagster as dg

from zquant_orchestration.defs.shared.partitions import SHANGHAI, pinned_today, trading_days

from .jobs import daily_market_job, reference_data_job

MARKET_CRON = os.environ.get("ZQUANT_MARKET_CRON", "30 18 * * 1-5")
REFERENCE_CRON = os.environ.get("ZQUANT_REFERENCE_CRON", "0 8 * * *")


@dg.schedule(job=daily_market_job, cron_schedule=MARKET_CRON, execution_timezone="Asia/Shanghai",
             default_status=dg.DefaultScheduleStatus.RUNNING,
             description="After the close on trading days: the day's market data (holidays skip).")
def market_after_close_schedule(context: dg.ScheduleEvaluationContext):
    day = (pinned_today() or context.scheduled_execution_time.astimezone(SHANGHAI).date()).isoformat()
    if not trading_days.has_partition_key(day):
        return dg.SkipReason(f"{day} is not an SSE trading day: nothing to fetch")
    return dg.RunRequest(run_key=day, partition_key=day, tags={"zquant/trigger": "schedule"})


reference_data_schedule = dg.ScheduleDefinition(
    name="reference_data_schedule", job=reference_data_job, cron_schedule=REFERENCE_CRON,
    execution_timezone="Asia/Shanghai", default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Trading calendars and the stock list, every morning.",
)
