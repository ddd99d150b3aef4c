"""Date arithmetic of the statements: YYYYMMDD ints, days since 1970-01-01 and quarter ends, vectorised."""

from __future__ import annotations

import numpy as np

_EPOCH = np.datetime64("1970-01-01", "D")


def ymd_to_days(ymd) -> np.ndarray:
    v = np.asarray(ymd, dtype=np.int64)
    months = (v // 10000 - 1970) * 12 + v // 100 % 100 - 1
    first = months.astype("datetime64[M]").astype("datetime64[D]")
    return (first - _EPOCH).astype(np.int64) + v % 100 - 1


def days_to_ymd(days: np.ndarray) -> np.ndarray:
    d = np.asarray(days, dtype=np.int64).astype("datetime64[D]")
    month = d.astype("datetime64[M]")
    y = month.astype(np.int64) // 12 + 1970
    m = month.astype(np.int64) % 12 + 1
    day = (d - month.astype("datetime64[D]")).astype(np.int64) + 1
    return y * 10000 + m * 100 + day


def days_to_str(days: np.ndarray) -> np.ndarray:
    return days_to_ymd(days).astype(str).astype(object)


def back_to_friday(days: np.ndarray) -> np.ndarray:
    """Announcements fall on weekdays: move Saturday/Sunday back to Friday."""
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    return days - np.maximum(weekday - 4, 0)


def quarter_end_on_or_after(ymd) -> np.ndarray:
    v = np.asarray(ymd, dtype=np.int64)
    month = (v // 100 % 100 + 2) // 3 * 3
    day = np.where((month == 3) | (month == 12), 31, 30)
    return v // 10000 * 10000 + month * 100 + day


def quarter_end_on_or_before(ymd) -> np.ndarray:
    v = np.asarray(ymd, dtype=np.int64)
    after = quarter_end_on_or_after(v)
    month = after // 100 % 100
    prev_month = np.where(month == 3, 12, month - 3)
    prev_year = np.where(month == 3, after // 10000 - 1, after // 10000)
    prev_day = np.where((prev_month == 3) | (prev_month == 12), 31, 30)
    return np.where(after == v, v, prev_year * 10000 + prev_month * 100 + prev_day)


def quarter_ends(first: int, last: int) -> np.ndarray:
    if first > last:
        return np.empty(0, dtype=np.int64)
    years = np.arange(first // 10000, last // 10000 + 1, dtype=np.int64)
    ends = (years[:, None] * 10000 + np.array([331, 630, 930, 1231])).ravel()
    return ends[(ends >= first) & (ends <= last)]


def shift_ymd(ymd: str, days: int) -> int:
    return int(days_to_ymd(ymd_to_days([int(ymd)]) + days)[0])


def quarter_of(period: np.ndarray) -> np.ndarray:
    return period // 100 % 100 // 3


def window_days(period: np.ndarray, table: np.ndarray) -> np.ndarray:
    """The day a per-quarter (years after the period's year, month, day) table gives each period."""
    t = table[quarter_of(period) - 1]
    return ymd_to_days((period // 10000 + t[:, 0]) * 10000 + t[:, 1] * 100 + t[:, 2])
