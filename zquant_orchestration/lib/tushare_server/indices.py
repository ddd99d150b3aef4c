"""The local server's indices: ``index_basic``, ``index_weight``, ``index_daily``, ``index_dailybasic``.

Eight real indices, with Tushare's codes, names, markets, publishers, base dates and base
points (a real ``index_basic`` reply of 2023-04-27), computed from the synthetic market of
``market.py``:

- Constituents, on each rebalance day (the base day, then the first trading day of every
  month: the day Tushare's ``index_weight`` rows carry, doc 96's sample is CSI 300 on
  20180903): the index's pool (SSE indices .SH, SZSE ones .SZ, ChiNext 300/301/302, STAR
  688/689, CSI indices both exchanges) listed for at least 20 trading days and not stopped,
  ranked by a size score (float shares x the stock's price level, jittered each half year);
  the index takes its slice of that ranking (CSI 300 the first 300 of SH+SZ, CSI 500 the
  next 500, CSI 1000 the next 1000; the SSE Composite takes every eligible stock).
- Weights: float market value (close x float_share) on the rebalance day, in percent of the
  constituents' total, so they sum to 100. Published on the first trading day of each month.
- Levels, chain-linked: for rebalance days R_k <= D <= R_k+1,
      level(D) = L_k * sum_s w_s / 100 * A(s, D) / A(s, R_k)
  where A is the back-adjusted close (close * adj_factor) of the stock's last traded day on
  or before D (a suspended or stopped constituent keeps its last price), L_0 is the base
  point on the base day and L_k+1 = level(R_k+1). The L_k are computed once per index, so
  a day costs one sum over its constituents whatever range is asked.
- Bars: close as above, pre_close the previous day's close, open/high/low seeded around
  them (low <= open, close <= high); vol the sum of the traded constituents' ``daily`` vol,
  amount the sum of their vol x close (thousand CNY).
- ``index_dailybasic``: only the indices Tushare covers (doc 128: SSE Composite, SZSE
  Component, SSE 50, CSI 300, CSI 500, ChiNext), from 2004, summed over the constituents'
  ``daily_basic`` figures, in CNY and shares as Tushare gives them (daily_basic uses 10k).
  ``index_type`` and ``exp_date`` of ``index_basic`` are NULL.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .hashing import stable_seed, uniform
from .market import Market

INDEX_APIS = ("index_basic", "index_weight", "index_daily", "index_dailybasic")
INDEX_BASIC_COLUMNS = ["ts_code", "name", "fullname", "market", "publisher", "index_type", "category",
                       "base_date", "base_point", "list_date", "weight_rule", "desc", "exp_date"]
INDEX_WEIGHT_COLUMNS = ["index_code", "con_code", "trade_date", "weight"]
INDEX_DAILY_COLUMNS = ["ts_code", "trade_date", "close", "open", "high", "low", "pre_close", "change", "pct_chg",
                       "vol", "amount"]
INDEX_DAILYBASIC_COLUMNS = ["ts_code", "trade_date", "total_mv", "float_mv", "total_share", "float_share",
                            "free_share", "turnover_rate", "turnover_rate_f", "pe", "pe_ttm", "pb"]

MIN_LISTED_DAYS = 20          # trading days a stock is listed before it can join an index
DAILYBASIC_FROM = "20040101"  # doc 128: 数据历史从2004年1月
DAILY_TURNOVER_SALT = 45      # market.daily's turnover draw: index vol sums the same volumes
TTM_SALT = 51                 # market.daily_basic's ttm drift


@dataclass(frozen=True)
class IndexSpec:
    ts_code: str
    name: str
    fullname: str
    market: str
    publisher: str
    category: str
    base_date: str
    base_point: float
    list_date: str
    weight_rule: str
    desc: str
    pool: str          # SH, SZ, SHSZ, CHINEXT or STAR
    first: int         # the index's slice of the pool's size ranking: [first, first + size)
    size: int | None   # None: every eligible stock
    dailybasic: bool   # in index_dailybasic (doc 128)


_CSI, _FREE = "中证公司", "自由流通市值加权"
INDICES = (
    IndexSpec("000001.SH", "上证指数", "上证综合指数", "SSE", _CSI, "综合指数", "19901219", 100.0, "19910715",
              "总市值加权", "全部上交所上市股票", "SH", 0, None, True),
    IndexSpec("000016.SH", "上证50", "上证50指数", "SSE", _CSI, "规模指数", "20031231", 1000.0, "20040102",
              _FREE, "上交所规模最大的50只股票", "SH", 0, 50, True),
    IndexSpec("000300.SH", "沪深300", "沪深300指数", "SSE", _CSI, "规模指数", "20041231", 1000.0, "20050408",
              _FREE, "沪深两市规模最大的300只股票", "SHSZ", 0, 300, True),
    IndexSpec("000688.SH", "科创50", "上证科创板50成份指数", "SSE", _CSI, "规模指数", "20191231", 1000.0,
              "20200723", _FREE, "科创板规模最大的50只股票", "STAR", 0, 50, False),
    IndexSpec("000852.SH", "中证1000", "中证1000指数", "SSE", _CSI, "规模指数", "20041231", 1000.0, "20141017",
              _FREE, "沪深300和中证500之后规模排名靠前的1000只股票", "SHSZ", 800, 1000, False),
    IndexSpec("000905.SH", "中证500", "中证小盘500指数", "SSE", _CSI, "规模指数", "20041231", 1000.0, "20070115",
              _FREE, "沪深300之后规模排名靠前的500只股票", "SHSZ", 300, 500, True),
    IndexSpec("399001.SZ", "深证成指", "深证成份指数", "SZSE", "深交所", "规模指数", "19940720", 1000.0, "19950123",
              _FREE, "深交所规模最大的500只股票", "SZ", 0, 500, True),
    IndexSpec("399006.SZ", "创业板指", "创业板指数", "SZSE", "深交所", "规模指数", "20100531", 1000.0, "20100601",
              _FREE, "创业板规模最大的100只股票", "CHINEXT", 0, 100, True),
)
SPECS = {spec.ts_code: spec for spec in INDICES}


@dataclass
class Chain:
    """One index's rebalances: days, constituents, weights (percent), prices and levels there."""

    days: np.ndarray                 # trading-day index of each rebalance, ascending
    members: list[np.ndarray]        # stock positions per rebalance
    weights: list[np.ndarray]        # percent per member, summing to 100
    start_price: list[np.ndarray]    # A(s, R_k) per member
    level: np.ndarray                # L_k
    periods: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)  # see Indices._period


