"""The local server's market: real fixtures where we have them, a synthetic market elsewhere.

Real: the daily bars of 10 large caps for 2020..2024 and two whole-market adj_factor
snapshots. Synthetic: every other (stock, day) of the universe (``universe.py``: the
calendar and the stock list, with delisted, paused and, on request, extra stocks).

The synthetic prices are closed-form functions of (stock, trading-day index), so any day
of any stock costs the same few microseconds and nothing has to be generated in order:

    adjusted price  P(s, i) = exp(level + two slow waves + drift + daily noise)
    adj_factor      F(s, i) = F0 * ratio ** (ex-dates of s up to i)   (one ex-date a year)
    raw close       C(s, i) = P(s, i) * F0 / F(s, i)                  (drops on ex-dates)
    pre_close       round(C(s, prev) * F(s, prev) / F(s, i), 2)       (= previous close,
                                                                        ex-right on ex-dates)

which is exactly how Tushare's own data behaves (000001.SZ on 2020-05-28: pre_close
12.78 after a 13.00 close, adj_factor 109.169 -> 111.048). Suspensions come in blocks of
five trading days and never back to back, so "the previous traded day" is closed-form too,
and the price path pauses meanwhile. ST episodes: ``names.py``; limits: ``limits.py``;
limit-up/down days, suspensions, dividends: ``events.py``. Stocks that ever carry ST move
calmly enough for the 5% band.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import events
from .hashing import stable_seed, uniform
from .limits import PriceLimits, board_of
from .names import StEpisodes, calm_warned_stocks
from .universe import build_universe, load_calendar, stock_basic, trade_cal

DATA_DIR = Path(__file__).parent / "data"

DAILY_COLUMNS = ["ts_code", "trade_date", "open", "high", "low", "close", "pre_close", "change", "pct_chg",
                 "vol", "amount"]
ADJ_COLUMNS = ["ts_code", "trade_date", "adj_factor"]
DAILY_BASIC_COLUMNS = ["ts_code", "trade_date", "close", "turnover_rate", "turnover_rate_f", "volume_ratio",
                       "pe", "pe_ttm", "pb", "ps", "ps_ttm", "dv_ratio", "dv_ttm", "total_share", "float_share",
                       "free_share", "total_mv", "circ_mv", "limit_status"]

SUSPENSION_BLOCK = 5          # trading days per suspension block
SUSPENDED_SHARE = 0.012       # of even-numbered blocks


@dataclass(frozen=True)
class RealBars:
    """The real daily bars of one fixture stock, ascending, with adj factors derived from them."""

    first: int  # trading-day index of the first real row
    frame: pd.DataFrame  # DAILY_COLUMNS + adj_factor, ascending, one row per trading day


class Market:
    """The calendar, the stock list and the bars of the three market APIs, as of ``as_of``."""

    def __init__(self, data_dir: Path = DATA_DIR, extra_stocks: int = 0, as_of: str | None = None):
        self.data_dir = data_dir
        self.calendar = load_calendar()
        self.open_days = self.calendar.loc[self.calendar.is_open == 1, "cal_date"].to_numpy(dtype=str)
        self._day_index = {d: i for i, d in enumerate(self.open_days)}
        self.as_of = as_of or self.open_days[-1]
        self.stocks = build_universe(self.open_days, extra_stocks)
        self.block = SUSPENSION_BLOCK
        self._prepare_parameters()
        self._load_real_bars()
        self.pauses = events.Pauses(self)
        self._stitch_real_bars()
        self.limits = PriceLimits(self)
        self.dividends = events.Dividends(self)

    # --- calendar ---------------------------------------------------------------------

    def day_index(self, trade_date: str) -> int | None:
        return self._day_index.get(trade_date)

    def open_days_between(self, start: str, end: str) -> np.ndarray:
        lo = np.searchsorted(self.open_days, start, side="left")
        hi = np.searchsorted(self.open_days, min(end, self.as_of), side="right")
        return np.arange(lo, hi)

    def trade_cal(self, params: dict) -> pd.DataFrame:
        return trade_cal(self.calendar, params)

    # --- stock list -------------------------------------------------------------------

    def stock_basic(self, params: dict) -> pd.DataFrame:
        """The stock list as it stood on ``as_of``: later listings absent, later delistings still L."""
        return stock_basic(self.stocks, self.as_of, params)

    # --- per-stock parameters -----------------------------------------------------------

    def _prepare_parameters(self) -> None:
        s = self.stocks
        n = len(s)
        seeds = np.array([stable_seed(c) for c in s.ts_code], dtype=np.uint64)
        self.seed = seeds
        # Index 0, not the row position: a stock's parameters must not change when
        # extra stocks shift the rows.
        zero = np.zeros(n, dtype=np.uint64)

        def u(salt: int) -> np.ndarray:
            return uniform(seeds, zero, salt)

        days = len(self.open_days)
        self.list_idx = np.searchsorted(self.open_days, s.list_date.to_numpy(dtype=str), side="left")
        stop = np.full(n, days + 10_000)
        ended = s.stop_date.notna().to_numpy()
        stop[ended] = np.searchsorted(self.open_days, s.stop_date[ended].to_numpy(dtype=str), side="left")
        self.stop_idx = stop

        self.level = np.log(3 + 60 * u(1) ** 2)
        self.amp1, self.amp2 = 0.15 + 0.45 * u(2), 0.05 + 0.2 * u(3)
        self.period1, self.period2 = 300 + 900 * u(4), 60 + 180 * u(5)
        self.phase1, self.phase2 = 2 * np.pi * u(6), 2 * np.pi * u(7)
        self.drift = (-0.05 + 0.13 * u(8)) / 243
        self.ex_ratio = 1.005 + 0.04 * u(9)
        self.ex_offset = (40 + 160 * u(10)).astype(int)
        self.total_share = np.round(10 ** (4 + 2.5 * u(11)), 4)  # 万股
        self.float_share = np.round(self.total_share * (0.3 + 0.7 * u(12)), 4)
        self.free_share = np.round(self.float_share * (0.5 + 0.45 * u(13)), 4)
        self.eps = -0.3 + 2.5 * u(14)
        self.bps = 1 + 12 * u(15)
        self.sps = 0.5 + 15 * u(16)
        self.dps = np.where(u(17) < 0.3, 0.0, 0.05 + 0.8 * u(18))
        fixtures = {p.stem for p in (self.data_dir / "daily").glob("*.csv")}
        self.st = StEpisodes(s, self.open_days, self.list_idx, stop, seeds, board_of(s.ts_code), fixtures)
        self.noise_amp = np.full(n, 0.036)
        calm_warned_stocks(self, u)

        # Years: trading-day index where each calendar year starts and ends.
        years = np.array([int(d[:4]) for d in self.open_days])
        self.first_year = years[0]
        self.year_of_day = years - years[0]
        n_years = years[-1] - years[0] + 1
        self.year_start = np.searchsorted(years, np.arange(n_years) + years[0], side="left")
        self.year_end = np.searchsorted(years, np.arange(n_years) + years[0], side="right") - 1

        # Anchor the factors of stocks in the real adj_factor snapshots: the factor on
        # 20200106 is the real one, and 2020's ex-date carries the real step to 20200529.
        self.ex2020_ratio = self.ex_ratio.copy()
        self.ex2020_day = np.minimum(self.year_start[2020 - self.first_year] + self.ex_offset,
                                     self.year_end[2020 - self.first_year])
        self.factor0 = np.ones(n)
        snap = pd.read_csv(self.data_dir / "adj_factor_snapshots.csv", dtype={"trade_date": str})
        first, second = (snap[snap.trade_date == d].set_index("ts_code").adj_factor for d in ("20200106", "20200529"))
        both = first.index.intersection(second.index)
        pos = pd.Index(s.ts_code).get_indexer(both)
        keep = pos >= 0
        pos, both = pos[keep], both[keep]
        i1, i2 = self._day_index["20200106"], self._day_index["20200529"]
        self.ex2020_ratio[pos] = (second[both] / first[both]).to_numpy()
        self.ex2020_day[pos] = i1 + 1 + (self.ex_offset[pos] % (i2 - i1))
        base = self._raw_factor(pos, np.full(len(pos), i1))
        self.factor0[pos] = first[both].to_numpy() / base
        # Prices scale per stock (1 except at the seams of the real fixture stocks).
        self.price_scale_before = np.ones(n)
        self.price_scale_after = np.ones(n)
        self.factor_scale_before = np.ones(n)
        self.factor_scale_after = np.ones(n)

    def _ex_count(self, S: np.ndarray, I: np.ndarray) -> np.ndarray:
        """Ex-dates of stock S on or before day I (any year, counted from index 0)."""
        y = self.year_of_day[I]
        ex_this_year = np.minimum(self.year_start[y] + self.ex_offset[S], self.year_end[y])
        y2020 = 2020 - self.first_year
        ex_this_year = np.where(y == y2020, self.ex2020_day[S], ex_this_year)
        return y + (ex_this_year <= I)

    def _raw_factor(self, S: np.ndarray, I: np.ndarray) -> np.ndarray:
        """adj_factor before anchoring: ratio ** (ex-dates after listing up to I)."""
        listed = self.list_idx[S]
        n_ex = np.maximum(self._ex_count(S, I) - self._ex_count(S, np.minimum(listed, len(self.open_days) - 1)), 0)
        y2020 = 2020 - self.first_year
        in2020 = (self.ex2020_day[S] <= I) & (self.ex2020_day[S] > listed) & (self.year_of_day[I] >= y2020)
        log_f = (n_ex - in2020) * np.log(self.ex_ratio[S]) + in2020 * np.log(self.ex2020_ratio[S])
        return np.exp(log_f)

    # --- synthetic values -----------------------------------------------------------------

    def is_st(self, S: np.ndarray, I: np.ndarray) -> np.ndarray:
        """True where stock S carries ST or *ST on day I."""
        return self.st.is_st(S, I)

    def _adjusted_price(self, S: np.ndarray, I: np.ndarray) -> np.ndarray:
        t = (I - self.pauses.paused_before(S, I)).astype(np.float64)
        noise = self.noise_amp[S] * (uniform(self.seed[S], I, 21) - 0.5)
        return np.exp(self.level[S] + self.amp1[S] * np.sin(2 * np.pi * t / self.period1[S] + self.phase1[S])
                      + self.amp2[S] * np.sin(2 * np.pi * t / self.period2[S] + self.phase2[S])
                      + self.drift[S] * t + noise)

    def suspended(self, S: np.ndarray, I: np.ndarray) -> np.ndarray:
        block = I // SUSPENSION_BLOCK
        return (block % 2 == 0) & (uniform(self.seed[S], block, 31) < SUSPENDED_SHARE)

    def suspended_live(self, S: np.ndarray, I: np.ndarray) -> np.ndarray:
        """Listed, not stopped, not a fixture day, and suspended: no bar, a suspend_d row."""
        live = (I >= self.list_idx[S]) & (I < self.stop_idx[S])
        return live & self.suspended(S, I) & ~self._is_real_day(S, I)

    def _previous_traded(self, S: np.ndarray, I: np.ndarray) -> np.ndarray:
        prev = I - 1
        skip = self.suspended(S, prev) & ~self._is_real_day(S, prev)
        return np.where(skip, (prev // SUSPENSION_BLOCK) * SUSPENSION_BLOCK - 1, prev)

    def _close_and_factor(self, S: np.ndarray, I: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        close, factor = self._base_close_and_factor(S, I)
        return events.apply_limit_events(self, S, I, close, factor), factor

    def _base_close_and_factor(self, S: np.ndarray, I: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        before = I < self.real_first[S]
        factor = self.factor0[S] * self._raw_factor(S, I)
        factor = np.round(factor * np.where(before, self.factor_scale_before[S], self.factor_scale_after[S]), 3)
        raw = self._adjusted_price(S, I) * self.factor0[S] / factor
        close = np.round(raw * np.where(before, self.price_scale_before[S], self.price_scale_after[S]), 2)
        close = np.maximum(close, 0.01)
        real = self._is_real_day(S, I)
        if real.any():
            rc, rf = self._real_values(S[real], I[real], ["close", "adj_factor"])
            close[real], factor[real] = rc, rf
        return close, factor

    @staticmethod
    def carry(prev_close: np.ndarray, prev_factor: np.ndarray, factor: np.ndarray) -> np.ndarray:
        """pre_close: the previous close, ex-right when the factor stepped in between."""
        return np.maximum(np.round(prev_close * prev_factor / factor, 2), 0.01)

    def pre_close(self, S: np.ndarray, I: np.ndarray, close=None, factor=None) -> np.ndarray:
        """daily's pre_close of (S, I), suspended days included (the last close carried)."""
        if close is None:
            close, factor = self._close_and_factor(S, I)
        prev_close, prev_factor = self._close_and_factor(S, np.maximum(self._previous_traded(S, I), 0))
        pre = self.carry(prev_close, prev_factor, factor)
        listing = np.round(close / (1.1 + 0.4 * uniform(self.seed[S], I, 41)), 2)
        pre = np.where(I <= self.list_idx[S], np.maximum(listing, 0.01), pre)
        real = self._is_real_day(S, I)
        if real.any():
            pre[real] = self._real_values(S[real], I[real], ["pre_close"])[0]
        return pre

    # --- real fixture stocks ----------------------------------------------------------------

    def _load_real_bars(self) -> None:
        n = len(self.stocks)
        self.real_first = np.full(n, 10**9)
        self.real_last = np.full(n, -1)
        self.real: dict[int, RealBars] = {}
        position = {c: i for i, c in enumerate(self.stocks.ts_code)}
        snap = pd.read_csv(self.data_dir / "adj_factor_snapshots.csv", dtype={"trade_date": str})
        for path in sorted((self.data_dir / "daily").glob("*.csv")):
            bars = pd.read_csv(path, dtype={"trade_date": str}).sort_values("trade_date").reset_index(drop=True)
            s = position[bars.ts_code.iloc[0]]
            first = self._day_index[bars.trade_date.iloc[0]]
            if list(bars.trade_date) != list(self.open_days[first:first + len(bars)]):
                raise ValueError(f"{path.name}: real bars must cover consecutive trading days")
            bars["adj_factor"] = _factors_from_bars(bars, snap[snap.ts_code == bars.ts_code.iloc[0]])
            self.real[s] = RealBars(first=first, frame=bars)
            self.real_first[s], self.real_last[s] = first, first + len(bars) - 1

    def _stitch_real_bars(self) -> None:
        # Stitch the synthetic history on both sides so prices and factors run on smoothly.
        for s, bars in self.real.items():
            S = np.array([s])
            first_row, last_row = bars.frame.iloc[0], bars.frame.iloc[-1]
            for side, day, close_target, factor_target in (
                ("before", bars.first - 1, first_row.pre_close, first_row.adj_factor),
                ("after", self.real_last[s], last_row.close, last_row.adj_factor),
            ):
                I = np.array([day])
                factor = self.factor0[S] * self._raw_factor(S, I)
                raw = self._adjusted_price(S, I) * self.factor0[S] / factor
                getattr(self, f"factor_scale_{side}")[s] = factor_target / factor[0]
                getattr(self, f"price_scale_{side}")[s] = close_target / (raw[0] * factor[0] / factor_target)

    def _is_real_day(self, S: np.ndarray, I: np.ndarray) -> np.ndarray:
        return (I >= self.real_first[S]) & (I <= self.real_last[S])

    def _real_values(self, S: np.ndarray, I: np.ndarray, columns: list[str]) -> list[np.ndarray]:
        out = [np.empty(len(S)) for _ in columns]
        for s in np.unique(S):
            mask = S == s
            bars = self.real[int(s)]
            rows = bars.frame.iloc[I[mask] - bars.first]
            for k, col in enumerate(columns):
                out[k][mask] = rows[col].to_numpy(dtype=float)
        return out

    # --- the three market APIs ------------------------------------------------------------

    def _pairs(self, params: dict, include_suspended: bool) -> tuple[np.ndarray, np.ndarray]:
        """(stock, day) index pairs a market query covers, newest day first, ts_code ascending."""
        if params.get("trade_date"):
            day = self.day_index(str(params["trade_date"]))
            days = np.array([day]) if day is not None and self.open_days[day] <= self.as_of else np.array([], int)
        else:
            days = self.open_days_between(str(params.get("start_date") or "19000101"),
                                          str(params.get("end_date") or "99991231"))[::-1]
        if params.get("ts_code"):
            codes = str(params["ts_code"]).split(",")
            stocks = np.sort(pd.Index(self.stocks.ts_code).get_indexer(codes))
            stocks = stocks[stocks >= 0]
        else:
            stocks = np.arange(len(self.stocks))
        S = np.tile(stocks, len(days))
        I = np.repeat(days, len(stocks))
        live = (I >= self.list_idx[S]) & (I < self.stop_idx[S])
        if not include_suspended:
            live &= ~self.suspended(S, I) | self._is_real_day(S, I)
        return S[live], I[live]

    def daily(self, params: dict) -> pd.DataFrame:
        S, I = self._pairs(params, include_suspended=False)
        close, factor = self._close_and_factor(S, I)
        pre_close = self.pre_close(S, I, close, factor)
        # Every price of the day inside the day's limits (where it has any).
        up, down = self.limits.limits(S, I, pre_close)
        up, down = np.where(np.isnan(up), np.inf, up), np.where(np.isnan(down), 0.0, down)
        open_ = np.clip(np.round(pre_close * np.exp(0.02 * (uniform(self.seed[S], I, 42) - 0.5)), 2), down, up)
        high = np.minimum(np.maximum(np.round(np.maximum(open_, close) * (1 + 0.02 * uniform(self.seed[S], I, 43)),
                                              2), np.maximum(open_, close)), up)
        low = np.maximum(np.minimum(np.round(np.minimum(open_, close) * (1 - 0.02 * uniform(self.seed[S], I, 44)),
                                             2), np.minimum(open_, close)), down)
        turnover = 0.3 + 4.0 * uniform(self.seed[S], I, 45) ** 2  # percent of float shares
        vol = np.round(self.float_share[S] * turnover, 2)  # 手 = 100 shares; float_share is in 万股
        amount = np.round(vol * (open_ + high + low + close) / 4 / 10, 3)  # 千元
        frame = pd.DataFrame({
            "ts_code": self.stocks.ts_code.to_numpy()[S], "trade_date": self.open_days[I], "open": open_,
            "high": high, "low": low, "close": close, "pre_close": pre_close,
            "change": np.round(close - pre_close, 2), "pct_chg": np.round((close / pre_close - 1) * 100, 4),
            "vol": vol, "amount": amount,
        })
        real = self._is_real_day(S, I)
        if real.any():
            values = self._real_values(S[real], I[real], DAILY_COLUMNS[2:])
            for col, vals in zip(DAILY_COLUMNS[2:], values, strict=True):
                frame.loc[real, col] = vals
        return frame

    def adj_factor(self, params: dict) -> pd.DataFrame:
        # Tushare publishes factors for every listed stock, suspended ones included.
        S, I = self._pairs(params, include_suspended=True)
        _, factor = self._close_and_factor(S, I)
        return pd.DataFrame({"ts_code": self.stocks.ts_code.to_numpy()[S], "trade_date": self.open_days[I],
                             "adj_factor": factor})

    def daily_basic(self, params: dict) -> pd.DataFrame:
        bars = self.daily(params)
        S = pd.Index(self.stocks.ts_code).get_indexer(bars.ts_code)
        I = np.array([self._day_index[d] for d in bars.trade_date], dtype=int)
        close = bars.close.to_numpy()
        turnover = np.round(bars.vol.to_numpy() / self.float_share[S], 4)
        eps, bps, sps, dps = self.eps[S], self.bps[S], self.sps[S], self.dps[S]
        ttm_drift = 1 + 0.1 * (uniform(self.seed[S], I // 60, 51) - 0.5)
        return pd.DataFrame({
            "ts_code": bars.ts_code, "trade_date": bars.trade_date, "close": close,
            "turnover_rate": turnover,
            "turnover_rate_f": np.round(bars.vol.to_numpy() / self.free_share[S], 4),
            "volume_ratio": np.round(0.4 + 2 * uniform(self.seed[S], I, 52), 2),
            "pe": np.where(eps > 0, np.round(close / np.where(eps > 0, eps, 1), 4), np.nan),
            "pe_ttm": np.where(eps > 0, np.round(close / np.where(eps > 0, eps * ttm_drift, 1), 4), np.nan),
            "pb": np.round(close / bps, 4), "ps": np.round(close / sps, 4),
            "ps_ttm": np.round(close / (sps * ttm_drift), 4),
            "dv_ratio": np.where(dps > 0, np.round(dps / close * 100, 4), np.nan),
            "dv_ttm": np.where(dps > 0, np.round(dps * ttm_drift / close * 100, 4), np.nan),
            "total_share": self.total_share[S], "float_share": self.float_share[S],
            "free_share": self.free_share[S],
            "total_mv": np.round(close * self.total_share[S], 4),
            "circ_mv": np.round(close * self.float_share[S], 4),
            "limit_status": None,
        })


def _factors_from_bars(bars: pd.DataFrame, snapshot: pd.DataFrame) -> np.ndarray:
    """Adj factors implied by real bars: each ex-date scales by prev close / pre_close.

    Anchored at the real snapshot value on the earliest snapshot date inside the bars.
    """
    steps = np.ones(len(bars))
    prev_close = bars.close.shift(1).to_numpy()
    pre_close = bars.pre_close.to_numpy()
    moved = ~np.isclose(prev_close, pre_close, atol=0.005) & ~np.isnan(prev_close)
    steps[moved] = prev_close[moved] / pre_close[moved]
    relative = np.cumprod(steps)
    anchor_rows = snapshot[snapshot.trade_date.isin(bars.trade_date)].sort_values("trade_date")
    if anchor_rows.empty:
        return np.round(relative, 3)
    row = bars.index[bars.trade_date == anchor_rows.trade_date.iloc[0]][0]
    return np.round(relative / relative[row] * anchor_rows.adj_factor.iloc[0], 3)
