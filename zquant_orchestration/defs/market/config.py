"""Run config of manual market runs: which stocks, and whether to refetch landed days.

The date range of a run is its partition range (UI: the launchpad's partition picker;
CLI: ``--partition-range``; GraphQL: the ``dagster/asset_partition_range_start/end``
tags). Dagster checks both the partition keys and this config at launch.
"""

import enum
import functools

import dagster as dg
from pydantic import Field

from zquant_orchestration.defs.shared.lazy import lazy_attributes
from zquant_orchestration.defs.shared.stock_codes import stock_code_enum


@functools.cache
def market_run_config(stock_code: type[enum.Enum]) -> type[dg.Config]:
    """The run config class of the market assets over the ``StockCode`` enum the definitions
    are built with."""

    class MarketRunConfig(dg.Config):
        stocks: list[stock_code] = Field(
            default_factory=list,
            description="Refetch only these ts_codes (e.g. ['600519.SH']) over the run's days, one call per "
                        "stock; the days must have landed for the whole market already. Empty: the whole market.")
        force_refresh: bool = Field(
            default=False,
            description="Refetch days the warehouse already holds. Off: landed days are skipped, so a re-run "
                        "of a range resumes where the last one stopped.")

    return MarketRunConfig


# ``MarketRunConfig`` as an attribute, for tests and tools that import it: over this
# process's stock list.
__getattr__ = lazy_attributes(__name__, {"MarketRunConfig": lambda: market_run_config(stock_code_enum())})
