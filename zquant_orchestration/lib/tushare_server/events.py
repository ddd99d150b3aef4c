"""Suspensions (``suspend_d``), limit-up/limit-down days and dividends (``dividend``) of the
local server's market, all derived from the closed-form market of ``market.py``.

Suspensions: ``Market.suspended`` hides whole blocks of trading days. ``suspend_d`` has an
``S`` row for every day a live stock is suspended (exactly the days it has no ``daily``
bar) and an ``R`` row on the first day it trades again. The price path pauses while a
stock is suspended (``Pauses``), so the day it resumes moves like any other day.

Limit events: on a small hash-chosen share of (stock, day) pairs the close is exactly the
day's up_limit or down_limit. Only even day indexes D whose previous trading day is D-1
qualify (odd days never are events, so the previous close is always the plain one), and
only when the next trading day's plain close stays inside the limits around the event's
close, so every bar respects its limits. Never on real fixture days or next to them.

Dividends: one ``实施`` row per ex-date, where adj_factor steps, with the cash per share
the step implies (previous close minus the ex-date's pre_close), and the board's ``预案``
row announced weeks before it, without record, ex or pay dates.
"""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd

from .hashing import uniform
from .limits import limit_prices

SUSPEND_COLUMNS = ["ts_code", "trade_date", "suspend_timing", "suspend_type"]
DIVIDEND_COLUMNS = ["ts_code", "end_date", "ann_date", "div_proc", "stk_div", "stk_bo_rate", "stk_co_rate",
                    "cash_div", "cash_div_tax", "record_date", "ex_date", "pay_date", "div_listdate",
                    "imp_ann_date", "base_date", "base_share"]
DIVIDEND_FILTERS = ("ts_code", "ann_date", "end_date", "record_date", "ex_date", "imp_ann_date")
EVENT_CANDIDATES = 0.04  # of even days; about half pass the next-day check


