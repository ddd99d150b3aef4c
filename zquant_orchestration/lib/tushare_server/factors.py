"""``stk_factor_pro`` (doc 328): one row per stock-day of ``daily``, with its technical factors.

- Bars (open, high, low, close, pre_close, change, pct_chg, vol, amount) are ``daily``'s;
  turnover, valuation, shares and market values are ``daily_basic``'s; ``adj_factor`` is
  the day's factor.
- ``*_hfq`` = price x adj_factor; ``*_qfq`` = price x adj_factor / the stock's latest factor
  as of the server's "today" (its last listed day if it stopped earlier). Tushare's pro_bar
  page (doc 146) sends users wanting static adjusted prices over HTTP here, and its qfq is
  "当日收盘价 x 当日复权因子 / 最新复权因子": so a past row's qfq values change when a
  later ex-date is published, as they do at Tushare.
- Indicators, over the stock's traded bars (suspended days skipped), each of bfq (raw
  closes), hfq and qfq: ``ma_*_{5,10,20,30,60,90,250}``; ``bbi`` (mean of MA 3/6/12/20);
  ``bias1/2/3`` (close vs MA 6/12/24, %); ``boll_mid/upper/lower`` (MA 20 +- 2 population
  standard deviations); ``mtm`` (close - close 12 bars back) and ``mtmma`` (its MA 6);
  ``roc`` (12-bar change, %) and ``maroc`` (its MA 6); ``psy`` (up bars of the last 12, %)
  and ``psyma`` (its MA 6); ``updays``/``downdays`` (the current run of rising/falling
  closes, on hfq). An indicator whose bars reach back more than ``WINDOW`` trading days
  (a long suspension) or before listing is NULL.
- NULL (they need the whole history of a recursion, or highs and lows over a window):
  asi, asit, atr, brar_ar, brar_br, cci, cr, dfma_dif, dfma_difma, dmi_*, dpo, madpo, ema_*,
  emv, maemv, expma_12, expma_50, kdj, kdj_d, kdj_k, ktn_*, lowdays, topdays, macd,
  macd_dea, macd_dif, mass, ma_mass, mfi, obv, rsi_*, taq_*, trix, trma, vr, wr, wr1,
  xsii_td1..td4.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..tushare.catalog import api_fields

WINDOW = 300  # trading days of history an indicator may use
MA_DAYS = (5, 10, 20, 30, 60, 90, 250)
BAR_COLUMNS = ("open", "high", "low", "close", "pre_close", "change", "pct_chg", "vol", "amount")
BASIC_COLUMNS = ("turnover_rate", "turnover_rate_f", "volume_ratio", "pe", "pe_ttm", "pb", "ps", "ps_ttm", "dv_ratio",
                 "dv_ttm", "total_share", "float_share", "free_share", "total_mv", "circ_mv")
ROUND = 4


def stk_factor_pro(market, params: dict) -> pd.DataFrame:
    bars = market.daily(params)
    basic = market.daily_basic(params)
    columns = api_fields("stk_factor_pro")
    out = pd.DataFrame(np.nan, index=bars.index, columns=columns, dtype=float)
    out["ts_code"], out["trade_date"] = bars.ts_code, bars.trade_date
    if bars.empty:
        return out
    S = pd.Index(market.stocks.ts_code).get_indexer(bars.ts_code)
    D = np.searchsorted(market.open_days, bars.trade_date.to_numpy(dtype=str))
    _, factor = market._close_and_factor(S, D)
    as_of = int(np.searchsorted(market.open_days, market.as_of, side="right")) - 1
    _, latest = market._close_and_factor(S, np.minimum(as_of, market.stop_idx[S] - 1))
    for col in BAR_COLUMNS:
        out[col] = bars[col].to_numpy()
    for col in BASIC_COLUMNS:
        out[col] = basic[col].to_numpy()
    out["adj_factor"] = factor
    for col in ("open", "high", "low", "close"):
        out[f"{col}_hfq"] = np.round(bars[col].to_numpy() * factor, ROUND)
        out[f"{col}_qfq"] = np.round(bars[col].to_numpy() * factor / latest, ROUND)

    window = Window(market, S, D)
    for suffix, series, scale in (("bfq", window.close, 1.0), ("hfq", window.close * window.factor, 1.0),
                                  ("qfq", window.close * window.factor, latest)):
        for name, values in _indicators(window, series).items():
            column = f"ma_{suffix}_{name[3:]}" if name.startswith("ma_") else f"{name}_{suffix}"
            is_price = name.startswith(("ma_", "bbi", "boll", "mtm"))
            out[column] = np.round(values / scale if is_price else values, ROUND)
    hfq = window.close * window.factor
    out["updays"], out["downdays"] = window.run(hfq, rising=True), window.run(hfq, rising=False)
    return out


class Window:
    """The traded bars of each queried stock over [its earliest queried day - WINDOW, its
    latest], as flat arrays ordered by (stock, day), and where each queried row sits in them."""

    def __init__(self, market, S: np.ndarray, D: np.ndarray):
        stocks, row_stock = np.unique(S, return_inverse=True)
        lo = np.full(len(stocks), np.iinfo(np.int64).max)
        hi = np.full(len(stocks), -1)
        np.minimum.at(lo, row_stock, D)
        np.maximum.at(hi, row_stock, D)
        lo = np.maximum(lo - WINDOW, market.list_idx[stocks])
        lengths = hi - lo + 1
        seg = np.repeat(np.arange(len(stocks)), lengths)
        days = lo[seg] + np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        fS = stocks[seg]
        traded = (days < market.stop_idx[fS]) & (~market.suspended(fS, days) | market._is_real_day(fS, days))
        self.seg, self.day, fS = seg[traded], days[traded], fS[traded]
        self.close, self.factor = market._close_and_factor(fS, self.day)
        key = self.seg * (1 << 32) + self.day
        self.pos = np.searchsorted(key, row_stock * (1 << 32) + D)       # each row's own bar
        first = np.searchsorted(self.seg, np.arange(len(stocks)))        # each stock's first bar
        self.avail = self.pos - first[row_stock] + 1                      # bars up to and with the row's
        self.row_day = D
        self.seg_start = np.r_[True, self.seg[1:] != self.seg[:-1]]

    def ok(self, bars: int) -> np.ndarray:
        """Rows whose last ``bars`` bars exist and lie within WINDOW days."""
        back = np.maximum(self.pos + 1 - bars, 0)
        return (self.avail >= bars) & (self.day[back] >= self.row_day - WINDOW)

    def rolling_mean(self, series: np.ndarray, bars: int, lag: int = 0) -> np.ndarray:
        """Mean of ``series`` over the ``bars`` bars ending ``lag`` bars before each row."""
        # Each row's own window summed on its own, never as a difference of running sums:
        # a value must not depend on which other days a call asked for, down to the last bit.
        end = np.maximum(self.pos + 1 - lag, 0)
        index = np.maximum(end - bars, 0)[:, None] + np.arange(bars)
        inside = index < end[:, None]
        values = np.nan_to_num(series)[np.minimum(index, len(series) - 1)] if len(series) else np.zeros(index.shape)
        mean = np.where(inside, values, 0.0).sum(axis=1) / bars
        return np.where(self.ok(bars + lag), mean, np.nan)

    def lagged(self, series: np.ndarray, lag: int) -> np.ndarray:
        """The series ``lag`` bars before each bar of the flat arrays (NaN across stocks)."""
        out = np.full(len(series), np.nan)
        out[lag:] = series[:-lag]
        crosses = np.r_[np.zeros(min(lag, len(series)), bool), self.seg[lag:] != self.seg[:-lag]]
        out[crosses] = np.nan
        return out

    def run(self, series: np.ndarray, rising: bool) -> np.ndarray:
        """Length of the current run of rising (falling) bars ending at each row."""
        prev = self.lagged(series, 1)
        moved = series > prev if rising else series < prev
        index = np.arange(len(series))
        last_break = np.maximum.accumulate(np.where(moved, -1, index))
        return (index - last_break)[self.pos].astype(float)


def _indicators(w: Window, x: np.ndarray) -> dict[str, np.ndarray]:
    """Close-based indicators of the flat series ``x`` at each queried row."""
    at = w.pos
    close = x[at]
    ma = {n: w.rolling_mean(x, n) for n in sorted({*MA_DAYS, 3, 6, 12, 24})}
    out = {f"ma_{n}": ma[n] for n in MA_DAYS}
    out["bbi"] = (ma[3] + ma[6] + ma[12] + ma[20]) / 4
    for name, n in (("bias1", 6), ("bias2", 12), ("bias3", 24)):
        out[name] = (close / ma[n] - 1) * 100
    variance = np.maximum(w.rolling_mean(x * x, 20) - ma[20] ** 2, 0)
    out["boll_mid"] = ma[20]
    out["boll_upper"] = ma[20] + 2 * np.sqrt(variance)
    out["boll_lower"] = ma[20] - 2 * np.sqrt(variance)
    back = w.lagged(x, 12)
    out["mtm"] = np.where(w.ok(13), close - back[at], np.nan)
    out["mtmma"] = np.where(w.ok(18), w.rolling_mean(x, 6) - w.rolling_mean(x, 6, lag=12), np.nan)
    roc = (x / back - 1) * 100
    out["roc"] = np.where(w.ok(13), roc[at], np.nan)
    out["maroc"] = np.where(w.ok(18), w.rolling_mean(roc, 6), np.nan)
    up = (x > w.lagged(x, 1)).astype(float)
    psy = np.full(len(x), np.nan)
    cs = np.r_[0.0, np.cumsum(up)]
    psy[12:] = (cs[13:] - cs[1:-12]) / 12 * 100
    out["psy"] = np.where(w.ok(13), psy[at], np.nan)
    out["psyma"] = np.where(w.ok(18), w.rolling_mean(psy, 6), np.nan)
    return out
