"""Everything the local server knows, behind one ``query(api_name, params)``.

Market APIs come from ``market.Market``, statements from ``finance.FinanceBook``. Both
are pure functions of their options and ``as_of`` (the server's "today"), so a test can
build a second ``Dataset`` with the same options and get the exact truth the server holds.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd

from zquant_orchestration.lib.dates import compact

from .events import suspend_d
from .flows import FLOW_APIS, Flows
from .indices import INDEX_APIS, Indices
from .market import DATA_DIR, Market
from .names import namechange
from .universe import EXCHANGE_FIRST_DAY

FINANCE_APIS = ("income", "balancesheet", "cashflow", "fina_indicator")
SUPPORTED_APIS = (
    "trade_cal", "stock_basic", "daily", "adj_factor", "daily_basic",
    *FINANCE_APIS, *(f"{api}_vip" for api in FINANCE_APIS), "disclosure_date", *INDEX_APIS, *FLOW_APIS,
)
# Risk warnings, limits, suspensions and dividends, with the column that dates a row.
EVENT_APIS = {"namechange": "start_date", "stk_limit": "trade_date", "suspend_d": "trade_date", "dividend": "ex_date"}
SUPPORTED_APIS += tuple(EVENT_APIS)


# Whole-market days kept (about 0.5 MB each).
DAY_CACHED_APIS = ("daily", "adj_factor", "daily_basic", "moneyflow", "margin_detail", "stk_factor_pro")
DAYS_CACHED = 96


def default_as_of() -> str:
    """Today in Shanghai once the day's data would be published (16:00), else yesterday."""
    now = datetime.now(ZoneInfo("Asia/Shanghai"))
    day = now if now.hour >= 16 else now - timedelta(days=1)
    return compact(day)


class Dataset:
    def __init__(self, extra_stocks: int = 0, as_of: str | None = None):
        self.extra_stocks = extra_stocks
        self.market = Market(DATA_DIR, extra_stocks=extra_stocks, as_of=as_of or default_as_of())
        self._finance = None
        self._lock = threading.Lock()
        self._days: OrderedDict[tuple[str, str, str], pd.DataFrame] = OrderedDict()
        # Index and trading-flow APIs, derived from the market (indices.py, flows.py).
        self._derived = {api: source for source in (Indices(self.market), Flows(self.market)) for api in source.APIS}
        self._served: dict[str, Callable[[Market, dict], pd.DataFrame]] = {}

    def serve(self, api_name: str, rule: Callable[[Market, dict], pd.DataFrame]) -> None:
        """Answer ``api_name`` with ``rule(market, params)``: a new dataset's data rule. The
        rule takes ``trade_date`` or ``start_date``/``end_date`` (YYYYMMDD), as Tushare's APIs do."""
        self._served[api_name] = rule

    def stop_serving(self, api_name: str) -> None:
        self._served.pop(api_name, None)

    @property
    def as_of(self) -> str:
        return self.market.as_of

    def set_as_of(self, as_of: str) -> None:
        """Move the server's "today": later days and announcements become visible."""
        with self._lock:
            self.market.as_of = as_of
            if self._finance is not None:
                self._finance.set_as_of(as_of)

    @property
    def finance(self):
        with self._lock:
            if self._finance is None:
                from .finance import FinanceBook  # built on first use: the market alone starts faster

                self._finance = FinanceBook(self.market.stocks, DATA_DIR, as_of=self.market.as_of)
            return self._finance

    def query(self, api_name: str, params: dict) -> pd.DataFrame:
        """All rows of one call (no paging: the server pages). ValueError for bad parameters."""
        if api_name in self._served:
            return self._served[api_name](self.market, params)
        if api_name not in SUPPORTED_APIS:
            raise KeyError(api_name)
        if api_name in DAY_CACHED_APIS and set(params) - {"offset", "limit"} == {"trade_date"}:
            return self._whole_market_day(api_name, str(params["trade_date"]))
        if api_name in ("trade_cal", "stock_basic", "daily", "adj_factor", "daily_basic"):
            return getattr(self.market, api_name)(params)
        if api_name in self._derived:
            return getattr(self._derived[api_name], api_name)(params)
        if api_name in EVENT_APIS:
            m = self.market
            return {"namechange": lambda p: namechange(m, p), "stk_limit": m.limits.stk_limit,
                    "suspend_d": lambda p: suspend_d(m, p), "dividend": m.dividends.query}[api_name](params)
        return self.finance.query(api_name, params)

    def _whole_market_day(self, api_name: str, trade_date: str) -> pd.DataFrame:
        """A whole-market day, kept for the next server on this dataset: the tests start a
        server per test on one shared dataset and ask for the same days."""
        key = (api_name, trade_date, self.market.as_of)
        with self._lock:
            frame = self._days.get(key)
            if frame is not None:
                self._days.move_to_end(key)
        if frame is None:
            frame = getattr(self._derived.get(api_name, self.market), api_name)({"trade_date": trade_date})
            with self._lock:
                self._days[key] = frame
                while len(self._days) > DAYS_CACHED:
                    self._days.popitem(last=False)
        return frame.copy()

    def truth(self, api_name: str, start: str, end: str, ts_codes=None) -> pd.DataFrame:
        """Every row this server holds for ``api_name`` with its date in [start, end]
        (financial statements: of ``ts_codes`` only, when given)."""
        if api_name in self._served:
            return self._served[api_name](self.market, {"start_date": start, "end_date": end})
        if api_name == "trade_cal":
            return pd.concat([self.market.trade_cal({"exchange": ex, "start_date": start, "end_date": end})
                              for ex in EXCHANGE_FIRST_DAY], ignore_index=True)
        if api_name == "stock_basic":
            frame = self.market.stock_basic({"list_status": "L,D,P"})
            return frame[(frame.list_date >= start) & (frame.list_date <= end)].reset_index(drop=True)
        if api_name in ("daily", "adj_factor", "daily_basic"):
            return self.query(api_name, {"start_date": start, "end_date": end})
        if api_name in self._derived:
            return self._derived[api_name].truth(api_name, start, end)
        if api_name in EVENT_APIS:
            window = {"start_date": start, "end_date": end} if api_name in ("stk_limit", "suspend_d") else {}
            frame = self.market.dividends.visible() if api_name == "dividend" else self.query(api_name, window)
            day = frame[EVENT_APIS[api_name]]
            return frame[day.notna() & (day >= start) & (day <= end)].reset_index(drop=True)
        return self.finance.truth(api_name, start, end, ts_codes)
