"""Synthetic, deterministic A-share financial statements for the local Tushare server.

Serves ``income``, ``balancesheet``, ``cashflow``, ``fina_indicator`` (and their ``*_vip``
whole-market variants) and ``disclosure_date`` with the full column lists of
``lib/tushare/schema_columns.json``.

Every figure is a pure function of (ts_code, report period, version, column): a
counter-based hash (splitmix64 over crc32 keys) replaces a random generator, so a
report comes out the same whether it is built alone, for one stock across all periods
or for the whole market in one period, in any process. Nothing is materialised
eagerly: rows are built on demand for the (stock, period) pairs a query needs and the
assembled frames are kept in small LRU caches.

``as_of`` only filters (a row exists once its ann_date <= as_of); it never changes a
figure, so moving it forward reveals new reports and restatements without rewriting
old ones.

The model, per stock: reports for every quarter end from its listing (or start_period)
until it delists, each announced on a weekday inside the regulatory window (Q1 and the
annual report by 04-30, H1 by 08-31, Q3 by 10-31). About 8% of reports get a correction
30..300 days later: a second row (update_flag 1, later ann_date/f_ann_date) whose profit
lines differ by 1..6%, in all four statements. Flows are year-to-date sums of quarterly
figures; the key lines of each statement obey the accounting identities and agree
across statements (eps, roe, bps, debt_to_assets, margins, net profit, cash). Other
float columns are empty for about half the stocks and small plausible numbers otherwise.
disclosure_date holds one schedule per report: pre_date is the scheduled day (the
actual day for most; 3..20 days off for ~8% that were moved, with modify_date), the
schedule is published 90..120 days before pre_date, and rows appear once pre_date is
within 90 days of as_of.

Real fixture rows (data/fundamentals/*.csv) replace the synthetic rows of their API for
the (ts_code, end_date) pairs they cover. What those files contain, and how it is used:
- column subsets only (income 6, balancesheet 6, cashflow 5, fina_indicator 12
  columns); no f_ann_date, report_type, comp_type, end_type or update_flag;
- 4 stocks (000977.SZ 002050.SZ 002472.SZ 601899.SH), periods 20250630..20260331,
  newest first; they look like the first 4 rows per stock of a Tushare reply, so
  repeated rows push older periods out and the covered periods differ per API;
- repeated rows (restated reports) share ts_code, end_date AND ann_date; in income and
  balancesheet they are identical, in cashflow the second copy lacks free_cashflow;
  fina_indicator has none;
- ann_date agrees across the four files for every (ts_code, end_date).
So within a repeated group the first row (file order, newest first) gets update_flag 1
and the others 0; a single row gets 0. Figures not in the file stay empty, report_type
and comp_type are '1', end_type follows the period and f_ann_date = ann_date. The real
ann_date also becomes the announcement date of that (stock, period) in the APIs the
files do not cover and in disclosure_date, and such pairs get no synthetic restatement.
"""

from __future__ import annotations

import pathlib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd

from ..tushare.catalog import api_columns
from .market import _mix, stable_seed

STATEMENT_APIS = ("income", "balancesheet", "cashflow", "fina_indicator")
DISCLOSURE_API = "disclosure_date"
_VIP_SUFFIX = "_vip"

RESTATED_SHARE = 0.08  # share of (stock, period) reports corrected later
MOVED_SHARE = 0.08  # share of disclosure schedules moved after publication
DISCLOSURE_LOOKAHEAD_DAYS = 90  # schedules are known this far ahead of as_of
NULL_SHARE = 0.5  # share of (stock, non-key column) left empty, as in real Tushare

_FAR_FUTURE = 99991231
_PERIOD_RE = re.compile(r"^\d{4}(0331|0630|0930|1231)$")
_DATE_RE = re.compile(r"^\d{8}$")
_EPOCH = np.datetime64("1970-01-01", "D")

# Announcement window per quarter (1..4): (years after the period's year, month, day).
# Deadlines are the regulatory ones; the window starts when real filings start.
_WINDOW_START = np.array([(0, 4, 8), (0, 7, 10), (0, 10, 10), (1, 1, 15)])
_DEADLINE = np.array([(0, 4, 30), (0, 8, 31), (0, 10, 31), (1, 4, 30)])

# ---------------------------------------------------------------------------
# Hashing: stable across processes (market.stable_seed's crc32 + market._mix's
# splitmix64, never Python's hash()).


@cache
def _tag(name: str) -> int:
    return stable_seed(name)


def _uniform(*keys) -> np.ndarray:
    """Uniform [0, 1) floats, one per broadcast element of the integer keys."""
    h = np.zeros(1, dtype=np.uint64)
    for key in keys:
        h = _mix(h ^ np.asarray(key).astype(np.uint64))
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _normal(*keys) -> np.ndarray:
    """Standard normal (Box-Muller), clipped to +-4 so no figure explodes."""
    u1 = _uniform(*keys, _tag("normal.a"))
    u2 = _uniform(*keys, _tag("normal.b"))
    return np.clip(np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2), -4.0, 4.0)


# ---------------------------------------------------------------------------
# Dates: YYYYMMDD ints <-> days since 1970-01-01 (vectorised).


