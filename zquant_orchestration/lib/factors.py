"""A small standard set of daily factors, computed over trading days.

Every window counts SSE trading days, not a stock's own bars, so a suspension shows as a
gap (NaN) instead of silently stretching the window. Prices are backward-adjusted
(``daily_hfq``), so dividends and splits are not returns.

| factor | definition on day D |
|---|---|
| ``mom_20``, ``mom_60`` | close(D) / close(D - 20 or 60 trading days) - 1 |
| ``vol_20`` | std (ddof 1) of the 20 daily returns ending on D, times sqrt(252); needs all 20 |
| ``turnover_20`` | mean ``turnover_rate`` over the 20 trading days ending on D; needs 10 of them |
| ``ep_ttm``, ``bp``, ``sp_ttm`` | 1 / ``pe_ttm``, 1 / ``pb``, 1 / ``ps_ttm`` on D (empty pe: a loss maker) |
| ``dv_ttm`` | dividend yield on D, in % |
| ``log_mv`` | ln(``total_mv``) on D (total_mv in 10,000 yuan) |
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LOOKBACK_DAYS = 60  # trading days before D the longest factor reads
TURNOVER_WINDOW, TURNOVER_MIN = 20, 10
FACTOR_COLUMNS = ["mom_20", "mom_60", "vol_20", "turnover_20", "ep_ttm", "bp", "sp_ttm", "dv_ttm", "log_mv"]


def _wide(frame: pd.DataFrame, column: str, days: list) -> pd.DataFrame:
    return frame.pivot(index="trade_date", columns="ts_code", values=column).reindex(days).astype(float)


def _inverse(values: pd.DataFrame) -> pd.DataFrame:
    return (1.0 / values).where(values > 0)


def compute(hfq: pd.DataFrame, basic: pd.DataFrame, days: list, targets: list) -> pd.DataFrame:
    """Factors of ``targets`` (a tail of ``days``, the trading days from the lookback on).

    ``hfq``: ts_code, trade_date, close; ``basic``: ts_code, trade_date and the daily_basic
    columns used. One row per stock with a bar on the target day.
    """
    close = _wide(hfq, "close", days)
    returns = close / close.shift(1) - 1
    per_factor = {
        "mom_20": close / close.shift(20) - 1,
        "mom_60": close / close.shift(60) - 1,
        "vol_20": returns.rolling(20, min_periods=20).std(ddof=1) * np.sqrt(252),
        "turnover_20": _wide(basic, "turnover_rate", days).rolling(TURNOVER_WINDOW, min_periods=TURNOVER_MIN).mean(),
        "ep_ttm": _inverse(_wide(basic, "pe_ttm", days)),
        "bp": _inverse(_wide(basic, "pb", days)),
        "sp_ttm": _inverse(_wide(basic, "ps_ttm", days)),
        "dv_ttm": _wide(basic, "dv_ttm", days),
        "log_mv": np.log(_wide(basic, "total_mv", days).where(lambda v: v > 0)),
    }
    stacked = {name: wide.loc[targets].stack(future_stack=True) for name, wide in per_factor.items()}
    out = pd.DataFrame(stacked)
    out.index.names = ["trade_date", "ts_code"]
    out = out.reset_index()
    traded = set(zip(hfq.trade_date, hfq.ts_code, strict=True))
    keep = [(d, c) in traded for d, c in zip(out.trade_date, out.ts_code, strict=True)]
    return out[keep][["ts_code", "trade_date", *FACTOR_COLUMNS]].reset_index(drop=True)
