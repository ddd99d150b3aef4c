"""Run config of manual market runs: which stocks, and whether to refetch landed days.

The date range of a run is its partition range (UI: the launchpad's partition picker;
CLI: ``--partition-range``; GraphQL: the ``dagster/asset_partition_range_start/end``
tags). Dagster checks both the partition keys and this config at launch.
"""

import enum
import functools

import dagster as dg
from pydantic import Field

from zquant_orchestration.lib.stock_codes import load_stock_codes
from zquant_orchestration.lib.warehouse import default_url


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
    market_run_config.cache_clear()
    return stock_code_enum()


def codes(stocks: list[enum.Enum]) -> list[str]:
    return sorted({s.value for s in stocks})


@functools.cache
def market_run_config() -> type[dg.Config]:
    """The run config class of the market assets, over ``stock_code_enum()``."""
    StockCode = stock_code_enum()  # noqa: N806 - the enum's name is what Dagster's messages show

    class MarketRunConfig(dg.Config):
        stocks: list[StockCode] = Field(
            default_factory=list,
            description="Refetch only these ts_codes (e.g. ['600519.SH']) over the run's days, one call per "
                        "stock; the days must have landed for the whole market already. Empty: the whole market.")
        force_refresh: bool = Field(
            default=False,
            description="Refetch days the warehouse already holds. Off: landed days are skipped, so a re-run "
                        "of a range resumes where the last one stopped.")

    return MarketRunConfig


def __getattr__(name: str):
    # ``StockCode`` and ``MarketRunConfig`` as attributes, for tests and tools that import them.
    if name == "StockCode":
        return stock_code_enum()
    if name == "MarketRunConfig":
        return market_run_config()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
