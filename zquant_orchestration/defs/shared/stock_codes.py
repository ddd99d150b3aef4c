"""``StockCode``: the ts_codes a run's config may name, for every domain's run config."""

import enum

from zquant_orchestration.lib.stock_codes import load_stock_codes
from zquant_orchestration.lib.warehouse import default_url

# An enum, not a str: Dagster validates enum values when a run is launched, so a
# mistyped code is refused before the run exists, with the field's path in the message
# ("Value at path root:ops:daily_bars:config:stocks[1] not in enum type StockCode").
StockCode = enum.Enum("StockCode", {code: code for code in load_stock_codes(default_url())})


def codes(stocks: list[StockCode]) -> list[str]:
    return sorted({s.value for s in stocks})
