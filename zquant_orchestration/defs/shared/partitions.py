"""Trading-day partitions: one per SSE open day, keys YYYY-MM-DD, Asia/Shanghai.

A weekday cron with the calendar's weekday holidays excluded gives exactly the open
days (the SSE has never opened on a weekend). Partitions end where the known calendar
ends, so no day is invented; ``end_offset=1`` makes today's partition exist on a trading
day, for the evening schedule.

The calendar is read when the definitions are built (``load_trading_days``), not at import:
importing a module opens no warehouse. ``trading_day_partitions()`` is what the definitions
were built with; sensors and schedules ask it when they run.
"""

from __future__ import annotations

import functools
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from zquant_orchestration.lib.trading_calendar import TradingCalendar, load_calendar
from zquant_orchestration.lib.warehouse import default_url
from zquant_orchestration.settings import get_settings

from .lazy import lazy_attributes

SHANGHAI = ZoneInfo("Asia/Shanghai")


def pinned_today() -> date | None:
    """``ZQUANT_TODAY`` (YYYY-MM-DD): the day the market schedule and the gap sensor take for
    today, instead of the clock's, for replays and tests; None when not set."""
    return get_settings().today


def build_trading_day_partitions(calendar: TradingCalendar) -> dg.TimeWindowPartitionsDefinition:
    midnight = lambda d: datetime(d.year, d.month, d.day, tzinfo=SHANGHAI)  # noqa: E731
    # A day's window runs to the next weekday tick (a Friday's to Monday), so the end
    # must be that tick, or the calendar's last day would be cut off when it is a Friday.
    end = calendar.last_known_day + timedelta(days=1)
    while end.weekday() >= 5:
        end += timedelta(days=1)
    return dg.TimeWindowPartitionsDefinition(
        start=midnight(calendar.first_day),
        end=midnight(end),
        fmt="%Y-%m-%d",
        cron_schedule="0 0 * * 1-5",
        timezone="Asia/Shanghai",
        end_offset=1,
        exclusions=[midnight(d) for d in calendar.closed_weekdays],
    )


@functools.cache
def trading_day_partitions() -> dg.TimeWindowPartitionsDefinition:
    """The trading-day partitions of this process: the calendar (the warehouse's, else the
    shipped one) is read at the first call and kept."""
    return build_trading_day_partitions(load_calendar(default_url()))


def load_trading_days() -> dg.TimeWindowPartitionsDefinition:
    """The calendar read again, for a new build of the definitions."""
    trading_day_partitions.cache_clear()
    return trading_day_partitions()


# ``trading_days``: the partitions as an attribute, for tests and tools that import it.
__getattr__ = lazy_attributes(__name__, {"trading_days": trading_day_partitions})
