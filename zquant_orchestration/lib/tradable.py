"""What a backtest may fill on a trading day, per stock: the rules behind ``daily_tradable``.

For each stock listed on the day (``stock_basic``: listed on or before it, not yet delisted):

- ``is_st``: a ``namechange`` row covers the day (start_date <= day <= end_date, or no
  end_date yet) with a risk-warning name: ``ST…``, ``*ST…`` and the share-reform era's
  ``SST…``/``S*ST…``. Tushare's stock_basic holds only today's name, so the history is
  namechange's.
- ``is_suspended``: ``suspend_d`` has an ``S`` (suspended) row for the stock that day.
- ``traded``: ``daily_bars`` has the stock's bar that day (a listing paused without a
  suspension record has neither).
- ``at_up_limit`` / ``at_down_limit``: the close is at (or, by rounding, past) the day's
  ``stk_limit`` up_limit / down_limit. A stock in its first days without a limit, or
  without a bar, is at neither.
- ``listed_days``: the SSE trading days from its list_date through the day, the day
  itself included (1 on the listing day).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from zquant_orchestration.lib import dates

RISK_WARNING = re.compile(r"^(S\*|\*|S)?ST")
COLUMNS = ["ts_code", "trade_date", "is_st", "is_suspended", "traded", "at_up_limit", "at_down_limit",
           "listed_days", "close", "up_limit", "down_limit"]
# Closes and limits are both rounded to the cent; anything closer is the same price.
PRICE_TOLERANCE = 1e-6


def tradable_day(day: str, open_days: list[str], stocks: pd.DataFrame, names: pd.DataFrame, bars: pd.DataFrame,
                 limits: pd.DataFrame, suspensions: pd.DataFrame) -> pd.DataFrame:
    """The rows of one trading day (ISO ``day``). ``open_days``: every SSE trading day, ISO,
    ascending; the frames as the warehouse holds them (days as dates or ISO text)."""
    listed_on = stocks.list_date.map(dates.iso_or_none)
    delisted_on = stocks.delist_date.map(dates.iso_or_none)
    live = stocks[(listed_on <= day) & (delisted_on.isna() | (delisted_on > day))]
    frame = pd.DataFrame({"ts_code": live.ts_code.to_numpy(), "trade_date": day})
    first_open = np.searchsorted(open_days, listed_on[live.index].to_numpy(dtype=str), side="left")
    frame["listed_days"] = np.searchsorted(open_days, day, side="left") - first_open + 1

    st = names[names.name.fillna("").str.match(RISK_WARNING)]
    starts, ends = st.start_date.map(dates.iso_or_none), st.end_date.map(dates.iso_or_none)
    covering = st[(starts <= day) & (ends.isna() | (ends >= day))]
    frame["is_st"] = frame.ts_code.isin(set(covering.ts_code)).astype(int)

    suspended = suspensions[suspensions.suspend_type == "S"]
    frame["is_suspended"] = frame.ts_code.isin(set(suspended.ts_code)).astype(int)

    close = frame.ts_code.map(bars.set_index("ts_code").close) if len(bars) else np.nan
    frame["close"] = pd.to_numeric(close, errors="coerce") if len(bars) else np.nan
    frame["traded"] = frame.close.notna().astype(int)
    by_code = limits.set_index("ts_code") if len(limits) else None
    frame["up_limit"] = frame.ts_code.map(by_code.up_limit) if by_code is not None else np.nan
    frame["down_limit"] = frame.ts_code.map(by_code.down_limit) if by_code is not None else np.nan
    frame["at_up_limit"] = (frame.close >= frame.up_limit - PRICE_TOLERANCE).astype(int)
    frame["at_down_limit"] = (frame.close <= frame.down_limit + PRICE_TOLERANCE).astype(int)
    return frame[COLUMNS]
