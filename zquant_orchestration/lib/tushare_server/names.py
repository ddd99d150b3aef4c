"""Risk-warning (ST / *ST) episodes of the local server's stocks, and ``namechange``.

Closed form, like the prices: a stock's episodes are a pure function of its code, listing
and stop day. Two kinds of stock have them:

- the real stocks whose name in the shipped stock list starts with ``ST`` or ``*ST``: one
  episode that begins some 60..460 trading days before 2025 and has not ended;
- a hash-chosen ``ST_SHARE`` of the others (never a real fixture stock): one or two
  episodes of 40..400 trading days after listing, ended before the stock stops trading.

ChiNext stocks have no risk warnings before the 2020-08-24 reform, STAR and BSE stocks
none before their boards opened, and none before 1998-04-22, when ST began.

namechange has a row for the listing name from list_date (change_reason 其他, as Tushare
records listings), then per episode the warned name (``ST`` / ``*ST`` + name, reason
``ST`` / ``*ST``) and, when the episode ends, the plain name again (``撤销ST`` /
``撤销*ST``). A row's end_date is the day before the next visible row's start_date; the
current name has none. Rows that start after ``as_of`` are not visible yet. As at Tushare,
the query's start_date/end_date select on ann_date.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from zquant_orchestration.lib.dates import compact, to_date

from .hashing import uniform

NAMECHANGE_COLUMNS = ["ts_code", "name", "start_date", "end_date", "ann_date", "change_reason"]
ST_SHARE = 0.025
ST_SINCE = {0: "19980422", 1: "20200824", 2: "20190722", 3: "20211115"}  # by board (limits.py)
REAL_ST_BEFORE = "20250101"


class StEpisodes:
    """Up to two episodes per stock: ``start[k]`` (first warned day index), ``end[k]`` (first
    day index after it; beyond the calendar for an ongoing one), ``star[k]`` (*ST)."""

    def __init__(self, stocks: pd.DataFrame, open_days: np.ndarray, list_idx: np.ndarray, stop_idx: np.ndarray,
                 seeds: np.ndarray, board: np.ndarray, fixture_codes: set[str]):
        n, days = len(stocks), len(open_days)
        zero = np.zeros(n, dtype=np.uint64)

        def u(salt: int) -> np.ndarray:
            return uniform(seeds, zero, salt)

        names = stocks.name.fillna("").to_numpy(dtype=str)
        real_star = np.char.startswith(names, "*ST")
        real_st = real_star | np.char.startswith(names, "ST")
        self.plain = _strip(names)
        fixture = stocks.ts_code.isin(fixture_codes).to_numpy()
        chosen = ~real_st & ~fixture & (u(81) < ST_SHARE)
        since = np.searchsorted(open_days, np.array([ST_SINCE[b] for b in board]))
        first = np.maximum(list_idx + 120, since)
        last = np.minimum(stop_idx, days) - 1
        two = u(82) < 0.35
        length1 = (40 + 360 * u(83)).astype(int)
        length2 = (40 + 360 * u(84)).astype(int)
        gap = (60 + 300 * u(85)).astype(int)
        room = last - first - length1 - np.where(two, gap + length2, 0)
        chosen &= room > 0
        start1 = first + (np.maximum(room, 0) * u(86)).astype(int)
        end1 = start1 + length1
        start2 = end1 + gap
        end2 = start2 + length2
        # Some delisted stocks carry *ST to the end.
        to_the_end = (stocks.status_final == "D").to_numpy() & (u(87) < 0.5)
        self.start = np.full((2, n), -1)
        self.end = np.full((2, n), -1)
        self.star = np.zeros((2, n), dtype=bool)
        self.start[0] = np.where(chosen, start1, -1)
        self.end[0] = np.where(chosen, np.where(to_the_end & ~two, stop_idx, end1), -1)
        self.start[1] = np.where(chosen & two, start2, -1)
        self.end[1] = np.where(chosen & two, np.where(to_the_end, stop_idx, end2), -1)
        self.star[0] = u(88) < 0.45
        self.star[1] = u(89) < 0.6
        # The real warned stocks: one episode still running.
        ongoing = np.searchsorted(open_days, REAL_ST_BEFORE) - (60 + 400 * u(90)).astype(int)
        self.start[0] = np.where(real_st, np.maximum(ongoing, list_idx + 1), self.start[0])
        self.end[0] = np.where(real_st, days + 10_000, self.end[0])
        self.star[0] = np.where(real_st, real_star, self.star[0])
        self.has = (self.start[0] >= 0)

    def is_st(self, S: np.ndarray, D: np.ndarray) -> np.ndarray:
        """True where stock S is under a risk warning (ST or *ST) on day D."""
        warned = np.zeros(len(S), dtype=bool)
        for k in range(2):
            warned |= (D >= self.start[k][S]) & (D < self.end[k][S]) & (self.start[k][S] >= 0)
        return warned


def calm_warned_stocks(m, u) -> None:
    """Calmer price parameters for every stock that ever carries ST: its daily moves, even
    across a suspension, stay inside the 5% band (``u(salt)`` is the market's per-stock draw)."""
    calm = m.st.has
    m.noise_amp = np.where(calm, 0.014, m.noise_amp)
    m.level = np.where(calm, np.log(4 + 30 * u(1) ** 2), m.level)
    m.amp1 = np.where(calm, 0.1 + 0.3 * u(2), m.amp1)
    m.amp2 = np.where(calm, 0.02 + 0.06 * u(3), m.amp2)
    m.period1 = np.where(calm, 600 + 600 * u(4), m.period1)
    m.period2 = np.where(calm, 150 + 150 * u(5), m.period2)
    m.drift = np.where(calm, 0.05 * u(8) / 243, m.drift)
    m.ex_ratio = np.where(calm, 1.005 + 0.015 * u(9), m.ex_ratio)


def _strip(names: np.ndarray) -> np.ndarray:
    return np.array([name.removeprefix("*ST").removeprefix("ST") for name in names], dtype=object)


def namechange(market, params: dict) -> pd.DataFrame:
    """Tushare's namechange: per stock, newest name first."""
    m, st = market, market.st
    s = m.stocks
    chosen = np.arange(len(s))
    if params.get("ts_code"):
        chosen = np.flatnonzero(s.ts_code.isin(str(params["ts_code"]).split(",")).to_numpy())
    chosen = chosen[s.list_date.to_numpy(dtype=str)[chosen] <= m.as_of]
    days = m.open_days
    rows: list[tuple] = []
    for S in chosen:
        code, plain = s.ts_code.iat[S], st.plain[S]
        listed = s.list_date.iat[S]
        events = [(listed, listed, plain, "其他")]
        for k in range(2):
            start, end = st.start[k][S], st.end[k][S]
            if start < 0:
                continue
            mark = "*ST" if st.star[k][S] else "ST"
            events.append((days[start], _announced(days, start, m.seed[S], k), mark + plain, mark))
            if end < min(m.stop_idx[S], len(days)):
                events.append((days[end], _announced(days, end, m.seed[S], k + 2), plain, "撤销" + mark))
        events = [e for e in events if e[0] <= m.as_of]
        for n, (start, ann, name, reason) in enumerate(events):
            following = events[n + 1][0] if n + 1 < len(events) else None
            end_date = compact(to_date(following) - timedelta(days=1)) if following else None
            rows.append((code, name, start, end_date, ann, reason))
    frame = pd.DataFrame(rows, columns=NAMECHANGE_COLUMNS).astype(object)
    frame["end_date"] = frame.end_date.where(frame.end_date.notna(), None)
    if params.get("start_date"):
        frame = frame[frame.ann_date >= str(params["start_date"])]
    if params.get("end_date"):
        frame = frame[frame.ann_date <= str(params["end_date"])]
    order = np.lexsort((-frame.start_date.astype(int).to_numpy(), frame.ts_code.to_numpy()))
    return frame.iloc[order].reset_index(drop=True)


def _announced(days: np.ndarray, start: int, seed, salt: int) -> str:
    """The announcement: one to three trading days before the change takes effect."""
    back = 1 + int(uniform(np.array([seed]), np.array([start]), 91 + salt)[0] * 3)
    return str(days[max(start - back, 0)])