class Pauses:
    """The suspended blocks of every stock, sorted by (stock, block), with the number of
    suspended (non-fixture) days before each: the market's clock stops on those days."""

    def __init__(self, m):
        self.block = m.block
        days = len(m.open_days)
        self.n_blocks = days // self.block + 1
        stocks = np.arange(len(m.stocks))
        found_s, found_b = [], []
        for b in range(0, self.n_blocks, 2):
            B = np.full(len(stocks), b)
            hit = m.suspended(stocks, B * self.block)
            found_s.append(stocks[hit])
            found_b.append(B[hit])
        S, B = np.concatenate(found_s), np.concatenate(found_b)
        order = np.lexsort((B, S))
        self.S, self.B = S[order], B[order]
        weight = np.zeros(len(self.S), dtype=np.int64)
        for k in range(self.block):
            d = self.B * self.block + k
            weight += (d < days) & ~m._is_real_day(self.S, d)
        self.keys = self.S.astype(np.int64) * self.n_blocks + self.B
        self.cum = np.concatenate([[0], np.cumsum(weight)])

    def paused_before(self, S: np.ndarray, D: np.ndarray) -> np.ndarray:
        """Suspended days of stock S in the blocks before day D's block."""
        base = S.astype(np.int64) * self.n_blocks
        lo = np.searchsorted(self.keys, base)
        hi = np.searchsorted(self.keys, base + D // self.block)
        return self.cum[hi] - self.cum[lo]


def suspend_d(m, params: dict) -> pd.DataFrame:
    p = m.pauses
    if params.get("trade_date"):
        day = m.day_index(str(params["trade_date"]))
        lo = hi = day if day is not None else -1
    else:
        span = m.open_days_between(str(params.get("start_date") or "19000101"),
                                   str(params.get("end_date") or "99991231"))
        lo, hi = (int(span[0]), int(span[-1])) if len(span) else (-1, -1)
    hi = min(hi, int(np.searchsorted(m.open_days, m.as_of, side="right")) - 1)
    keep = (p.B >= lo // p.block - 1) & (p.B <= hi // p.block) & (lo >= 0)
    if params.get("ts_code"):
        wanted = pd.Index(m.stocks.ts_code).get_indexer(str(params["ts_code"]).split(","))
        keep &= np.isin(p.S, wanted[wanted >= 0])
    S, B = p.S[keep], p.B[keep]
    start = B * p.block
    # S rows: every day of the block a live stock misses.
    S_days = np.repeat(S, p.block)
    D_days = (start[:, None] + np.arange(p.block)).ravel()
    off = m.suspended_live(S_days, D_days)
    # R rows: the day after a block whose last day was a suspension.
    D_back = start + p.block
    back = m.suspended_live(S, D_back - 1) & (D_back < np.minimum(m.stop_idx[S], len(m.open_days)))
    S_all = np.concatenate([S_days[off], S[back]])
    D_all = np.concatenate([D_days[off], D_back[back]])
    kind = np.concatenate([np.full(off.sum(), "S"), np.full(back.sum(), "R")])
    inside = (D_all >= lo) & (D_all <= hi)
    if params.get("suspend_type"):
        inside &= kind == str(params["suspend_type"])
    S_all, D_all, kind = S_all[inside], D_all[inside], kind[inside]
    codes = m.stocks.ts_code.to_numpy()[S_all]
    order = np.lexsort((codes, kind, -D_all))
    return pd.DataFrame({"ts_code": codes[order], "trade_date": m.open_days[D_all[order]],
                         "suspend_timing": None, "suspend_type": kind[order]}, columns=SUSPEND_COLUMNS)


def apply_limit_events(m, S: np.ndarray, D: np.ndarray, close: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """``close`` with the limit events among (S, D) set to their limit price."""
    days = len(m.open_days)
    cand = np.flatnonzero((D % 2 == 0) & (D >= 2) & (D < days - 1)
                          & (uniform(m.seed[S], D, 61) < EVENT_CANDIDATES))
    if len(cand) == 0:
        return close
    s, i = S[cand], D[cand]
    ok = ~m._is_real_day(s, i) & ~m.suspended(s, i) & ~m.suspended_live(s, i - 1) & (i < m.stop_idx[s])
    percent = m.limits.percent(s, i)
    ok &= percent > 0
    prev_close, prev_factor = m._base_close_and_factor(s, i - 1)
    pre = m.carry(prev_close, prev_factor, factor[cand])
    up, down = limit_prices(pre, percent)
    event = np.where(uniform(m.seed[s], i, 62) < 0.5, up, down)
    # The next trading day (odd: never an event itself) must stay inside the new limits.
    nxt = np.where(m.suspended_live(s, i + 1), (i + 1) // m.block * m.block + m.block, i + 1)
    has_next = (nxt < m.stop_idx[s]) & (nxt < days)
    nxt = np.minimum(nxt, days - 1)
    ok &= ~(has_next & m._is_real_day(s, nxt))
    next_close, next_factor = m._base_close_and_factor(s, nxt)
    next_up, next_down = limit_prices(m.carry(event, factor[cand], next_factor), m.limits.percent(s, nxt))
    ok &= ~has_next | ((next_close <= next_up) & (next_close >= next_down))
    out = close.copy()
    out[cand[ok]] = event[ok]
    return out


class Dividends:
    """Every dividend of the market, built on first use (it does not depend on ``as_of``)."""

    def __init__(self, m):
        self.m = m
        self._table: pd.DataFrame | None = None
        self._lock = threading.Lock()

    def query(self, params: dict) -> pd.DataFrame:
        given = {k: str(params[k]) for k in DIVIDEND_FILTERS if params.get(k)}
        if not given:
            raise ValueError("dividend 需要至少一个参数: " + ", ".join(DIVIDEND_FILTERS))
        frame = self.visible()
        for key, value in given.items():
            frame = frame[frame[key].isin(value.split(","))] if key == "ts_code" else frame[frame[key] == value]
        return frame.reset_index(drop=True)

    def visible(self) -> pd.DataFrame:
        """The rows announced by ``as_of``: a plan from its ann_date, an implementation from
        its imp_ann_date (so an ex-date a few days ahead is already there)."""
        frame = self.table()
        announced = np.where(frame.div_proc == "实施", frame.imp_ann_date, frame.ann_date)
        return frame[announced <= self.m.as_of].reset_index(drop=True)

    def table(self) -> pd.DataFrame:
        with self._lock:
            if self._table is None:
                self._table = self._build()
            return self._table

    def _ex_dates(self) -> tuple[np.ndarray, np.ndarray]:
        """(stock, ex-date) pairs: the yearly synthetic ones and the steps of real bars."""
        m = self.m
        n, days = len(m.stocks), len(m.open_days)
        years = len(m.year_start)
        S = np.repeat(np.arange(n), years)
        y = np.tile(np.arange(years), n)
        E = np.minimum(m.year_start[y] + m.ex_offset[S], m.year_end[y])
        E = np.where(y == 2020 - m.first_year, m.ex2020_day[S], E)
        ok = (E > m.list_idx[S]) & (E < np.minimum(m.stop_idx[S], days)) & ~m._is_real_day(S, E)
        real_S, real_E = [], []
        for s, bars in m.real.items():
            prev_close = bars.frame.close.shift(1).to_numpy()
            moved = ~np.isclose(prev_close, bars.frame.pre_close.to_numpy(), atol=0.005) & ~np.isnan(prev_close)
            rows = np.flatnonzero(moved)
            real_S.append(np.full(len(rows), s))
            real_E.append(bars.first + rows)
        return np.concatenate([S[ok], *real_S]).astype(int), np.concatenate([E[ok], *real_E]).astype(int)

    def _build(self) -> pd.DataFrame:
        m = self.m
        S, E = self._ex_dates()
        _, before = m._close_and_factor(S, E - 1)
        _, after = m._close_and_factor(S, E)
        steps = before != after
        order = np.lexsort((E[steps], S[steps]))
        S, E = S[steps][order], E[steps][order]
        P = m._previous_traded(S, E)
        prev_close, _ = m._close_and_factor(S, P)
        cash = np.round(prev_close - m.pre_close(S, E), 4)
        days = m.open_days
        year = m.year_of_day[E]
        imp = np.maximum(E - 3 - (3 * uniform(m.seed[S], E, 95)).astype(int), m.list_idx[S])
        ann = np.minimum(np.maximum(E - 15 - (40 * uniform(m.seed[S], E, 96)).astype(int),
                                    np.maximum(m.year_start[year], m.list_idx[S])), imp)
        # The year's first dividend pays for the last fiscal year, a second one for its first half.
        first_of_year = np.r_[True, (S[1:] != S[:-1]) | (year[1:] != year[:-1])]
        end_date = np.where(first_of_year, np.char.add((year + m.first_year - 1).astype(str), "1231"),
                            np.char.add((year + m.first_year).astype(str), "0630"))
        common = {"ts_code": m.stocks.ts_code.to_numpy()[S], "end_date": end_date, "ann_date": days[ann],
                  "stk_div": 0.0, "stk_bo_rate": None, "stk_co_rate": None, "cash_div": cash, "cash_div_tax": cash,
                  "div_listdate": None, "base_date": end_date, "base_share": m.total_share[S]}
        done = pd.DataFrame({**common, "div_proc": "实施", "record_date": days[E - 1], "ex_date": days[E],
                             "pay_date": days[E], "imp_ann_date": days[imp]})
        plan = pd.DataFrame({**common, "div_proc": "预案", "record_date": None, "ex_date": None,
                             "pay_date": None, "imp_ann_date": None})
        frame = pd.concat([done, plan], ignore_index=True)[DIVIDEND_COLUMNS]
        order = np.lexsort((frame.div_proc.to_numpy(), -frame.end_date.astype(int).to_numpy(),
                            frame.ts_code.to_numpy()))
        return frame.iloc[order].reset_index(drop=True)
