"""Days in the three spellings the code location meets, and the one place that converts them.

- ``date``: what the code computes with.
- ISO text, ``2024-01-02``: trading-day partition keys, run tags, the warehouse's text days.
- Compact text, ``20240102``: Tushare's wire format (``trade_date``, ``start_date``, ``period``)
  and the report-period partition keys.

Every function takes any of the three (and ``datetime``/``pd.Timestamp``, which are dates),
so a caller never needs to know which spelling it holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime

import pandas as pd

ISO_FORMAT = "%Y-%m-%d"
COMPACT_FORMAT = "%Y%m%d"


def to_date(value: date | str) -> date:
    """A day from a ``date``, ``YYYY-MM-DD`` or ``YYYYMMDD``; a ``ValueError`` naming the
    value for anything else."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    try:
        if len(text) == 8 and text.isdigit():
            return date(int(text[:4]), int(text[4:6]), int(text[6:]))
        if len(text) >= 10 and text[4] == "-":
            return date.fromisoformat(text[:10])
    except ValueError:
        pass
    raise ValueError(f"not a day (YYYY-MM-DD or YYYYMMDD): {value!r}")


def iso(value: date | str) -> str:
    """``YYYY-MM-DD``."""
    return to_date(value).isoformat()


def compact(value: date | str) -> str:
    """``YYYYMMDD``, as Tushare's parameters and columns write days."""
    return to_date(value).strftime(COMPACT_FORMAT)


def iso_or_none(value) -> str | None:
    """``YYYY-MM-DD``, or None for a missing value (None, NaN, NA, NaT)."""
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and pd.isna(value)):
        return None
    return iso(value)


def span(days: Sequence[date | str]) -> tuple[date, date]:
    """The first and last of days given in order, as dates."""
    return to_date(days[0]), to_date(days[-1])


def to_dates(values: Iterable[date | str]) -> list[date]:
    return [to_date(v) for v in values]


def compact_to_iso(values: pd.Series) -> pd.Series:
    """A column of Tushare days (``YYYYMMDD``) as ISO text; each distinct day is converted
    once, as a reply holds a few days over many rows."""
    text = values.astype(str)
    return text.map({d: iso(d) for d in text.unique()})
