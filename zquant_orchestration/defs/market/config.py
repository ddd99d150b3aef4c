"""Run config of manual market runs: which stocks, and whether to refetch landed days.

The date range of a run is its partition range (UI: the launchpad's partition picker;
CLI: ``--partition-range``; GraphQL: the ``dagster/asset_partition_range_start/end``
tags). Dagster checks both the partition keys and this config at launch.
"""

import enum

import dagster as dg
from pydantic import Field

from zquant_orchestration.lib.stock_codes import load_stock_codes
from zquant_orchestration.lib.warehouse import default_url

# An enum, not a str: Dagster validates enum values when a run is launched, so a
# mistyped code is refused before the run exists, with the field's path in the message
# ("Value at path root:ops:daily_bars:config:stocks[1] not in enum type StockCode").
StockCode = enum.Enum("StockCode", {code: code for code in load_stock_codes(default_url())})


def codes(stocks: list[StockCode]) -> list[str]:
    return sorted({s.value for s in stocks})


class MarketRunConfig(dg.Config):
    stocks: list[StockCode] = Field(
        default_factory=list,
        description="Refetch only these ts_codes (e.g. ['600519.SH']) over the run's days, one call per "
                    "stock; the days must have landed for the whole market already. Empty: the whole market.")
    force_refresh: bool = Field(
        default=False,
        description="Refetch days the warehouse already holds. Off: landed days are skipped, so a re-run "
                    "of a range resumes where the last one stopped.")
