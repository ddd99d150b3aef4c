"""The ts_codes a run may name, known when the code location loads.

Run config names stocks as members of an enum built from this list, so that Dagster
itself rejects a mistyped or unknown code at launch (UI launchpad, CLI, GraphQL), naming
the field, before any run exists. The list is the shipped stock list merged with the
warehouse's ``stock_basic``; a stock listed since the last code reload becomes nameable
after the reference data lands and the code location is reloaded (as new trading days do).
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import inspect

from ..reference_data import STOCK_LIST
from .trading_calendar import warn_unreachable
from .warehouse import Warehouse

SHIPPED_STOCK_LIST = STOCK_LIST


def load_stock_codes(warehouse_url: str | None) -> list[str]:
    codes = set(pd.read_csv(SHIPPED_STOCK_LIST, usecols=["ts_code"]).ts_code)
    if warehouse_url:
        codes |= _from_warehouse(warehouse_url)
    return sorted(codes)


def _from_warehouse(url: str) -> set[str]:
    try:
        warehouse = Warehouse(url)
        if not inspect(warehouse.engine).has_table("stock_basic"):
            return set()
        codes = set(warehouse.query("SELECT DISTINCT ts_code FROM stock_basic").ts_code)
        warehouse.engine.dispose()
    except Exception as exc:  # the shipped list still names every stock listed when it was cut
        warn_unreachable(url, exc)
        return set()
    return codes