class Indices:
    APIS = INDEX_APIS

    def __init__(self, market: Market):
        self.market = market
        self._chains: dict[str, Chain] = {}
        codes = market.stocks.ts_code
        self._pools = {
            "SH": codes.str.endswith(".SH").to_numpy(),
            "SZ": codes.str.endswith(".SZ").to_numpy(),
            "SHSZ": (codes.str.endswith(".SH") | codes.str.endswith(".SZ")).to_numpy(),
            "CHINEXT": (codes.str.endswith(".SZ") & codes.str[:3].isin(["300", "301", "302"])).to_numpy(),
            "STAR": codes.str[:3].isin(["688", "689"]).to_numpy(),
        }
        days = market.open_days
        month = np.array([d[:6] for d in days])
        self._month_first = np.flatnonzero(np.r_[True, month[1:] != month[:-1]])
        half_year = np.array([int(d[:4]) * 2 + (d[4:6] >= "07") for d in days])
        self._half_year = half_year - half_year[0]

    # --- the APIs ---------------------------------------------------------------------------

    def index_basic(self, params: dict) -> pd.DataFrame:
        rows = [dict(ts_code=s.ts_code, name=s.name, fullname=s.fullname, market=s.market, publisher=s.publisher,
                     index_type=None, category=s.category, base_date=s.base_date, base_point=s.base_point,
                     list_date=s.list_date, weight_rule=s.weight_rule, desc=s.desc, exp_date=None)
                for s in INDICES if s.list_date <= self.market.as_of]
        frame = pd.DataFrame(rows, columns=INDEX_BASIC_COLUMNS)
        for key in ("ts_code", "name", "market", "publisher", "category"):
            if params.get(key):
                frame = frame[frame[key].isin(str(params[key]).split(","))]
        return frame.reset_index(drop=True)

    def index_weight(self, params: dict) -> pd.DataFrame:
        specs = self._specs(params.get("index_code"))
        frames = []
        for spec in specs:
            chain = self._chain(spec)
            published = np.isin(chain.days, self._month_first)
            for k in np.flatnonzero(published & self._in_range(chain.days, params)):
                codes = self.market.stocks.ts_code.to_numpy()[chain.members[k]]
                frames.append(pd.DataFrame({"index_code": spec.ts_code, "con_code": codes,
                                            "trade_date": self.market.open_days[chain.days[k]],
                                            "weight": np.round(chain.weights[k], 4)}))
        if not frames:
            return pd.DataFrame(columns=INDEX_WEIGHT_COLUMNS)
        frame = pd.concat(frames, ignore_index=True)
        return frame.sort_values(["trade_date", "index_code", "con_code"], ascending=[False, True, True],
                                 ignore_index=True)

    def index_daily(self, params: dict) -> pd.DataFrame:
        if not params.get("ts_code"):
            raise ValueError("index_daily needs ts_code (doc 95: ts_code 必选)")
        return self._per_index(params, self._bars, INDEX_DAILY_COLUMNS, first_day=None)

    def index_dailybasic(self, params: dict) -> pd.DataFrame:
        if not params.get("ts_code") and not params.get("trade_date"):
            raise ValueError("index_dailybasic needs trade_date or ts_code (doc 128: 至少要输入一个参数)")
        return self._per_index(params, self._basics, INDEX_DAILYBASIC_COLUMNS, first_day=DAILYBASIC_FROM,
                               covered_only=True)

    def truth(self, api_name: str, start: str, end: str) -> pd.DataFrame:
        if api_name == "index_basic":
            frame = self.index_basic({})
            return frame[(frame.list_date >= start) & (frame.list_date <= end)].reset_index(drop=True)
        if api_name == "index_weight":
            return self.index_weight({"start_date": start, "end_date": end})
        frames = [getattr(self, api_name)({"ts_code": s.ts_code, "start_date": start, "end_date": end})
                  for s in INDICES if api_name == "index_daily" or s.dailybasic]
        return pd.concat(frames, ignore_index=True)

    # --- query plumbing -----------------------------------------------------------------------

    def _specs(self, codes) -> list[IndexSpec]:
        listed = [s for s in INDICES if s.list_date <= self.market.as_of]
        if not codes:
            return listed
        wanted = set(str(codes).split(","))
        return [s for s in listed if s.ts_code in wanted]

    def _in_range(self, days: np.ndarray, params: dict) -> np.ndarray:
        dates = self.market.open_days[days]
        keep = dates <= self.market.as_of
        if params.get("trade_date"):
            return keep & (dates == str(params["trade_date"]))
        return (keep & (dates >= str(params.get("start_date") or "19000101"))
                & (dates <= str(params.get("end_date") or "99991231")))

    def _per_index(self, params: dict, build, columns: list[str], first_day: str | None,
                   covered_only: bool = False) -> pd.DataFrame:
        frames = []
        for spec in self._specs(params.get("ts_code")):
            if covered_only and not spec.dailybasic:
                continue
            chain = self._chain(spec)
            days = np.arange(chain.days[0], len(self.market.open_days))
            days = days[self._in_range(days, params)]
            if first_day:
                days = days[self.market.open_days[days] >= first_day]
            if len(days):
                frames.append(build(spec, chain, days[::-1]))
        if not frames:
            return pd.DataFrame(columns=columns)
        return pd.concat(frames, ignore_index=True)[columns]

    # --- constituents and levels ----------------------------------------------------------------

    def _chain(self, spec: IndexSpec) -> Chain:
        chain = self._chains.get(spec.ts_code)
        if chain is None:
            chain = self._chains[spec.ts_code] = self._build_chain(spec)
        return chain

    def _build_chain(self, spec: IndexSpec) -> Chain:
        m = self.market
        base = int(np.searchsorted(m.open_days, spec.base_date, side="left"))
        days = np.r_[base, self._month_first[self._month_first > base]]
        members, weights, prices = [], [], []
        level = np.empty(len(days))
        level[0] = spec.base_point
        for k, day in enumerate(days):
            S = self._members(spec, int(day))
            price, close = self._price(S, np.full(len(S), day))
            mv = close * m.float_share[S]
            members.append(S)
            weights.append(100 * mv / mv.sum() if len(S) else mv)
            prices.append(price)
            if k + 1 < len(days):
                end_price, _ = self._price(S, np.full(len(S), days[k + 1]))
                growth = float(weights[k] @ (end_price / price)) / 100 if len(S) else 1.0
                level[k + 1] = level[k] * growth
        return Chain(days=days, members=members, weights=weights, start_price=prices, level=level)

    def _members(self, spec: IndexSpec, day: int) -> np.ndarray:
        m = self.market
        eligible = self._pools[spec.pool] & (m.list_idx <= day - MIN_LISTED_DAYS) & (m.stop_idx > day)
        S = np.flatnonzero(eligible)
        if spec.size is None:
            return S
        jitter = uniform(m.seed[S], np.full(len(S), self._half_year[day]), 61)
        score = np.log(m.float_share[S]) + m.level[S] + 0.5 * (jitter - 0.5)
        ranked = S[np.argsort(-score, kind="stable")]
        return np.sort(ranked[spec.first:spec.first + spec.size])

    def _last_traded(self, S: np.ndarray, D: np.ndarray) -> np.ndarray:
        """The stock's last traded day on or before D (suspensions are single blocks)."""
        m = self.market
        D = np.minimum(D, m.stop_idx[S] - 1)
        away = m.suspended(S, D) & ~m._is_real_day(S, D)
        return np.where(away, (D // 5) * 5 - 1, D)

    def _price(self, S: np.ndarray, D: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(back-adjusted close, raw close) of each stock's last traded day on or before D."""
        close, factor = self.market._close_and_factor(S, self._last_traded(S, D))
        return close * factor, close

    def _period(self, chain: Chain, k: int) -> dict[str, np.ndarray]:
        """Per-day sums over period k's constituents, for every day of the period (kept: a
        full history is then computed once, and each further page or range is a lookup)."""
        cached = chain.periods.get(k)
        if cached is not None:
            return cached
        m = self.market
        last = chain.days[k + 1] if k + 1 < len(chain.days) else len(m.open_days)
        days = np.arange(chain.days[k], last)
        S = chain.members[k]
        n = len(S)
        SS, DD = np.tile(S, len(days)), np.repeat(days, n)
        price, close = self._price(SS, DD)
        vol = self._volumes(SS, DD)
        ttm = 1 + 0.1 * (uniform(m.seed[SS], DD // 60, TTM_SALT) - 0.5)
        ratio = price / np.tile(chain.start_price[k], len(days)) if n else price
        parts = {"level": ratio * np.tile(chain.weights[k], len(days)) / 100, "vol": vol, "amount": vol * close / 10,
                 "total_mv": close * m.total_share[SS], "float_mv": close * m.float_share[SS],
                 "total_share": m.total_share[SS], "float_share": m.float_share[SS], "free_share": m.free_share[SS],
                 "earn": m.eps[SS] * m.total_share[SS], "earn_ttm": m.eps[SS] * ttm * m.total_share[SS],
                 "book": m.bps[SS] * m.total_share[SS]}
        sums = {key: values.reshape(len(days), n).sum(axis=1) for key, values in parts.items()}
        sums["level"] = np.round(chain.level[k] * (sums["level"] if n else np.ones(len(days))), 4)
        chain.periods[k] = sums
        return sums

    def _sums(self, chain: Chain, days: np.ndarray, key: str) -> np.ndarray:
        period = np.searchsorted(chain.days, days, side="right") - 1
        out = np.empty(len(days))
        for k in np.unique(period):
            at = period == k
            out[at] = self._period(chain, int(k))[key][days[at] - chain.days[k]]
        return out

    def _volumes(self, SS: np.ndarray, DD: np.ndarray) -> np.ndarray:
        """Each (stock, day)'s ``daily`` vol; 0 where the stock did not trade."""
        m = self.market
        turnover = 0.3 + 4.0 * uniform(m.seed[SS], DD, DAILY_TURNOVER_SALT) ** 2
        vol = np.round(m.float_share[SS] * turnover, 2)
        real = m._is_real_day(SS, DD)
        if real.any():
            vol[real] = m._real_values(SS[real], DD[real], ["vol"])[0]
        live = (DD >= m.list_idx[SS]) & (DD < m.stop_idx[SS])
        traded = live & (~m.suspended(SS, DD) | real)
        return np.where(traded, vol, 0.0)

    def _bars(self, spec: IndexSpec, chain: Chain, days: np.ndarray) -> pd.DataFrame:
        close = self._sums(chain, days, "level")
        has_prev = days > chain.days[0]
        pre_close = np.full(len(days), spec.base_point)
        pre_close[has_prev] = self._sums(chain, days[has_prev] - 1, "level")
        seed = np.full(len(days), stable_seed(spec.ts_code), dtype=np.uint64)
        open_ = np.round(pre_close * np.exp(0.008 * (uniform(seed, days, 71) - 0.5)), 4)
        high = np.maximum(np.round(np.maximum(open_, close) * (1 + 0.008 * uniform(seed, days, 72)), 4),
                          np.maximum(open_, close))
        low = np.minimum(np.round(np.minimum(open_, close) * (1 - 0.008 * uniform(seed, days, 73)), 4),
                         np.minimum(open_, close))
        return pd.DataFrame({
            "ts_code": spec.ts_code, "trade_date": self.market.open_days[days], "close": close, "open": open_,
            "high": high, "low": low, "pre_close": pre_close, "change": np.round(close - pre_close, 4),
            "pct_chg": np.round((close / pre_close - 1) * 100, 4), "vol": np.round(self._sums(chain, days, "vol"), 2),
            "amount": np.round(self._sums(chain, days, "amount"), 3),
        })

    def _basics(self, spec: IndexSpec, chain: Chain, days: np.ndarray) -> pd.DataFrame:
        sums = {key: self._sums(chain, days, key) for key in
                ("total_mv", "float_mv", "total_share", "float_share", "free_share", "vol", "earn", "earn_ttm",
                 "book")}

        def ratio(num, den):
            return np.where(den > 0, np.round(num / np.where(den > 0, den, 1), 2), np.nan)

        # daily_basic's shares are 10k shares and its values 10k CNY; Tushare's index figures are units.
        return pd.DataFrame({
            "ts_code": spec.ts_code, "trade_date": self.market.open_days[days],
            "total_mv": np.round(sums["total_mv"] * 1e4, 2), "float_mv": np.round(sums["float_mv"] * 1e4, 2),
            "total_share": np.round(sums["total_share"] * 1e4), "float_share": np.round(sums["float_share"] * 1e4),
            "free_share": np.round(sums["free_share"] * 1e4),
            "turnover_rate": ratio(sums["vol"], sums["float_share"]),
            "turnover_rate_f": ratio(sums["vol"], sums["free_share"]),
            "pe": ratio(sums["total_mv"], sums["earn"]), "pe_ttm": ratio(sums["total_mv"], sums["earn_ttm"]),
            "pb": ratio(sums["total_mv"], sums["book"]),
        })
