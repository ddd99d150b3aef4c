"""What a reply must hold before any of it is written.

A reply is garbage, and nothing of it is written, when it lacks a column of its table, holds
a row of another day, stock or code, holds a key twice, or leaves empty a value Tushare
always fills (the declaration's ``required_values``). Each raises
``TushareUnavailableError``: the step retries it, then fails naming the API, the day (or
stock) and the column. Columns a reply has beyond the table's are ignored by the write. A
row repeated exactly, every value the same, says nothing twice and is dropped: Tushare's
``dividend`` is known to repeat rows so.
"""

from __future__ import annotations

import pandas as pd

from zquant_orchestration.lib import dates
from zquant_orchestration.lib.datasets import DatasetSpec
from zquant_orchestration.lib.tushare import TushareUnavailableError
from zquant_orchestration.lib.warehouse import TABLES


def validate_day(spec: DatasetSpec, frame: pd.DataFrame, wire_day: str) -> pd.DataFrame:
    """A whole-market reply of one day (``wire_day``, YYYYMMDD, in ``spec.date_column``):
    every column, that day only, each key once, filled."""
    call = f"{spec.api}({_day_param(spec)}={wire_day})"
    outcome = "nothing was written for that day, re-run"
    frame = _with_columns(call, spec.name, frame, outcome)
    wrong_day = frame[spec.date_column].astype(str) != wire_day
    frame = frame.drop_duplicates(ignore_index=True)
    duplicated = frame.duplicated([k for k in spec.keys if k != spec.date_column])
    if wrong_day.any() or duplicated.any():
        raise TushareUnavailableError(
            f"{call} returned {int(wrong_day.sum())} rows of other days and {int(duplicated.sum())} repeated "
            f"{_key_words(spec)}; {outcome}")
    _require_values(call, spec, frame, outcome)
    return frame


def validate_code(spec: DatasetSpec, frame: pd.DataFrame, code_column: str, code: str,
                  days: list[str]) -> pd.DataFrame:
    """One stock's or index's reply over a run's days: every column, that code and those days
    only, each key once, filled."""
    call, outcome = f"{spec.api}({code_column}={code})", "nothing was written, re-run"
    frame = _with_columns(call, spec.name, frame, outcome)
    wanted = {dates.compact(d) for d in days}
    other_code = frame[code_column] != code
    other_day = ~frame[spec.date_column].astype(str).isin(wanted)
    frame = frame.drop_duplicates(ignore_index=True)
    duplicated = frame.duplicated(list(spec.keys))
    if other_code.any() or other_day.any() or duplicated.any():
        raise TushareUnavailableError(
            f"{call} returned {int(other_code.sum())} rows of other codes, {int(other_day.sum())} of days "
            f"outside the run and {int(duplicated.sum())} repeated {_key_words(spec)}; {outcome}")
    _require_values(call, spec, frame, outcome)
    return frame


def whole_reply(call: str, table_name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """A reference reply with every column of its table; an empty one may come without columns."""
    return _with_columns(call, table_name, frame, "nothing was written, re-run")


def _with_columns(call: str, table_name: str, frame: pd.DataFrame, outcome: str) -> pd.DataFrame:
    columns = [c.name for c in TABLES[table_name].columns]
    if frame.empty:
        return frame.reindex(columns=list(dict.fromkeys([*frame.columns, *columns])))
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise TushareUnavailableError(
            f"{call} returned no {', '.join(missing)} column{'s' if len(missing) > 1 else ''}; {outcome}")
    return frame


def _require_values(call: str, spec: DatasetSpec, frame: pd.DataFrame, outcome: str) -> None:
    for column in spec.required_values:
        empty = frame[column].isna()
        if empty.any():
            n = int(empty.sum())
            example = frame[spec.keys[0]][empty].iloc[0]
            raise TushareUnavailableError(
                f"{call} returned {n} row{'s' if n > 1 else ''} without {column} (e.g. {example}),"
                f" which Tushare fills on every row; {outcome}")


def _day_param(spec: DatasetSpec) -> str:
    return "ex_date" if spec.date_column == "ex_date" else "trade_date"


def _key_words(spec: DatasetSpec) -> str:
    rest = [k for k in spec.keys if k != spec.date_column]
    return "stocks" if rest == ["ts_code"] else "keys (" + ", ".join(rest) + ")"
