"""The local server's reference tables: the calendar of each exchange and the stock list
(the real list plus synthetic delisted, paused and extra stocks).

The real calendar and stock list are the ones the product ships (``reference_data``), so
the server and the code location start from the same days and stocks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...reference_data import SSE_CALENDAR, STOCK_LIST
from .hashing import stable_seed

STOCK_BASIC_COLUMNS = ["ts_code", "symbol", "name", "area", "industry", "fullname", "enname", "cnspell", "market",
                       "exchange", "curr_type", "list_status", "list_date", "delist_date", "is_hs", "act_name",
                       "act_ent_type"]
TRADE_CAL_COLUMNS = ["exchange", "cal_date", "is_open", "pretrade_date"]

# Exchanges Tushare's trade_cal knows, with the first day each one traded. They all
# close on the mainland's public holidays, so they share the SSE calendar from that day.
EXCHANGE_FIRST_DAY = {
    "SSE": "19901219", "SZSE": "19910703", "SHFE": "19950417", "DCE": "19950417", "CZCE": "19950417",
    "CFFEX": "20100416", "INE": "20180326",
}


def load_calendar() -> pd.DataFrame:
    """The SSE calendar, every calendar day ascending; a missing pretrade_date is None."""
    cal = pd.read_csv(SSE_CALENDAR, dtype={"cal_date": str, "pretrade_date": str})
    cal["pretrade_date"] = cal.pretrade_date.where(cal.pretrade_date.notna(), None)
    return cal.sort_values("cal_date").reset_index(drop=True)


def trade_cal(calendar: pd.DataFrame, params: dict) -> pd.DataFrame:
    """Tushare's trade_cal: one exchange's days from its first, newest first."""
    exchange = params.get("exchange") or "SSE"
    if exchange not in EXCHANGE_FIRST_DAY:
        raise ValueError(f"unknown exchange {exchange!r}; one of {', '.join(EXCHANGE_FIRST_DAY)}")
    cal = calendar[calendar.cal_date >= EXCHANGE_FIRST_DAY[exchange]].copy()
    cal["exchange"] = exchange
    first = EXCHANGE_FIRST_DAY[exchange]
    cal.loc[cal.pretrade_date.notna() & (cal.pretrade_date < first), "pretrade_date"] = None
    if params.get("start_date"):
        cal = cal[cal.cal_date >= str(params["start_date"])]
    if params.get("end_date"):
        cal = cal[cal.cal_date <= str(params["end_date"])]
    if params.get("is_open") not in (None, ""):
        cal = cal[cal.is_open == int(params["is_open"])]
    return cal.sort_values("cal_date", ascending=False)[TRADE_CAL_COLUMNS].reset_index(drop=True)


def stock_basic(stocks: pd.DataFrame, as_of: str, params: dict) -> pd.DataFrame:
    """The stock list as it stood on ``as_of``: later listings absent, later delistings still L."""
    s = stocks[stocks.list_date <= as_of].copy()
    delisted = s.delist_date.notna() & (s.delist_date <= as_of)
    paused = (s.status_final == "P") & (s.stop_date <= as_of)
    s["list_status"] = np.where(delisted, "D", np.where(paused, "P", "L"))
    s.loc[~delisted, "delist_date"] = None
    wanted_status = params.get("list_status") or "L"
    s = s[s.list_status.isin(str(wanted_status).split(","))]
    for key in ("ts_code", "exchange", "market", "is_hs", "name"):
        if params.get(key):
            s = s[s[key].isin(str(params[key]).split(","))]
    return s.sort_values("ts_code")[STOCK_BASIC_COLUMNS].reset_index(drop=True)


def build_universe(open_days: np.ndarray, extra_stocks: int = 0) -> pd.DataFrame:
    """The real stock list plus synthetic delisted, paused and extra listed stocks.

    ``stop_date`` is the first day a stock no longer trades (delisting or a pause);
    ``status_final`` is its status at the end of the data.
    """
    real = pd.read_csv(STOCK_LIST, dtype=str, keep_default_na=False)
    real = real.replace({"": None})
    real["cnspell"] = None
    real["status_final"] = real.list_status
    real["stop_date"] = None
    used = set(real.symbol)
    rows = []

    def free_codes(prefixes: list[tuple[str, str]], count: int, salt: str):
        found = 0
        number = 0
        while found < count:
            prefix, suffix = prefixes[number % len(prefixes)]
            symbol = f"{prefix}{(stable_seed(f'{salt}{number}') % 1000):03d}"
            number += 1
            if symbol in used:
                continue
            used.add(symbol)
            found += 1
            yield symbol, suffix

    def day_between(lo: str, hi: str, key: str) -> str:
        a, b = np.searchsorted(open_days, lo), np.searchsorted(open_days, hi)
        return str(open_days[a + stable_seed(key) % max(b - a, 1)])

    board = {"SH": ("上交所", "SSE", "主板"), "SZ": ("深交所", "SZSE", "主板")}
    for n, (symbol, suffix) in enumerate(free_codes([("600", "SH"), ("000", "SZ"), ("601", "SH"), ("002", "SZ")],
                                                    160, "delisted")):
        code = f"{symbol}.{suffix}"
        listed = day_between("19930101", "20100101", code + "L")
        gone = day_between(str(int(listed[:4]) + 4) + "0101", "20240601", code + "D")
        rows.append(_synthetic_stock(code, symbol, f"退市样本{n:03d}", board[suffix], listed, gone, "D"))
    for n, (symbol, suffix) in enumerate(free_codes([("603", "SH"), ("300", "SZ")], 8, "paused")):
        code = f"{symbol}.{suffix}"
        listed = day_between("20050101", "20150101", code + "L")
        rows.append(_synthetic_stock(code, symbol, f"暂停样本{n:03d}", board[suffix], listed,
                                     day_between("20180101", "20230101", code + "P"), "P"))
    for n, (symbol, suffix) in enumerate(free_codes([("605", "SH"), ("301", "SZ"), ("688", "SH"), ("003", "SZ"),
                                                     ("689", "SH"), ("302", "SZ")], extra_stocks, "extra")):
        code = f"{symbol}.{suffix}"
        rows.append(_synthetic_stock(code, symbol, f"合成样本{n:04d}", board[suffix],
                                     day_between("19950101", "20200101", code + "L"), None, "L"))
    stocks = pd.concat([real, pd.DataFrame(rows)], ignore_index=True) if rows else real
    return stocks.sort_values("ts_code").reset_index(drop=True)


def _synthetic_stock(code, symbol, name, board, listed, stop, status) -> dict:
    _, exchange, market = board
    return {
        "ts_code": code, "symbol": symbol, "name": name, "area": "合成", "industry": "合成",
        "fullname": f"{name}股份有限公司", "enname": f"Synthetic {code}", "cnspell": None, "market": market,
        "exchange": exchange, "curr_type": "CNY", "list_status": "L", "list_date": listed,
        "delist_date": stop if status == "D" else None, "is_hs": "N", "act_name": None, "act_ent_type": None,
        "status_final": status, "stop_date": stop,
    }
