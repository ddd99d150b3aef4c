"""What a market reply must hold before any of it is written.

A reply is garbage, and nothing of it is written, when it lacks a column of its table, holds
a row of another day or stock or a key twice, or leaves empty a value Tushare always fills
for a traded bar. Each raises ``TushareUnavailableError``: the step retries it, then fails
naming the API, the day (or stock) and the column. Columns a reply has beyond the table's
are ignored by the write.
"""

from __future__ import annotations

import pandas as pd

from zquant_orchestration.lib import dates
from zquant_orchestration.lib.tushare import TushareUnavailableError
from zquant_orchestration.lib.warehouse import TABLES

# The columns Tushare fills on every row of a traded day; the others it leaves empty where
# a value does not exist (pe of a loss maker, dv_ratio without dividends, limit_status).
# Not daily's `amount`: some bars of the early 1990s have none at Tushare, for good
# (waditu/tushare#915), and those days must still land. Nor change / pct_chg, which follow
# from close and pre_close.
REQUIRED_VALUES = {
    "daily": ("open", "high", "low", "close", "pre_close", "vol"),
    "adj_factor": ("adj_factor",),
    "daily_basic": ("close", "total_share", "float_share", "total_mv", "circ_mv"),
}


def validate_day(api_name: str, table_name: str, frame: pd.DataFrame, trade_date: str) -> None:
    """A whole-market reply of ``trade_date``: every column, that day only, each stock once, filled."""
    call, outcome = f"{api_name}(trade_date={trade_date})", "nothing was written for that day, re-run"
    _require_columns(call, table_name, frame, outcome)
    wrong_day = frame.trade_date.astype(str) != trade_date
    duplicated = frame.ts_code.duplicated()
    if wrong_day.any() or duplicated.any():
        raise TushareUnavailableError(
            f"{call} returned {int(wrong_day.sum())} rows of other days and {int(duplicated.sum())} repeated "
            f"stocks; {outcome}")
    _require_values(call, api_name, frame, outcome)


def validate_stock(api_name: str, table_name: str, frame: pd.DataFrame, code: str, days: list[str]) -> None:
    """One stock's reply over a run's days: every column, that stock and those days only, each day once, filled."""
    call, outcome = f"{api_name}(ts_code={code})", "nothing was written, re-run"
    _require_columns(call, table_name, frame, outcome)
    wanted = {dates.compact(d) for d in days}
    other_stock = frame.ts_code != code
    other_day = ~frame.trade_date.astype(str).isin(wanted)
    duplicated = frame.trade_date.duplicated()
    if other_stock.any() or other_day.any() or duplicated.any():
        raise TushareUnavailableError(
            f"{call} returned {int(other_stock.sum())} rows of other stocks, {int(other_day.sum())} of days "
            f"outside the run and {int(duplicated.sum())} repeated days; {outcome}")
    _require_values(call, api_name, frame, outcome)


def whole_reply(call: str, table_name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """A reference reply with every column of its table; an empty one may come without columns."""
    if frame.empty:
        return frame.reindex(columns=[c.name for c in TABLES[table_name].columns])
    _require_columns(call, table_name, frame, "nothing was written, re-run")
    return frame


def _require_columns(call: str, table_name: str, frame: pd.DataFrame, outcome: str) -> None:
    missing = [c.name for c in TABLES[table_name].columns if c.name not in frame.columns]
    if missing:
        raise TushareUnavailableError(
            f"{call} returned no {', '.join(missing)} column{'s' if len(missing) > 1 else ''}; {outcome}")


def _require_values(call: str, api_name: str, frame: pd.DataFrame, outcome: str) -> None:
    for column in REQUIRED_VALUES.get(api_name, ()):
        empty = frame[column].isna()
        if empty.any():
            n = int(empty.sum())
            raise TushareUnavailableError(
                f"{call} returned {n} row{'s' if n > 1 else ''} without {column} (e.g. {frame.ts_code[empty].iloc[0]}),"
                f" which Tushare fills for every traded bar; {outcome}")
