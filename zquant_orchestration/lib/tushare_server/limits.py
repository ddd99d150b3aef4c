"""Daily price limits (``stk_limit``) of the local server's stocks and exchange-traded funds.

The band of a stock on a day follows the exchanges' rules (by trading day, not hard-coded):

    main board     +-10%; ST and *ST +-5% until 2026-07-05, +-10% from 2026-07-06
    ChiNext        +-10% before 2020-08-24, +-20% from then (ST included)   300/301/302 .SZ
    STAR           +-20% (ST included)                                     688/689 .SH
    BSE            +-30% (ST included)                                     .BJ
    funds (ETFs)   +-10%, tick 0.001

    up_limit   = round_half_up(pre_close * (1 + band), tick)
    down_limit = round_half_up(pre_close * (1 - band), tick)

with the one-tick floor (a limit never equals pre_close). Before 1996-12-16 A shares had
no daily limit, so there are no rows. A stock has no row on its first five trading days:
registration-system listings (STAR since 2019, ChiNext since 2020-08-24, the main board
since 2023-04-10) trade without a limit then, and the server applies that to every listing
rather than reproducing the older first-day 144%/64% price band. A suspended stock keeps
its row (the limits around its last close), as the exchanges publish them.

Tushare's stk_limit also lists exchange-traded funds, and does not return their pre_close.
The funds here are a deterministic synthetic list that exists only in this API; with them a
whole-market day holds more rows than one call may return, so a client has to page.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .hashing import stable_seed, uniform

STK_LIMIT_COLUMNS = ["trade_date", "ts_code", "pre_close", "up_limit", "down_limit"]
FREE_DAYS = 5  # trading days after listing without a limit

MAIN, CHINEXT, STAR, BSE = 0, 1, 2, 3
LIMITS_SINCE = "19961216"
CHINEXT_20_SINCE = "20200824"
MAIN_ST_10_SINCE = "20260706"

FUND_COUNT = 1200
FUND_PREFIXES = (("510", "SH"), ("512", "SH"), ("513", "SH"), ("515", "SH"), ("516", "SH"), ("588", "SH"),
                 ("561", "SH"), ("159", "SZ"), ("159", "SZ"), ("159", "SZ"))
FUND_FIRST_LISTING = "20050223"


def board_of(codes) -> np.ndarray:
    """MAIN, CHINEXT, STAR or BSE per ts_code."""
    codes = pd.Series(np.asarray(codes, dtype=str))
    board = np.full(len(codes), MAIN)
    board[codes.str.endswith(".BJ").to_numpy()] = BSE
    board[codes.str.match(r"^30[012]\d{3}\.SZ$").to_numpy()] = CHINEXT
    board[codes.str.match(r"^68[89]\d{3}\.SH$").to_numpy()] = STAR
    return board


def round_half_up(units: np.ndarray, percent: np.ndarray) -> np.ndarray:
    """units * percent / 100 rounded half up, in exact integer arithmetic (units are ticks)."""
    return (units * percent + 50) // 100


def limit_prices(pre_close: np.ndarray, percent: np.ndarray, tick_per_unit: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """(up_limit, down_limit) around ``pre_close`` for a band of ``percent`` (an integer)."""
    ticks = np.rint(np.asarray(pre_close, dtype=float) * tick_per_unit).astype(np.int64)
    percent = np.asarray(percent, dtype=np.int64)
    up = np.maximum(round_half_up(ticks, 100 + percent), ticks + 1)
    down = np.minimum(round_half_up(ticks, 100 - percent), ticks - 1)
    return up / tick_per_unit, down / tick_per_unit


class PriceLimits:
    """The band of every (stock, day) of a market, and the stk_limit API over it."""

    def __init__(self, market):
        self.market = market
        days = market.open_days
        self.board = board_of(market.stocks.ts_code)
        self.limits_from = int(np.searchsorted(days, LIMITS_SINCE))
        self.chinext_20_from = int(np.searchsorted(days, CHINEXT_20_SINCE))
        self.main_st_10_from = int(np.searchsorted(days, MAIN_ST_10_SINCE))
        self.funds = _funds(days)

    def percent(self, S: np.ndarray, D: np.ndarray) -> np.ndarray:
        """The band in percent of stock S on day D; 0 where the stock has no limit that day."""
        m = self.market
        board = self.board[S]
        st = m.is_st(S, D)
        main = np.where(st & (D < self.main_st_10_from), 5, 10)
        chinext = np.where(D >= self.chinext_20_from, 20, 10)
        band = np.select([board == BSE, board == STAR, board == CHINEXT], [30, 20, chinext], main)
        free = (D < self.limits_from) | (D < m.list_idx[S] + FREE_DAYS)
        return np.where(free, 0, band)

    def limits(self, S: np.ndarray, D: np.ndarray, pre_close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(up, down) of stock S on day D around ``pre_close``; NaN where there is no limit."""
        percent = self.percent(S, D)
        up, down = limit_prices(pre_close, percent)
        free = percent == 0
        return np.where(free, np.nan, up), np.where(free, np.nan, down)

    def stk_limit(self, params: dict) -> pd.DataFrame:
        m = self.market
        S, D = m._pairs(params, include_suspended=True)
        pre_close = m.pre_close(S, D)
        up, down = self.limits(S, D, pre_close)
        keep = ~np.isnan(up)
        stocks = pd.DataFrame({"trade_date": m.open_days[D[keep]], "ts_code": m.stocks.ts_code.to_numpy()[S[keep]],
                               "pre_close": pre_close[keep], "up_limit": up[keep], "down_limit": down[keep]})
        funds = self._fund_rows(params)
        frame = pd.concat([stocks, funds], ignore_index=True) if len(funds) else stocks
        order = np.lexsort((frame.ts_code.to_numpy(), -frame.trade_date.astype(int).to_numpy()))
        return frame.iloc[order][STK_LIMIT_COLUMNS].reset_index(drop=True)

    def _fund_rows(self, params: dict) -> pd.DataFrame:
        m, funds = self.market, self.funds
        if params.get("trade_date"):
            day = m.day_index(str(params["trade_date"]))
            days = np.array([day]) if day is not None and m.open_days[day] <= m.as_of else np.array([], int)
        else:
            days = m.open_days_between(str(params.get("start_date") or "19000101"),
                                       str(params.get("end_date") or "99991231"))
        chosen = np.arange(len(funds))
        if params.get("ts_code"):
            chosen = np.flatnonzero(funds.ts_code.isin(str(params["ts_code"]).split(",")).to_numpy())
        F = np.tile(chosen, len(days))
        D = np.repeat(days, len(chosen))
        live = D > funds.list_idx.to_numpy()[F]
        F, D = F[live], D[live]
        t = D.astype(float)
        level, amp, period, phase = (funds[c].to_numpy()[F] for c in ("level", "amp", "period", "phase"))
        noise = 0.02 * (uniform(funds.seed.to_numpy()[F], D, 71) - 0.5)
        pre = np.round(np.exp(level + amp * np.sin(2 * np.pi * t / period + phase) + noise), 3)
        up, down = limit_prices(np.maximum(pre, 0.05), np.full(len(F), 10), tick_per_unit=1000)
        return pd.DataFrame({"trade_date": m.open_days[D], "ts_code": funds.ts_code.to_numpy()[F],
                             "pre_close": None, "up_limit": up, "down_limit": down})


