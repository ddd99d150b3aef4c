"""Adjusted prices, as Tushare's ``pro_bar`` defines them.

``pro_bar(adj='hfq')`` (backward): each of open, high, low, close and pre_close times that
day's ``adj_factor``. ``pro_bar(adj='qfq')`` (forward): times that day's factor divided by the
LATEST factor of the queried range, so every new factor (a dividend, a split) changes all of
a stock's earlier forward-adjusted prices. Both round to 2 decimals (``'%.2f' % x``) and then
recompute ``change = close - pre_close`` and ``pct_chg = change / pre_close * 100`` (2 decimals);
``vol`` and ``amount`` stay unadjusted.

How we live with forward adjustment rewriting history: we store only backward-adjusted
bars (a day's hfq never changes once its factor is known) and derive forward-adjusted ones
when they are read (the ``daily_qfq`` view, or ``forward_adjusted(..., as_of)`` for a
point-in-time series), so a new factor rewrites nothing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PRICE_COLUMNS = ["open", "high", "low", "close", "pre_close"]


def round2(values: pd.Series) -> pd.Series:
    """Tushare's ``'%.2f' % x``: correctly rounded decimal text, unlike ``np.round``'s
    multiply-round-divide, which can land on the other side of a tie."""
    numbers = values.to_numpy(dtype=float)
    out = np.full(len(numbers), np.nan)
    finite = np.isfinite(numbers)
    out[finite] = np.char.mod("%.2f", numbers[finite]).astype(float)
    return pd.Series(out, index=values.index)


def _adjusted(bars: pd.DataFrame, scale: pd.Series) -> pd.DataFrame:
    out = bars.copy()
    for column in PRICE_COLUMNS:
        out[column] = round2(bars[column] * scale)
    out["change"] = out["close"] - out["pre_close"]
    out["pct_chg"] = round2(out["change"] / out["pre_close"] * 100)
    return out


def backward_adjusted(bars_with_factor: pd.DataFrame) -> pd.DataFrame:
    """hfq bars from ``daily_bars`` rows that carry their day's ``adj_factor``."""
    return _adjusted(bars_with_factor, bars_with_factor["adj_factor"])


def forward_adjusted(bars_with_factor: pd.DataFrame, latest_factor: pd.Series) -> pd.DataFrame:
    """qfq bars: ``latest_factor`` maps ts_code to the factor the series is anchored at
    (``pro_bar``: the factor on the last day of the query)."""
    anchor = bars_with_factor["ts_code"].map(latest_factor)
    return _adjusted(bars_with_factor, bars_with_factor["adj_factor"] / anchor)
