"""The local server's trading-flow APIs: ``moneyflow``, ``top_list``, ``margin_detail`` and
``stk_factor_pro`` (in ``factors.py``), all derived from ``Market.daily`` and ``daily_basic``
so they agree with the bars a client lands from the same server.

- ``moneyflow`` (doc 170, from 2010): one row per stock in that day's ``daily``. The day's
  vol (lots) is split, in whole lots, into small/medium/large/extra-large buys, and again
  into sells, each side summing to the day's vol rounded to a lot; the amounts (10k CNY)
  split the day's amount in the same shares, each side summing to it within rounding.
  ``net_mf_*`` is the net of active orders, which Tushare computes from level-2 orders and
  says is not a sum of the buckets: here a seeded share of the day's vol and amount, within
  +-10%.
- ``top_list`` (doc 106, from 2005, trade_date required): per exchange (SH, SZ), the five stocks with
  the largest rise at or above 7% (reason ``日涨幅偏离值达到7%的前5只证券``), the five with
  the largest fall at or below -7% (``日跌幅偏离值达到7%的前5只证券``) and the five with the
  widest range at or above 15% of pre_close (``日振幅值达到15%的前5只证券``); a stock in
  two lists has two rows. Ties go to the lower ts_code. Amounts are CNY; the listed seats'
  buys and sells are seeded shares of the day's amount.
- ``margin_detail`` (doc 59, from 20100331, when margin trading started): a seeded 40% of
  SH/SZ stocks, from 120 trading days after listing, on the days they trade. Balances are
  closed-form levels (rzye a slowly moving share of the float market value, rqyl a share
  of the float shares) and the flows reconcile them with the previous traded day exactly:
  rzye = rzye(prev) + rzmre - rzche and rqyl = rqyl(prev) + rqmcl - rqchl. CNY and shares.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .factors import stk_factor_pro
from .hashing import uniform
from .market import Market

FLOW_APIS = ("moneyflow", "top_list", "margin_detail", "stk_factor_pro")
BUCKETS = ("sm", "md", "lg", "elg")
MONEYFLOW_COLUMNS = ["ts_code", "trade_date",
                     *(f"{side}_{b}_{unit}" for b in BUCKETS for side in ("buy", "sell") for unit in ("vol", "amount")),
                     "net_mf_vol", "net_mf_amount"]
TOP_LIST_COLUMNS = ["trade_date", "ts_code", "name", "close", "pct_change", "turnover_rate", "amount", "l_sell",
                    "l_buy", "l_amount", "net_amount", "net_rate", "amount_rate", "float_values", "reason"]
MARGIN_COLUMNS = ["trade_date", "ts_code", "name", "rzye", "rqye", "rzmre", "rqyl", "rzche", "rqchl", "rqmcl",
                  "rzrqye"]

MONEYFLOW_FROM = "20100101"   # doc 170: 数据开始于2010年
TOP_LIST_FROM = "20050101"    # doc 106: 数据历史2005年至今
MARGIN_FROM = "20100331"      # the first day of margin trading in Shanghai and Shenzhen
MARGIN_SHARE = 0.4            # of stocks eligible for margin trading
MARGIN_AFTER_LISTING = 120    # trading days
TOP_PER_LIST = 5
# (reason, column, threshold, direction): direction +1 ranks the largest values first.
TOP_REASONS = (
    ("日涨幅偏离值达到7%的前5只证券", "pct_chg", 7.0, 1),
    ("日跌幅偏离值达到7%的前5只证券", "pct_chg", -7.0, -1),
    ("日振幅值达到15%的前5只证券", "amplitude", 15.0, 1),
)


class Flows:
    APIS = FLOW_APIS

    def __init__(self, market: Market):
        self.market = market
        self._position = pd.Index(market.stocks.ts_code)
        self._names = market.stocks.name.to_numpy()

    def truth(self, api_name: str, start: str, end: str) -> pd.DataFrame:
        if api_name == "top_list":
            days = self.market.open_days[self.market.open_days_between(start, end)][::-1]
            frames = [self.top_list({"trade_date": d}) for d in days]
            return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=TOP_LIST_COLUMNS)
        return getattr(self, api_name)({"start_date": start, "end_date": end})

    def _positions(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        S = self._position.get_indexer(frame.ts_code)
        D = np.searchsorted(self.market.open_days, frame.trade_date.to_numpy(dtype=str))
        return S, D

    # --- moneyflow ------------------------------------------------------------------------

    def moneyflow(self, params: dict) -> pd.DataFrame:
        if not any(params.get(k) for k in ("ts_code", "trade_date", "start_date", "end_date")):
            raise ValueError("moneyflow needs ts_code or a date (doc 170: 股票和时间参数至少输入一个)")
        bars = self.market.daily(params)
        bars = bars[bars.trade_date >= MONEYFLOW_FROM].reset_index(drop=True)
        S, D = self._positions(bars)
        seed = self.market.seed[S]
        vol = np.round(bars.vol.to_numpy()).astype(np.int64)
        amount = bars.amount.to_numpy() / 10  # thousand CNY -> 10k CNY
        out = {"ts_code": bars.ts_code, "trade_date": bars.trade_date}
        for side, salt in (("buy", 100), ("sell", 110)):
            # Small orders dominate small caps, large orders large caps.
            size = np.clip((np.log10(self.market.float_share[S]) - 4) / 2.5, 0, 1)
            base = np.array([[0.45, 0.30, 0.17, 0.08], [0.25, 0.30, 0.27, 0.18]])
            weights = np.stack([(base[0, j] + (base[1, j] - base[0, j]) * size)
                                * (0.6 + 0.8 * uniform(seed, D, salt + j)) for j in range(4)], axis=1)
            shares = weights / weights.sum(axis=1, keepdims=True)
            lots = _whole_parts(vol, shares)
            for j, bucket in enumerate(BUCKETS):
                out[f"{side}_{bucket}_vol"] = lots[:, j]
                out[f"{side}_{bucket}_amount"] = np.round(amount * shares[:, j], 2)
        net = 0.2 * (uniform(seed, D, 120) - 0.5)
        out["net_mf_vol"] = np.round(vol * net).astype(np.int64)
        out["net_mf_amount"] = np.round(amount * net, 2)
        return pd.DataFrame(out)[MONEYFLOW_COLUMNS]

    # --- top_list ---------------------------------------------------------------------------

    def top_list(self, params: dict) -> pd.DataFrame:
        if not params.get("trade_date"):
            raise ValueError("top_list needs trade_date (doc 106: trade_date 必选)")
        if str(params["trade_date"]) < TOP_LIST_FROM:
            return pd.DataFrame(columns=TOP_LIST_COLUMNS)
        bars = self.market.daily({"trade_date": str(params["trade_date"])})
        bars = bars[bars.ts_code.str.endswith((".SH", ".SZ"))].copy()
        bars["amplitude"] = (bars.high - bars.low) / bars.pre_close * 100
        bars["exchange"] = bars.ts_code.str[-2:]
        picked = []
        for reason, column, threshold, direction in TOP_REASONS:
            hit = bars[bars[column] * direction >= threshold * direction].copy()
            hit["rank_key"] = -direction * hit[column]
            hit = hit.sort_values(["exchange", "rank_key", "ts_code"]).groupby("exchange").head(TOP_PER_LIST)
            picked.append(hit.assign(reason=reason))
        rows = pd.concat(picked, ignore_index=True)
        if params.get("ts_code"):
            rows = rows[rows.ts_code.isin(str(params["ts_code"]).split(","))]
        if rows.empty:
            return pd.DataFrame(columns=TOP_LIST_COLUMNS)
        rows = rows.sort_values(["ts_code", "reason"], ignore_index=True)
        basic = self.market.daily_basic({"trade_date": str(params["trade_date"]),
                                         "ts_code": ",".join(rows.ts_code.unique())}).set_index("ts_code")
        S, D = self._positions(rows)
        salt = np.array([[r for r, *_ in TOP_REASONS].index(x) for x in rows.reason]) * 10
        amount = rows.amount.to_numpy() * 1000  # thousand CNY -> CNY
        l_buy = np.round(amount * (0.04 + 0.26 * uniform(self.market.seed[S], D * 8 + salt, 130)), 2)
        l_sell = np.round(amount * (0.03 + 0.2 * uniform(self.market.seed[S], D * 8 + salt, 131)), 2)
        up = rows.pct_chg.to_numpy() > 0
        l_buy, l_sell = np.where(up, np.maximum(l_buy, l_sell), np.minimum(l_buy, l_sell)), \
            np.where(up, np.minimum(l_buy, l_sell), np.maximum(l_buy, l_sell))
        net = np.round(l_buy - l_sell, 2)
        return pd.DataFrame({
            "trade_date": rows.trade_date, "ts_code": rows.ts_code, "name": self._names[S], "close": rows.close,
            "pct_change": rows.pct_chg, "turnover_rate": basic.turnover_rate.reindex(rows.ts_code).to_numpy(),
            "amount": np.round(amount, 2), "l_sell": l_sell, "l_buy": l_buy, "l_amount": np.round(l_buy + l_sell, 2),
            "net_amount": net, "net_rate": np.round(net / amount * 100, 2),
            "amount_rate": np.round((l_buy + l_sell) / amount * 100, 2),
            "float_values": np.round(basic.circ_mv.reindex(rows.ts_code).to_numpy() * 1e4, 2),
            "reason": rows.reason,
        })[TOP_LIST_COLUMNS]

    # --- margin_detail --------------------------------------------------------------------------

    def margin_eligible(self, S: np.ndarray, D: np.ndarray) -> np.ndarray:
        m = self.market
        codes = m.stocks.ts_code.to_numpy()[S]
        exchange = np.char.endswith(codes.astype(str), ".SH") | np.char.endswith(codes.astype(str), ".SZ")
        first = max(int(np.searchsorted(m.open_days, MARGIN_FROM)), 0)
        return (exchange & (uniform(m.seed[S], np.zeros(len(S)), 140) < MARGIN_SHARE)
                & (D >= m.list_idx[S] + MARGIN_AFTER_LISTING) & (D >= first))

    def margin_detail(self, params: dict) -> pd.DataFrame:
        m = self.market
        bars = m.daily(params)
        S, D = self._positions(bars)
        keep = self.margin_eligible(S, D)
        bars, S, D = bars[keep].reset_index(drop=True), S[keep], D[keep]
        prev = np.maximum(m._previous_traded(S, D), 0)
        close = bars.close.to_numpy()
        prev_close, _ = m._close_and_factor(S, prev)
        rzye, rqyl = self._balances(S, D, close), self._lent(S, D)
        rzye_prev, rqyl_prev = self._balances(S, prev, prev_close), self._lent(S, prev)
        amount = bars.amount.to_numpy() * 1000  # CNY
        seed = m.seed[S]
        # Buys are a seeded share of the day's turnover, and at least what the balance grew by.
        rzmre = np.maximum(np.round(amount * (0.03 + 0.09 * uniform(seed, D, 141))),
                           rzye - rzye_prev + np.round(amount * 0.01))
        rzche = rzmre - (rzye - rzye_prev)
        rqmcl = np.maximum(np.round(rqyl * (0.01 + 0.05 * uniform(seed, D, 142))), rqyl - rqyl_prev)
        rqchl = rqmcl - (rqyl - rqyl_prev)
        rqye = np.round(rqyl * close, 2)
        return pd.DataFrame({
            "trade_date": bars.trade_date, "ts_code": bars.ts_code, "name": self._names[S], "rzye": rzye,
            "rqye": rqye, "rzmre": rzmre, "rqyl": rqyl, "rzche": rzche, "rqchl": rqchl, "rqmcl": rqmcl,
            "rzrqye": np.round(rzye + rqye, 2),
        })[MARGIN_COLUMNS]

    def _balances(self, S: np.ndarray, D: np.ndarray, close: np.ndarray) -> np.ndarray:
        """Financing balance (CNY): 1.5%-4.5% of the float value, drifting over months."""
        m = self.market
        share = 0.015 + 0.03 * uniform(m.seed[S], np.zeros(len(S)), 143)
        wave = 1 + 0.3 * np.sin(2 * np.pi * D / (150 + 250 * uniform(m.seed[S], np.zeros(len(S)), 144))
                                + 2 * np.pi * uniform(m.seed[S], np.zeros(len(S)), 145))
        return np.round(close * m.float_share[S] * 1e4 * share * wave)

    def _lent(self, S: np.ndarray, D: np.ndarray) -> np.ndarray:
        """Securities lent out (shares): 0.02%-0.22% of the float shares, drifting over months."""
        m = self.market
        share = 0.0002 + 0.002 * uniform(m.seed[S], np.zeros(len(S)), 146)
        wave = 1 + 0.5 * np.sin(2 * np.pi * D / (100 + 200 * uniform(m.seed[S], np.zeros(len(S)), 147))
                                + 2 * np.pi * uniform(m.seed[S], np.zeros(len(S)), 148))
        return np.round(m.float_share[S] * 1e4 * share * wave)

    def stk_factor_pro(self, params: dict) -> pd.DataFrame:
        return stk_factor_pro(self.market, params)


def _whole_parts(total: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """Split each total into whole parts in the given shares, summing exactly to the total
    (largest remainders get the leftover units)."""
    exact = total[:, None] * shares
    parts = np.floor(exact).astype(np.int64)
    short = total - parts.sum(axis=1)
    order = np.argsort(-(exact - parts), axis=1, kind="stable")
    bump = np.arange(shares.shape[1])[None, :] < short[:, None]
    np.put_along_axis(parts, order, np.take_along_axis(parts, order, axis=1) + bump, axis=1)
    return parts
