"""Report periods (quarter ends, Tushare's ``period``/``end_date``) and their filing deadlines.

Chinese listed companies must publish Q1 and annual reports by April 30, half-year reports
by August 31 and Q3 reports by October 31.
"""

from __future__ import annotations

from datetime import date, timedelta

from zquant_orchestration.lib.dates import compact, to_date

QUARTER_ENDS = ((3, 31), (6, 30), (9, 30), (12, 31))


def parse_period(text: str) -> date:
    """'20240930' (or '2024-09-30') -> date, which must be a quarter end."""
    try:
        day = to_date(text)
    except ValueError:
        raise ValueError(f"report period must be YYYYMMDD, got {text!r}") from None
    if (day.month, day.day) not in QUARTER_ENDS:
        raise ValueError(f"report period must be a quarter end (0331, 0630, 0930, 1231), got {text!r}")
    return day


def period_key(day: date) -> str:
    return compact(day)


def quarter_end_on_or_after(day: date) -> date:
    for month, dom in QUARTER_ENDS:
        end = date(day.year, month, dom)
        if end >= day:
            return end
    raise AssertionError("unreachable: Dec 31 is a quarter end")


def quarter_end_before(day: date) -> date:
    """The last quarter end strictly before ``day``."""
    for month, dom in reversed(QUARTER_ENDS):
        end = date(day.year, month, dom)
        if end < day:
            return end
    return date(day.year - 1, 12, 31)


def shift_periods(period: date, quarters: int) -> date:
    """The quarter end ``quarters`` quarters later (negative: earlier)."""
    index = period.year * 4 + [m for m, _ in QUARTER_ENDS].index(period.month) + quarters
    month, dom = QUARTER_ENDS[index % 4]
    return date(index // 4, month, dom)


def deadline(period: date) -> date:
    """The last day a report of ``period`` may be published."""
    if period.month == 3:
        return date(period.year, 4, 30)
    if period.month == 6:
        return date(period.year, 8, 31)
    if period.month == 9:
        return date(period.year, 10, 31)
    return date(period.year + 1, 4, 30)


def open_periods(today: date, grace_days: int = 60) -> list[date]:
    """Periods that have ended and whose deadline (plus ``grace_days`` for late filers) has not passed."""
    periods, period = [], quarter_end_before(today)
    while deadline(period) + timedelta(days=grace_days) >= today:
        periods.append(period)
        period = shift_periods(period, -1)
    return sorted(periods)
