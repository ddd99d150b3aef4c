"""``StockCode``: the ts_codes a run's config may name, for every domain's run config.

The stock list is read when the definitions are built (``load_stock_code_enum``), not at
import: importing a module opens no warehouse.
"""

import enum
import functools

from zquant_orchestration.lib.stock_codes import load_stock_codes
from zquant_orchestration.lib.warehouse import default_url

from .lazy import lazy_attributes


@functools.cache
def stock_code_enum() -> type[enum.Enum]:
    """``StockCode``: an enum, not a str, because Dagster validates enum values when a run is
    launched, so a mistyped code is refused before the run exists, with the field's path in the
    message ("Value at path root:ops:daily_bars:config:stocks[1] not in enum type StockCode").
    Its members are the stock list, read at the first call (when the definitions are built)."""
    return enum.Enum("StockCode", {code: code for code in load_stock_codes(default_url())})


def load_stock_code_enum() -> type[enum.Enum]:
    """The stock list read again, for a new build of the definitions."""
    stock_code_enum.cache_clear()
    return stock_code_enum()


def codes(stocks: list[enum.Enum]) -> list[str]:
    return sorted({s.value for s in stocks})


# ``StockCode`` as an attribute, for tests and tools that import it.
__getattr__ = lazy_attributes(__name__, {"StockCode": stock_code_enum})
