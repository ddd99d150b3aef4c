"""Reference tables never shrink silently.

``trade_cal`` and ``stock_basic`` are replaced whole on each refresh, so one empty but
successful reply would delete every delisted stock, or an exchange's calendar. Before
anything is written, a refresh is refused with one line when:

- a list status that always has stocks at Tushare (L listed, D delisted) comes back empty,
  or an exchange's calendar does;
- the new rows lack stocks, or (exchange, cal_date) days, that the table holds.

Run config ``allow_removals: true`` accepts such a reply as it is (a stock Tushare really
withdrew); the removals are then logged and counted in the materialization's metadata.
"""

from __future__ import annotations

import json

import dagster as dg
import pandas as pd
from pydantic import Field

from zquant_orchestration.lib.dates import iso_or_none
from zquant_orchestration.lib.warehouse import Warehouse, day_columns

# L and D always hold thousands of stocks at Tushare. P (listing suspended) may rightly be
# empty: since the 2020 delisting reform the exchanges no longer suspend a listing first.
STATUSES_WITH_ROWS = {"L": "listed", "D": "delisted"}
EXAMPLES = 5


class ReferenceRunConfig(dg.Config):
    allow_removals: bool = Field(
        default=False,
        description="Accept a reply that drops rows the table holds (stocks, calendar days) or has none for a "
                    "list status or exchange that always has some. Off: such a refresh is refused, nothing written.")


def _force_hint(asset: str) -> str:
    config = {"ops": {asset: {"config": {"allow_removals": True}}}}
    return (f"nothing was written. Re-run later; if Tushare's reply is right, run {asset} with the config "
            f"{json.dumps(config)}")


def _refuse(line: str) -> None:
    # The same reply would come again on a retry minutes later: the next refresh (the
    # morning schedule) asks anew, and a user who knows the reply is right forces it.
    raise dg.Failure(description=line, allow_retries=False)


def guard_stock_list(context, wh: Warehouse, frames: dict[str, pd.DataFrame], allow_removals: bool) -> int:
    """Refuse (``dg.Failure``) a stock list that shrinks the table, unless allowed; the stocks it removes."""
    if not allow_removals:
        for status, name in STATUSES_WITH_ROWS.items():
            if frames[status].empty:
                _refuse(f"stock_basic(list_status={status}) returned no stocks, and Tushare always has {name} "
                        f"ones; {_force_hint('stock_basic')}")
    held = set(wh.read("stock_basic").ts_code)
    fetched = set().union(*(set(f.ts_code) for f in frames.values()))
    return _removals(context, "stock_basic", "stocks", sorted(held - fetched), len(held), allow_removals)


def guard_calendar(context, wh: Warehouse, frames: dict[str, pd.DataFrame], allow_removals: bool) -> int:
    """Refuse (``dg.Failure``) calendars that shrink the table, unless allowed; the days they remove."""
    if not allow_removals:
        for exchange, frame in frames.items():
            if frame.empty:
                _refuse(f"trade_cal(exchange={exchange}) returned no days, and every exchange has a calendar; "
                        f"{_force_hint('trade_cal')}")
    held = wh.read("trade_cal")
    held_days = set(zip(held.exchange, held.cal_date.map(iso_or_none), strict=True))
    fetched = set()
    for frame in frames.values():
        fetched.update(zip(frame.exchange, frame.cal_date.map(iso_or_none), strict=True))
    dropped = [f"{exchange} {day}" for exchange, day in sorted(held_days - fetched)]
    return _removals(context, "trade_cal", "calendar days", dropped, len(held_days), allow_removals)


def guard_rows(context, wh: Warehouse, table: str, keys: tuple[str, ...], frame: pd.DataFrame,
               allow_removals: bool) -> int:
    """Refuse (``dg.Failure``) a catalog reference table that comes back empty or lacks keys the
    table holds, unless allowed; the rows it removes."""
    if frame.empty and not allow_removals:
        _refuse(f"{table} returned no rows, and Tushare always has some; {_force_hint(table)}")
    held = wh.read(table)
    held_keys = set(_key_texts(held, table, keys))
    dropped = sorted(held_keys - set(_key_texts(frame, table, keys)))
    return _removals(context, table, "rows", dropped, len(held_keys), allow_removals)


def _key_texts(frame: pd.DataFrame, table: str, keys: tuple[str, ...]) -> list[str]:
    """Each row's key as one text, days as ISO whichever way the frame spells them."""
    if frame.empty:
        return []
    days = day_columns(table)
    parts = [frame[k].map(iso_or_none) if k in days else frame[k].astype(str) for k in keys]
    return [" ".join(values) for values in zip(*parts, strict=True)]


def _removals(context, asset: str, noun: str, dropped: list[str], held: int, allow_removals: bool) -> int:
    """Refuse a reply that drops ``dropped`` of the ``held`` rows, unless allowed; how many it drops."""
    if dropped and not allow_removals:
        _refuse(f"{asset}: the reply lacks {len(dropped)} of the {held} {noun} the table holds "
                f"({_examples(dropped)}); {_force_hint(asset)}")
    if dropped:
        context.log.warning(f"{asset}: allow_removals: removing {len(dropped)} {noun} Tushare no longer "
                            f"returns ({_examples(dropped)})")
    return len(dropped)


def _examples(items: list[str]) -> str:
    return ", ".join(items[:EXAMPLES]) + (", ..." if len(items) > EXAMPLES else "")