def _funds(open_days: np.ndarray) -> pd.DataFrame:
    """FUND_COUNT exchange-traded funds: code, listing day index and price-path parameters."""
    codes: list[str] = []
    used: set[str] = set()
    number = 0
    while len(codes) < FUND_COUNT:
        prefix, suffix = FUND_PREFIXES[stable_seed(f"fund-prefix{number}") % len(FUND_PREFIXES)]
        code = f"{prefix}{stable_seed(f'fund{number}') % 1000:03d}.{suffix}"
        number += 1
        if code not in used:
            used.add(code)
            codes.append(code)
    codes.sort()
    seeds = np.array([stable_seed(c) for c in codes], dtype=np.uint64)
    zero = np.zeros(len(codes), dtype=np.uint64)
    lo = int(np.searchsorted(open_days, FUND_FIRST_LISTING))
    hi = int(np.searchsorted(open_days, "20250101"))
    # Most funds listed in the last few years, as in the real market.
    list_idx = lo + ((hi - lo) * np.sqrt(uniform(seeds, zero, 72))).astype(int)
    return pd.DataFrame({
        "ts_code": codes, "seed": seeds, "list_idx": list_idx,
        "level": np.log(0.6 + 4 * uniform(seeds, zero, 73) ** 2), "amp": 0.1 + 0.3 * uniform(seeds, zero, 74),
        "period": 200 + 600 * uniform(seeds, zero, 75), "phase": 2 * np.pi * uniform(seeds, zero, 76),
    })