def _ymd_to_days(ymd) -> np.ndarray:
    v = np.asarray(ymd, dtype=np.int64)
    months = (v // 10000 - 1970) * 12 + v // 100 % 100 - 1
    first = months.astype("datetime64[M]").astype("datetime64[D]")
    return (first - _EPOCH).astype(np.int64) + v % 100 - 1


def _days_to_ymd(days: np.ndarray) -> np.ndarray:
    d = np.asarray(days, dtype=np.int64).astype("datetime64[D]")
    month = d.astype("datetime64[M]")
    y = month.astype(np.int64) // 12 + 1970
    m = month.astype(np.int64) % 12 + 1
    day = (d - month.astype("datetime64[D]")).astype(np.int64) + 1
    return y * 10000 + m * 100 + day


def _days_to_str(days: np.ndarray) -> np.ndarray:
    return _days_to_ymd(days).astype(str).astype(object)


def _back_to_friday(days: np.ndarray) -> np.ndarray:
    """Announcements fall on weekdays: move Saturday/Sunday back to Friday."""
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    return days - np.maximum(weekday - 4, 0)


def _quarter_end_on_or_after(ymd) -> np.ndarray:
    v = np.asarray(ymd, dtype=np.int64)
    month = (v // 100 % 100 + 2) // 3 * 3
    day = np.where((month == 3) | (month == 12), 31, 30)
    return v // 10000 * 10000 + month * 100 + day


def _quarter_end_on_or_before(ymd) -> np.ndarray:
    v = np.asarray(ymd, dtype=np.int64)
    after = _quarter_end_on_or_after(v)
    month = after // 100 % 100
    prev_month = np.where(month == 3, 12, month - 3)
    prev_year = np.where(month == 3, after // 10000 - 1, after // 10000)
    prev_day = np.where((prev_month == 3) | (prev_month == 12), 31, 30)
    return np.where(after == v, v, prev_year * 10000 + prev_month * 100 + prev_day)


def _quarter_ends(first: int, last: int) -> np.ndarray:
    if first > last:
        return np.empty(0, dtype=np.int64)
    years = np.arange(first // 10000, last // 10000 + 1, dtype=np.int64)
    ends = (years[:, None] * 10000 + np.array([331, 630, 930, 1231])).ravel()
    return ends[(ends >= first) & (ends <= last)]


def _shift_ymd(ymd: str, days: int) -> int:
    return int(_days_to_ymd(_ymd_to_days([int(ymd)]) + days)[0])


def _quarter_of(period: np.ndarray) -> np.ndarray:
    return period // 100 % 100 // 3


def _window_days(period: np.ndarray, table: np.ndarray) -> np.ndarray:
    t = table[_quarter_of(period) - 1]
    return _ymd_to_days((period // 10000 + t[:, 0]) * 10000 + t[:, 1] * 100 + t[:, 2])


def _r2(x: np.ndarray) -> np.ndarray:
    return np.round(x, 2)


def _r4(x: np.ndarray) -> np.ndarray:
    return np.round(x, 4)


# ---------------------------------------------------------------------------
# Small helpers


class _Lru:
    """A bounded, thread-safe cache of built frames (the server answers from several threads).

    Builders are pure, so eviction is safe and two threads building the same key at once
    merely waste work; building outside the lock keeps other keys' queries flowing.
    """

    def __init__(self, maxsize: int):
        self._items: OrderedDict = OrderedDict()
        self._maxsize = maxsize
        self._lock = threading.Lock()

    def get(self, key, build: Callable[[], pd.DataFrame]) -> pd.DataFrame:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = build()
        with self._lock:
            self._items[key] = value
            if len(self._items) > self._maxsize:
                self._items.popitem(last=False)
        return value


@dataclass(frozen=True)
class _Rows:
    """The report versions to build: parallel arrays, one element per output row."""

    sidx: np.ndarray  # stock position in the universe
    sk: np.ndarray  # stock hash key (uint64)
    period: np.ndarray  # YYYYMMDD quarter end
    version: np.ndarray  # 0 original, 1 correction
    ann: np.ndarray  # announcement day (days since epoch)

    @property
    def year(self) -> np.ndarray:
        return self.period // 10000

    @property
    def quarter(self) -> np.ndarray:
        return _quarter_of(self.period)


@dataclass(frozen=True)
class _Schedule:
    """When each (stock, period) report is announced, and whether it is corrected later."""

    valid: np.ndarray  # the stock reports this period (listed, announced before delisting)
    ann0: np.ndarray  # original announcement day
    restated: np.ndarray
    ann1: np.ndarray  # correction announcement day (meaningful where restated)


def _stock_params(sk: np.ndarray) -> dict[str, np.ndarray]:
    """Per-stock traits, stable over time, so a stock's reports look like one company."""

    def u(name: str) -> np.ndarray:
        return _uniform(sk, _tag(name))

    def n(name: str) -> np.ndarray:
        return _normal(sk, _tag(name))

    level = np.exp(np.log(3e8) + u("p.level") * np.log(300.0))  # 2020 revenue, 3e8..9e10
    return {
        "level": level,
        "growth": np.clip(0.07 + 0.05 * n("p.growth"), -0.05, 0.18),
        "margin": np.clip(0.08 + 0.07 * n("p.margin"), -0.15, 0.45),  # ~13% loss makers
        "tax": np.where(u("p.tax") < 0.4, 0.15, 0.25),
        "minority": 0.15 * u("p.minority") ** 2,
        "cost": 0.45 + 0.45 * u("p.cost"),
        "assets": np.exp(np.log(0.6) + u("p.assets") * np.log(4.0 / 0.6)),
        "debt": 0.15 + 0.7 * u("p.debt"),
        "cur_assets": 0.2 + 0.55 * u("p.cur_assets"),
        "cash": 0.1 + 0.35 * u("p.cash"),
        "cur_liab": 0.4 + 0.55 * u("p.cur_liab"),
        "capex": 0.02 + 0.13 * u("p.capex"),
        # shares follow size, so EPS lands in a plausible -2..7 yuan
        "shares": np.round(level * (0.05 + 0.55 * u("p.shares"))),
        "int_income": (u("p.int_income") < 0.15).astype(np.float64),
    }


_EXPENSES = ("biz_tax_surchg", "sell_exp", "admin_exp", "rd_exp", "fin_exp", "assets_impair_loss",
             "credit_impa_loss")


# ---------------------------------------------------------------------------


class FinanceBook:
    """Financial statements of a stock universe, as Tushare Pro would return them at ``as_of``.

    ``stocks``: ts_code, list_date, delist_date (YYYYMMDD or empty; the real date even if
    after as_of), list_status. ``query`` returns every matching row with all schema columns,
    newest first; the server selects fields and pages.
    """

    def __init__(self, stocks: pd.DataFrame, data_dir: pathlib.Path, as_of: str,
                 start_period: str = "20000331"):
        data_dir = pathlib.Path(data_dir)
        self._schema: dict[str, list[tuple[str, str]]] = {
            api: api_columns(api) for api in (*STATEMENT_APIS, DISCLOSURE_API)
        }
        self._codes = stocks["ts_code"].astype(str).to_numpy(dtype=object)
        self._index = {code: i for i, code in enumerate(self._codes)}
        self._code_rank = np.argsort(np.argsort(self._codes, kind="stable"), kind="stable")
        self._sk = np.array([stable_seed(c) for c in self._codes], dtype=np.uint64)
        list_date = stocks["list_date"].astype("int64").to_numpy()
        self._first = _quarter_end_on_or_after(np.maximum(list_date, int(start_period)))
        self._delist = np.array([_delist_ymd(v) for v in stocks["delist_date"]], dtype=np.int64)
        self._delist_days = _ymd_to_days(self._delist)
        self._last = _quarter_end_on_or_before(self._delist)
        self._params = _stock_params(self._sk)
        weights = np.stack([_uniform(self._sk, _tag(f"p.w.{e}")) + 0.1 for e in _EXPENSES])
        self._expense_shares = weights / weights.sum(axis=0)
        self._real = {api: self._load_real(data_dir, api) for api in STATEMENT_APIS}
        self._real_ann = self._real_announcements()
        self._fit_real_stocks()
        self._period_cache = _Lru(16)
        self._stock_cache = _Lru(256)
        self.set_as_of(as_of)

    # -- public interface ----------------------------------------------------

    def set_as_of(self, as_of: str) -> None:
        if not _DATE_RE.match(str(as_of)):
            raise ValueError(f"as_of must be YYYYMMDD, got {as_of!r}")
        self.as_of = str(as_of)

    def query(self, api_name: str, params: dict) -> pd.DataFrame:
        api = _base_api(api_name)
        p = _clean_params(params)
        as_of = self.as_of  # read once: the server may move it while a query runs
        if api == DISCLOSURE_API:
            return self._query_disclosure(p, as_of)
        vip = api_name.endswith(_VIP_SUFFIX)
        if not vip and "ts_code" not in p:
            raise ValueError(f"{api_name} needs ts_code (one stock per call); "
                             f"use {api_name}_vip with period for the whole market")
        frame = _visible(self._statement_candidates(api_name, api, p, as_of), as_of)
        filters = ("ann_date", "start_date", "end_date", "period", "report_type", "comp_type")
        return _apply_filters(frame, p, filters).reset_index(drop=True)

    def truth(self, api_name: str, start: str, end: str, ts_codes=None) -> pd.DataFrame:
        """Every row visible at ``as_of`` whose report period lies in [start, end], newest first;
        with ``ts_codes``, of those stocks only (built for them alone: a test's sample of a
        few dozen stocks need not build the whole market)."""
        api, as_of = _base_api(api_name), self.as_of
        periods = _quarter_ends(int(start), int(end))[::-1]
        if api == DISCLOSURE_API:
            frames = [_visible_disclosure(self._disclosure_period(int(x)), as_of) for x in periods]
        elif ts_codes is not None:
            return _visible(self._stocks_frame(api, ts_codes, periods), as_of).reset_index(drop=True)
        else:
            frames = [_visible(self._period_frame(api, int(x)), as_of) for x in periods]
        frame = _concat(frames, self._empty(api))
        if ts_codes is not None:
            frame = frame[frame.ts_code.isin(list(ts_codes))].reset_index(drop=True)
        return frame

    # -- statements ------------------------------------------------------------

    def _statement_candidates(self, api_name: str, api: str, p: dict, as_of: str) -> pd.DataFrame:
        """Rows that may match: one stock's history, one period, or the periods an ann date allows."""
        if "ts_code" in p:
            sidx = self._stock_index(p["ts_code"])
            if sidx is None:
                return self._empty(api)
            bound = int(_quarter_end_on_or_before(int(as_of)))
            return self._stock_cache.get((api, sidx, bound), lambda: self._stock_frame(api, sidx, bound))
        if "period" in p:
            return self._period_frame(api, int(p["period"]))
        if "ann_date" in p:
            first, last = p["ann_date"], p["ann_date"]
        elif "start_date" in p:
            first, last = p["start_date"], p.get("end_date", as_of)
        else:
            raise ValueError(f"{api_name} needs period (whole market for one report period), "
                             "ts_code, ann_date or start_date")
        # Reports come out <= 4 months after their period, corrections <= 10 months after that.
        periods = _quarter_ends(_shift_ymd(first, -430), min(int(last), int(as_of)))[::-1]
        return _concat([self._period_frame(api, int(x)) for x in periods], self._empty(api))

    def _stock_frame(self, api: str, sidx: int, bound: int) -> pd.DataFrame:
        periods = _quarter_ends(int(self._first[sidx]), min(int(self._last[sidx]), bound))
        return self._pairs_frame(api, np.full(len(periods), sidx, dtype=np.int64), periods)

    def _stocks_frame(self, api: str, ts_codes, periods: np.ndarray) -> pd.DataFrame:
        """The reports of these stocks in these periods (those listed then), in one build."""
        sidx = np.array(sorted({i for i in map(self._stock_index, ts_codes) if i is not None}), dtype=np.int64)
        pairs_sidx, pairs_period = np.repeat(sidx, len(periods)), np.tile(periods.astype(np.int64), len(sidx))
        listed = (self._first[pairs_sidx] <= pairs_period) & (self._last[pairs_sidx] >= pairs_period)
        if not listed.any():
            return self._empty(api)
        return self._pairs_frame(api, pairs_sidx[listed], pairs_period[listed])

    def _period_frame(self, api: str, period: int) -> pd.DataFrame:
        def build() -> pd.DataFrame:
            sidx = np.nonzero((self._first <= period) & (self._last >= period))[0]
            return self._pairs_frame(api, sidx, np.full(len(sidx), period, dtype=np.int64))

        return self._period_cache.get((api, period), build)

    def _pairs_frame(self, api: str, sidx: np.ndarray, period: np.ndarray) -> pd.DataFrame:
        """All versions of the reports of these (stock, period) pairs, real rows where we have them."""
        sched = self._schedule(sidx, period)
        real_frame, real_keys = self._real[api]
        keys = _pair_key(sidx, period)
        synthetic = sched.valid & ~np.isin(keys, real_keys)
        corrected = synthetic & sched.restated
        sidx = np.concatenate([sidx[synthetic], sidx[corrected]])
        period = np.concatenate([period[synthetic], period[corrected]])
        version = np.repeat(np.array([0, 1]), [synthetic.sum(), corrected.sum()])
        ann = np.concatenate([sched.ann0[synthetic], sched.ann1[corrected]])
        order = self._tushare_order(sidx, period, ann, version)
        sidx, period, version, ann = sidx[order], period[order], version[order], ann[order]
        rows = _Rows(sidx=sidx, sk=self._sk[sidx], period=period, version=version, ann=ann)
        frame = self._assemble(api, rows)
        real = real_frame[np.isin(real_keys, keys[sched.valid])]
        return _sorted(pd.concat([frame, real], ignore_index=True)) if len(real) else frame

    def _tushare_order(self, sidx, period, ann, version) -> np.ndarray:
        """Row order of Tushare replies: end_date desc, ann_date desc, ts_code, the update first."""
        return np.lexsort((-version, self._code_rank[sidx], -ann, -period))

    def _schedule(self, sidx: np.ndarray, period: np.ndarray) -> _Schedule:
        sk = self._sk[sidx]
        start = _window_days(period, _WINDOW_START)
        deadline = _window_days(period, _DEADLINE)
        # sqrt skews towards the deadline, where most real filings cluster.
        offset = np.floor(np.sqrt(_uniform(sk, period, _tag("ann"))) * (deadline - start + 1))
        ann0 = _back_to_friday(np.minimum(start + offset.astype(np.int64), deadline))
        is_real, real_ann = _lookup(*self._real_ann, _pair_key(sidx, period))
        ann0 = np.where(is_real, real_ann, ann0)
        delay = 30 + np.floor(_uniform(sk, period, _tag("restate.delay")) * 271).astype(np.int64)
        ann1 = _back_to_friday(ann0 + delay)
        delist = self._delist_days[sidx]
        restated = (_uniform(sk, period, _tag("restate")) < RESTATED_SHARE) & ~is_real & (ann1 <= delist)
        return _Schedule(valid=ann0 <= delist, ann0=ann0, restated=restated, ann1=ann1)

    def _assemble(self, api: str, rows: _Rows) -> pd.DataFrame:
        """One float block (non-key columns generic, key columns overwritten), then the other columns."""
        figures = self._figures(rows)
        revenue, assets = figures["income"]["revenue"], figures["balancesheet"]["total_assets"]
        scale = {"income": revenue, "balancesheet": assets, "cashflow": revenue, "fina_indicator": None}[api]
        float_columns = [c for c, t in self._schema[api] if t == "float"]
        block = _generic_block(api, float_columns, rows, scale)
        for j, col in enumerate(float_columns):
            if col in figures[api]:
                block[:, j] = figures[api][col]
        frame = pd.DataFrame(block, columns=float_columns)
        ids = self._id_columns(api, rows)
        for position, (col, typ) in enumerate(self._schema[api]):
            if typ != "float":
                frame.insert(position, col, ids[col])
        return frame

    def _id_columns(self, api: str, rows: _Rows) -> dict[str, np.ndarray]:
        """Identity columns; update_flag typed as the schema says (int, but str in fina_indicator)."""
        ann = _days_to_str(rows.ann)
        flag_is_str = dict(self._schema[api]).get("update_flag") == "str"
        return {
            "ts_code": self._codes[rows.sidx],
            "ann_date": ann,
            "f_ann_date": ann,
            "end_date": rows.period.astype(str).astype(object),
            "report_type": np.full(len(rows.sidx), "1", dtype=object),
            "comp_type": np.full(len(rows.sidx), "1", dtype=object),
            "end_type": rows.quarter.astype(str).astype(object),
            "update_flag": rows.version.astype(str).astype(object) if flag_is_str else rows.version,
        }

    # -- figures ---------------------------------------------------------------

    def _figures(self, rows: _Rows) -> dict[str, dict[str, np.ndarray]]:
        """The key figures of all four statements, so the APIs agree with each other."""
        p = {k: v[rows.sidx] for k, v in self._params.items()}
        flows = self._quarterly_flows(rows, p)
        delta = _restatement_delta(rows)
        original = _profit_chain(flows, p["minority"], np.ones(len(rows.sidx)))
        profit = _profit_chain(flows, p["minority"], 1.0 + delta)
        balance = self._balance(rows, p, profit, original)
        income = self._income(rows, p, flows["revenue"], profit, balance)
        cash = self._cashflow(rows, p, income, original, balance)
        indicator = _indicator(rows, p, income, balance, cash)
        return {"income": income, "balancesheet": balance, "cashflow": cash, "fina_indicator": indicator}

    def _annual_level(self, sk: np.ndarray, year: np.ndarray, p: dict) -> np.ndarray:
        """Annual revenue of a stock in a year: a growth trend plus yearly noise."""
        return p["level"] * np.exp(p["growth"] * (year - 2020) + 0.1 * _normal(sk, year, _tag("level")))

    def _quarterly_flows(self, rows: _Rows, p: dict) -> dict[str, np.ndarray]:
        """Year-to-date sums of single-quarter flows, so Q1 < H1 < Q3 < annual.

        Each quarter's margin keeps the stock's sign, so |profit| grows through the year too.
        Sums are spelled out (no axis reductions) so a row's value does not depend on the batch.
        """
        sk, year, quarter = rows.sk, rows.year, rows.quarter
        level = self._annual_level(sk, year, p)
        weights = [np.exp(0.15 * _normal(sk, year, _tag(f"season{j}"))) for j in range(4)]
        total_weight = weights[0] + weights[1] + weights[2] + weights[3]
        ytd = {name: np.zeros(len(sk)) for name in ("revenue", "op", "noi", "noe", "tax")}
        for j in range(4):
            included = quarter > j
            revenue = level * weights[j] / total_weight
            margin = np.clip(p["margin"] * np.exp(0.25 * _normal(sk, year, _tag(f"margin{j}"))), -0.6, 0.6)
            op = revenue * margin
            noi = np.abs(op) * 0.08 * _uniform(sk, year, _tag(f"noi{j}"))
            noe = np.abs(op) * 0.08 * _uniform(sk, year, _tag(f"noe{j}"))
            tax = np.maximum(op + noi - noe, 0.0) * p["tax"]
            for name, value in (("revenue", revenue), ("op", op), ("noi", noi), ("noe", noe), ("tax", tax)):
                ytd[name] = ytd[name] + np.where(included, value, 0.0)
        ytd["revenue"] = _r2(ytd["revenue"])
        return ytd

    def _income(self, rows: _Rows, p: dict, revenue: np.ndarray, profit: dict, balance: dict) -> dict:
        sk, period = rows.sk, rows.period

        def ratio(name: str, scale: float) -> np.ndarray:
            return _r2(revenue * scale * _normal(sk, period, _tag(name)))

        int_share = 0.002 + 0.028 * _uniform(sk, period, _tag("int_income"))
        int_income = np.where(p["int_income"] > 0, _r2(revenue * int_share), np.nan)
        total_revenue = _r2(revenue + np.nan_to_num(int_income))
        gains = {
            "invest_income": ratio("invest_income", 0.01),
            "fv_value_chg_gain": ratio("fv_value_chg_gain", 0.003),
            "oth_income": _r2(revenue * 0.005 * _uniform(sk, period, _tag("oth_income"))),
            "asset_disp_income": ratio("asset_disp_income", 0.001),
        }
        # operate_profit = total_revenue - total_cogs + gains, with total_cogs the balancing item.
        total_cogs = _r2(total_revenue + sum(gains.values()) - profit["operate_profit"])
        cost_noise = np.exp(0.03 * _normal(sk, period, _tag("oper_cost")))
        oper_cost = _r2(np.minimum(revenue * p["cost"] * cost_noise, 0.85 * total_cogs))
        expenses = _split(total_cogs - oper_cost, self._expense_shares[:, rows.sidx])
        fin_exp_int_inc = _r2(expenses["fin_exp"] * 0.3 * _uniform(sk, period, _tag("fin_exp_int_inc")))
        fin_exp_int_exp = _r2(expenses["fin_exp"] + fin_exp_int_inc)
        ebit = _r2(profit["total_profit"] + fin_exp_int_exp)
        oci = _r2(profit["n_income"] * 0.02 * _normal(sk, period, _tag("oci")))
        oci_minority = _r2(oci * p["minority"])
        basic_eps = _r4(profit["n_income_attr_p"] / p["shares"])
        diluted = _uniform(sk, _tag("diluted")) < 0.2
        return {
            **profit, **gains, **expenses,
            "revenue": revenue, "int_income": int_income, "total_revenue": total_revenue,
            "total_cogs": total_cogs, "oper_cost": oper_cost,
            "fin_exp_int_inc": fin_exp_int_inc, "fin_exp_int_exp": fin_exp_int_exp,
            "ebit": ebit, "ebitda": _r2(ebit + balance["_depreciation"] + balance["_amortisation"]),
            "oth_compr_income": oci, "t_compr_income": _r2(profit["n_income"] + oci),
            "compr_inc_attr_p": _r2(profit["n_income_attr_p"] + oci - oci_minority),
            "compr_inc_attr_m_s": _r2(profit["minority_gain"] + oci_minority),
            "continued_net_profit": profit["n_income"],
            "basic_eps": basic_eps, "diluted_eps": np.where(diluted, _r4(basic_eps * 0.98), basic_eps),
        }

    def _assets(self, sk: np.ndarray, period: np.ndarray, p: dict) -> dict[str, np.ndarray]:
        """Original (unrestated) asset side at a period end; also used for the prior year end."""
        level = self._annual_level(sk, period // 10000, p)
        total_assets = _r2(level * p["assets"] * np.exp(0.04 * _normal(sk, period, _tag("total_assets"))))
        cur_noise = np.exp(0.03 * _normal(sk, period, _tag("cur_assets")))
        cur_share = np.clip(p["cur_assets"] * cur_noise, 0.05, 0.95)
        cur_assets = _r2(total_assets * cur_share)
        money_cap = _r2(cur_assets * p["cash"] * np.exp(0.1 * _normal(sk, period, _tag("money_cap"))))
        return {"total_assets": total_assets, "total_cur_assets": cur_assets, "money_cap": money_cap}

    def _balance(self, rows: _Rows, p: dict, profit: dict, original: dict) -> dict:
        sk, period = rows.sk, rows.period
        assets = self._assets(sk, period, p)
        debt = np.clip(p["debt"] + 0.02 * _normal(sk, period, _tag("debt")), 0.03, 0.97)
        total_liab = _r2(assets["total_assets"] * debt)
        equity0 = assets["total_assets"] - total_liab
        minority0 = _r2(equity0 * p["minority"])
        parent0 = _r2(equity0 - minority0)
        # A correction flows into retained earnings; liabilities stay, assets follow the identity.
        parent = _r2(parent0 + profit["n_income_attr_p"] - original["n_income_attr_p"])
        minority = _r2(minority0 + profit["minority_gain"] - original["minority_gain"])
        equity = _r2(parent + minority)
        total_assets = _r2(total_liab + equity)
        cur_liab_share = np.clip(p["cur_liab"] + 0.03 * _normal(sk, period, _tag("cur_liab")), 0.1, 1.0)
        cur_liab = _r2(total_liab * cur_liab_share)
        reserves = np.maximum(parent0 - p["shares"], 0.0)
        cap_rese, surplus_rese = _r2(reserves * 0.4), _r2(reserves * 0.1)
        non_current0 = assets["total_assets"] - assets["total_cur_assets"]
        return {
            "total_assets": total_assets, "total_cur_assets": assets["total_cur_assets"],
            "total_nca": _r2(total_assets - assets["total_cur_assets"]), "money_cap": assets["money_cap"],
            "total_liab": total_liab, "total_cur_liab": cur_liab, "total_ncl": _r2(total_liab - cur_liab),
            "total_share": p["shares"], "cap_rese": cap_rese, "surplus_rese": surplus_rese,
            "undistr_porfit": _r2(parent - p["shares"] - cap_rese - surplus_rese),
            "minority_int": minority, "total_hldr_eqy_exc_min_int": parent,
            "total_hldr_eqy_inc_min_int": equity, "total_liab_hldr_eqy": total_assets,
            # year-to-date D&A for income's ebitda and cashflow; not balance-sheet columns
            "_depreciation": _r2(non_current0 * 0.05 * rows.quarter / 4),
            "_amortisation": _r2(non_current0 * 0.01 * rows.quarter / 4),
        }

    def _cashflow(self, rows: _Rows, p: dict, income: dict, original: dict, balance: dict) -> dict:
        sk, period, revenue = rows.sk, rows.period, income["revenue"]
        # Operating cash follows the original profit: a restatement is an accounting correction.
        ocf = _r2(original["n_income"] * (1 + 0.4 * _normal(sk, period, _tag("ocf")))
                  + revenue * 0.03 * _normal(sk, period, _tag("ocf.rev")))
        capex = _r2(revenue * p["capex"] * np.exp(0.2 * _normal(sk, period, _tag("capex"))))
        invest = _r2(-capex + revenue * 0.02 * _normal(sk, period, _tag("invest")))
        end_cash = balance["money_cap"]
        # Statements are year-to-date, so the opening cash is that of the prior year end.
        begin_cash = self._assets(sk, (period // 10000 - 1) * 10000 + 1231, p)["money_cap"]
        increase = _r2(end_cash - begin_cash)
        fx = _r2(revenue * 0.001 * _normal(sk, period, _tag("fx")))
        return {
            "net_profit": income["n_income"], "finan_exp": income["fin_exp"],
            "credit_impa_loss": income["credit_impa_loss"],
            "n_cashflow_act": ocf, "im_net_cashflow_oper_act": ocf,
            "c_pay_acq_const_fiolta": capex, "n_cashflow_inv_act": invest,
            "free_cashflow": _r2(ocf - capex),
            # financing is the balancing item of the cash reconciliation
            "n_cash_flows_fnc_act": _r2(increase - ocf - invest - fx), "eff_fx_flu_cash": fx,
            "n_incr_cash_cash_equ": increase, "im_n_incr_cash_equ": increase,
            "c_cash_equ_end_period": end_cash, "c_cash_equ_beg_period": begin_cash,
            "end_bal_cash": end_cash, "beg_bal_cash": begin_cash,
            "c_fr_sale_sg": _r2(revenue * (1.0 + 0.13 * _uniform(sk, period, _tag("c_fr_sale_sg")))),
            "depr_fa_coga_dpba": balance["_depreciation"], "amort_intang_assets": balance["_amortisation"],
        }

    # -- disclosure_date ---------------------------------------------------------

    def _query_disclosure(self, p: dict, as_of: str) -> pd.DataFrame:
        bound = _shift_ymd(as_of, DISCLOSURE_LOOKAHEAD_DAYS)
        if "ts_code" in p:
            sidx = self._stock_index(p["ts_code"])
            if sidx is None:
                return self._empty(DISCLOSURE_API)
            last = int(_quarter_end_on_or_before(bound))
            frame = self._stock_cache.get((DISCLOSURE_API, sidx, last),
                                          lambda: self._disclosure_stock(sidx, last))
        elif "end_date" in p:
            frame = self._disclosure_period(int(p["end_date"]))
        else:
            dates = [p[k] for k in ("pre_date", "ann_date", "actual_date") if k in p]
            if not dates:
                raise ValueError("disclosure_date needs end_date (report period) or ts_code")
            # All dates of a schedule lie within ~4 months either side of its period end.
            periods = _quarter_ends(_shift_ymd(min(dates), -130), _shift_ymd(max(dates), 130))[::-1]
            frame = _concat([self._disclosure_period(int(x)) for x in periods], self._empty(DISCLOSURE_API))
        frame = _visible_disclosure(frame, as_of)
        filters = ("end_date", "pre_date", "ann_date", "actual_date")
        return _apply_filters(frame, p, filters).reset_index(drop=True)

    def _disclosure_stock(self, sidx: int, last: int) -> pd.DataFrame:
        periods = _quarter_ends(int(self._first[sidx]), min(int(self._last[sidx]), last))
        return self._disclosure_pairs(np.full(len(periods), sidx, dtype=np.int64), periods)

    def _disclosure_period(self, period: int) -> pd.DataFrame:
        def build() -> pd.DataFrame:
            sidx = np.nonzero((self._first <= period) & (self._last >= period))[0]
            return self._disclosure_pairs(sidx, np.full(len(sidx), period, dtype=np.int64))

        return self._period_cache.get((DISCLOSURE_API, period), build)

    def _disclosure_pairs(self, sidx: np.ndarray, period: np.ndarray) -> pd.DataFrame:
        """Schedules as known in hindsight; ``_visible_disclosure`` hides what as_of cannot know yet."""
        sched = self._schedule(sidx, period)
        sidx, period, actual = sidx[sched.valid], period[sched.valid], sched.ann0[sched.valid]
        sk = self._sk[sidx]
        # A moved schedule: the first announced date was 3..20 days off the actual one.
        moved = _uniform(sk, period, _tag("moved")) < MOVED_SHARE
        shift = 3 + np.floor(_uniform(sk, period, _tag("moved.days")) * 18).astype(np.int64)
        shift = np.where(_uniform(sk, period, _tag("moved.sign")) < 0.5, -shift, shift)
        earliest = _ymd_to_days(period) + 10
        planned = _back_to_friday(np.clip(actual + shift, earliest, _window_days(period, _DEADLINE)))
        pre = np.where(moved, planned, actual)
        moved = pre != actual
        lead = 90 + np.floor(_uniform(sk, period, _tag("sched")) * 31).astype(np.int64)
        published = _back_to_friday(pre - lead)
        change_span = np.minimum(pre, actual) - published - 1
        change_day = np.floor(_uniform(sk, period, _tag("modify")) * change_span).astype(np.int64)
        modified = published + 1 + change_day
        order = self._tushare_order(sidx, period, published, np.zeros(len(sidx), dtype=np.int64))
        return pd.DataFrame({
            "ts_code": self._codes[sidx],
            "ann_date": _days_to_str(published),
            "end_date": period.astype(str).astype(object),
            "pre_date": _days_to_str(pre),
            "actual_date": _days_to_str(actual),
            "modify_date": np.where(moved, _days_to_str(modified), None),
        }).iloc[order].reset_index(drop=True)

    # -- real fixture rows -------------------------------------------------------

    def _load_real(self, data_dir: pathlib.Path, api: str) -> tuple[pd.DataFrame, np.ndarray]:
        """The real rows of one API in full schema, and their (stock, period) keys."""
        raw = pd.read_csv(data_dir / "fundamentals" / f"{api}.csv", dtype={
            "ts_code": str, "ann_date": str, "end_date": str})
        raw = raw[raw["ts_code"].isin(self._index)].reset_index(drop=True)
        group = raw.groupby(["ts_code", "end_date"], sort=False)
        # Repeated rows: the first (newest first, as Tushare lists them) is the update.
        flag = ((group.cumcount() == 0) & (group["ts_code"].transform("size") > 1)).astype(np.int64)
        filled = {
            "f_ann_date": raw["ann_date"], "report_type": "1", "comp_type": "1",
            "end_type": (raw["end_date"].astype(np.int64) // 100 % 100 // 3).astype(str),
            "update_flag": flag.astype(str) if dict(self._schema[api]).get("update_flag") == "str" else flag,
        }
        columns = {}
        for col, typ in self._schema[api]:
            if col in raw:
                columns[col] = raw[col]
            elif col in filled:
                columns[col] = filled[col]
            else:
                columns[col] = np.full(len(raw), np.nan if typ == "float" else None)
        frame = pd.DataFrame(columns)
        keys = _pair_key(np.array([self._index[c] for c in raw["ts_code"]], dtype=np.int64),
                         raw["end_date"].astype(np.int64).to_numpy())
        return frame, keys

    def _fit_real_stocks(self) -> None:
        """Fit the traits of the real fixture stocks to their latest real annual report, so their
        synthetic history joins the real rows without a jump in scale."""
        latest = {api: frame[frame["end_date"].str.endswith("1231")].drop_duplicates("ts_code")
                  .set_index("ts_code") for api, (frame, _keys) in self._real.items()}
        p = self._params
        for code, row in latest["income"].iterrows():
            i = self._index[code]
            year = np.array([int(row["end_date"][:4])])
            trend = self._annual_level(self._sk[i:i + 1], year, {k: v[i:i + 1] for k, v in p.items()})
            revenue, n_income = row["revenue"], row["n_income"]
            p["level"][i] *= revenue / trend[0]
            p["margin"][i] = np.clip(n_income / revenue / (1 - p["tax"][i] * (n_income > 0)), -0.15, 0.6)
            if code in latest["balancesheet"].index:
                balance = latest["balancesheet"].loc[code]
                p["assets"][i] = balance["total_assets"] / revenue
                p["debt"][i] = balance["total_liab"] / balance["total_assets"]
            if code in latest["fina_indicator"].index:
                eps = latest["fina_indicator"].loc[code, "eps"]
                p["shares"][i] = np.round(n_income * (1 - p["minority"][i]) / eps)

    def _real_announcements(self) -> tuple[np.ndarray, np.ndarray]:
        """Sorted keys and announcement days of every (stock, period) some real file covers."""
        announced: dict[int, int] = {}
        for frame, keys in self._real.values():
            for key, ann in zip(keys.tolist(), frame["ann_date"].astype(int).tolist(), strict=True):
                announced[key] = min(ann, announced.get(key, ann))
        keys = np.array(sorted(announced), dtype=np.int64)
        return keys, _ymd_to_days([announced[k] for k in keys.tolist()]).astype(np.int64)

    # -- small helpers -----------------------------------------------------------

    def _stock_index(self, ts_code: str) -> int | None:
        if "," in ts_code:
            raise ValueError(f"one ts_code per call, got {ts_code!r}")
        return self._index.get(ts_code)

    def _empty(self, api: str) -> pd.DataFrame:
        return pd.DataFrame({c: pd.Series(dtype=_empty_dtype(t)) for c, t in self._schema[api]})


def _visible(frame: pd.DataFrame, as_of: str) -> pd.DataFrame:
    return frame[frame["ann_date"] <= as_of]


def _visible_disclosure(frame: pd.DataFrame, as_of: str) -> pd.DataFrame:
    """Rows whose scheduled date is within the look-ahead; facts after as_of blanked out."""
    bound = str(_shift_ymd(as_of, DISCLOSURE_LOOKAHEAD_DAYS))
    frame = frame[frame["pre_date"] <= bound].copy()
    for col in ("actual_date", "modify_date"):
        frame[col] = frame[col].where(frame[col] <= as_of, None)
    return frame


def _restatement_delta(rows: _Rows) -> np.ndarray:
    """Relative change of the profit lines in a correction: +-1..6%, zero for originals."""
    size = 0.01 + 0.05 * _uniform(rows.sk, rows.period, _tag("restate.size"))
    sign = np.where(_uniform(rows.sk, rows.period, _tag("restate.sign")) < 0.5, -1.0, 1.0)
    return np.where(rows.version == 1, size * sign, 0.0)


def _profit_chain(flows: dict, minority_share: np.ndarray, factor: np.ndarray) -> dict:
    """Operating profit down to the parent's net income; a correction scales the whole chain."""
    operate_profit = _r2(flows["op"] * factor)
    non_oper_income = _r2(flows["noi"] * factor)
    non_oper_exp = _r2(flows["noe"] * factor)
    total_profit = _r2(operate_profit + non_oper_income - non_oper_exp)
    income_tax = _r2(flows["tax"] * factor)
    n_income = _r2(total_profit - income_tax)
    minority_gain = _r2(n_income * minority_share)
    return {
        "operate_profit": operate_profit, "non_oper_income": non_oper_income,
        "non_oper_exp": non_oper_exp, "total_profit": total_profit, "income_tax": income_tax,
        "n_income": n_income, "minority_gain": minority_gain,
        "n_income_attr_p": _r2(n_income - minority_gain),
    }


def _split(total: np.ndarray, shares: np.ndarray) -> dict[str, np.ndarray]:
    """Split a total over the expense lines; the last line takes the rounding rest."""
    parts = {name: _r2(total * share) for name, share in zip(_EXPENSES[:-1], shares[:-1], strict=True)}
    parts[_EXPENSES[-1]] = _r2(total - sum(parts.values()))
    return parts


def _indicator(rows: _Rows, p: dict, income: dict, balance: dict, cash: dict) -> dict:
    shares, revenue = p["shares"], income["revenue"]
    parent = balance["total_hldr_eqy_exc_min_int"]
    equity, assets = balance["total_hldr_eqy_inc_min_int"], balance["total_assets"]
    gross = _r2(revenue - income["oper_cost"])
    extra_item = _r2(income["non_oper_income"] - income["non_oper_exp"])
    roe = _r4(income["n_income_attr_p"] / parent * 100)
    return {
        "eps": income["basic_eps"], "dt_eps": income["diluted_eps"],
        "total_revenue_ps": _r4(income["total_revenue"] / shares), "revenue_ps": _r4(revenue / shares),
        "extra_item": extra_item, "profit_dedt": _r2(income["n_income_attr_p"] - extra_item),
        "gross_margin": gross, "current_ratio": _r4(balance["total_cur_assets"] / balance["total_cur_liab"]),
        "ebit": income["ebit"], "ebitda": income["ebitda"],
        "working_capital": _r2(balance["total_cur_assets"] - balance["total_cur_liab"]),
        "bps": _r4(parent / shares), "ocfps": _r4(cash["n_cashflow_act"] / shares),
        "cfps": _r4(cash["n_incr_cash_cash_equ"] / shares),
        "netprofit_margin": _r4(income["n_income"] / revenue * 100),
        "grossprofit_margin": _r4(gross / revenue * 100),
        "roe": roe, "roe_yearly": _r4(roe * 4 / rows.quarter),
        "roa": _r4(income["n_income"] / assets * 100),
        "debt_to_assets": _r4(balance["total_liab"] / assets * 100),
        "assets_to_eqt": _r4(assets / equity), "debt_to_eqt": _r4(balance["total_liab"] / equity),
        "ca_to_assets": _r4(balance["total_cur_assets"] / assets * 100),
        "nca_to_assets": _r4(balance["total_nca"] / assets * 100),
        "rd_exp": income["rd_exp"],
    }


def _generic_block(api: str, columns: list[str], rows: _Rows, scale: np.ndarray | None) -> np.ndarray:
    """Non-key columns (rows x columns): each empty for about half the stocks (always the same
    ones), else plausible: amounts a small share of revenue or assets, indicators ratios."""
    tags = np.array([_tag(f"{api}.{c}") for c in columns], dtype=np.uint64)[None, :]
    sk, period = rows.sk[:, None], rows.period[:, None]
    u = _uniform(sk, period, tags)
    value = _r4((u - 0.3) * 50.0) if scale is None else _r2(scale[:, None] * 0.05 * u)
    return np.where(_uniform(sk, tags) < NULL_SHARE, np.nan, value)


def _lookup(sorted_keys: np.ndarray, values: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(found, value) per key in a sorted key array; value is meaningless where not found."""
    if not len(sorted_keys):
        return np.zeros(len(keys), dtype=bool), np.zeros(len(keys), dtype=values.dtype)
    pos = np.searchsorted(sorted_keys, keys).clip(0, len(sorted_keys) - 1)
    return sorted_keys[pos] == keys, values[pos]


def _pair_key(sidx: np.ndarray, period: np.ndarray) -> np.ndarray:
    return np.asarray(sidx, dtype=np.int64) * 100_000_000 + np.asarray(period, dtype=np.int64)


def _delist_ymd(value) -> int:
    text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value).strip()
    return int(text) if _DATE_RE.match(text) else _FAR_FUTURE


def _base_api(api_name: str) -> str:
    api = api_name.removesuffix(_VIP_SUFFIX)
    if api not in STATEMENT_APIS and api_name != DISCLOSURE_API:
        raise ValueError(f"unknown api {api_name!r}")
    return api


def _clean_params(params: dict) -> dict[str, str]:
    """Params as non-empty strings, with date and period formats checked."""
    p = {k: str(v).strip() for k, v in (params or {}).items() if v is not None and str(v).strip() != ""}
    for key in ("ann_date", "start_date", "end_date", "pre_date", "actual_date"):
        if key in p and not _DATE_RE.match(p[key]):
            raise ValueError(f"{key} must be YYYYMMDD, got {p[key]!r}")
    if "period" in p and not _PERIOD_RE.match(p["period"]):
        raise ValueError(f"period must be a quarter end YYYYMMDD (0331/0630/0930/1231), got {p['period']!r}")
    return p


def _apply_filters(frame: pd.DataFrame, p: dict, names: tuple[str, ...]) -> pd.DataFrame:
    """Tushare's filters. For statements start_date/end_date bound ann_date and period is end_date."""
    statement = "period" in names
    mask = np.ones(len(frame), dtype=bool)
    for name in names:
        if name not in p:
            continue
        if statement and name == "start_date":
            mask &= (frame["ann_date"] >= p[name]).to_numpy()
        elif statement and name == "end_date":
            mask &= (frame["ann_date"] <= p[name]).to_numpy()
        elif name == "period":
            mask &= (frame["end_date"] == p[name]).to_numpy()
        elif name in frame:
            mask &= (frame[name] == p[name]).to_numpy(dtype=bool, na_value=False)
    if "ts_code" in p:
        mask &= (frame["ts_code"] == p["ts_code"]).to_numpy()
    return frame[mask]


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    """Newest first, as Tushare returns; a restatement's update (flag 1) before its original."""
    by = ["end_date", "ann_date", "ts_code"] + (["update_flag"] if "update_flag" in frame else [])
    ascending = [False, False, True, False][: len(by)]
    return frame.sort_values(by, ascending=ascending, kind="stable").reset_index(drop=True)


def _concat(frames: list[pd.DataFrame], empty: pd.DataFrame) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else empty


def _empty_dtype(typ: str):
    return {"float": np.float64, "int": np.int64}.get(typ, object)
