"""The SSE trading calendar the partitions are built from.

The package ships Tushare's SSE calendar (1990-12-19..2026-12-31). The ``trade_cal``
asset lands Tushare's current calendar in the warehouse, and every load of the code
location merges it over the shipped one, so the partitions grow as soon as Tushare
publishes the next year's holidays (it does each December) and the code is reloaded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

import pandas as pd
from sqlalchemy import inspect

from ..reference_data import SSE_CALENDAR
from .dates import to_date
from .redact import first_line, redact_url
from .warehouse import Warehouse

SHIPPED_CALENDAR = SSE_CALENDAR

log = logging.getLogger(__name__)
_warned: set[str] = set()


@dataclass(frozen=True)
class TradingCalendar:
    open_days: tuple[date, ...]
    closed_weekdays: tuple[date, ...]
    last_known_day: date  # the calendar says nothing after this day

    @property
    def first_day(self) -> date:
        return self.open_days[0]


def load_calendar(warehouse_url: str | None) -> TradingCalendar:
    days = _shipped()
    if warehouse_url:
        days.update(_from_warehouse(warehouse_url, max(days)))
    frame = pd.Series(days).sort_index()
    open_days = tuple(d for d, is_open in frame.items() if is_open)
    closed_weekdays = tuple(d for d, is_open in frame.items() if not is_open and d.weekday() < 5)
    return TradingCalendar(open_days, closed_weekdays, frame.index[-1])


def _shipped() -> dict[date, bool]:
    cal = pd.read_csv(SHIPPED_CALENDAR, dtype={"cal_date": str})
    return {to_date(d): bool(o) for d, o in zip(cal.cal_date, cal.is_open, strict=True)}


def _from_warehouse(url: str, shipped_through: date) -> dict[date, bool]:
    """The SSE rows the trade_cal asset landed; nothing (with a warning) if unreachable."""
    try:
        warehouse = Warehouse(url)
        if not inspect(warehouse.engine).has_table("trade_cal"):
            return {}
        frame = warehouse.read("trade_cal", {"exchange": ["SSE"]})
        warehouse.engine.dispose()
    except Exception as exc:  # the shipped calendar still gives correct partitions up to its end
        warn_unreachable(url, exc, shipped_through)
        return {}
    return {d: bool(o) for d, o in zip(frame.cal_date, frame.is_open, strict=True)}


def shipped_through() -> date:
    return max(_shipped())


def warn_unreachable(url: str, exc: BaseException, through: date | None = None) -> None:
    """One line per load, whichever reader met the unreachable warehouse first (the stock
    list falls back the same way), with the password masked however malformed the URL."""
    if url in _warned:
        return
    _warned.add(url)
    log.warning("The warehouse %s is unreachable (%s): the code location uses the shipped trading calendar "
                "(through %s) and stock list until it is reachable and the code location is reloaded",
                redact_url(url), first_line(exc, url), through or shipped_through())
