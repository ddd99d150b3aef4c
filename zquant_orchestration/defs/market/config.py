"""Run config of manual market runs: which stocks, and whether to refetch landed days.

The date range of a run is its partition range (UI: the launchpad's partition picker;
CLI: ``--partition-range``; GraphQL: the ``dagster/asset_partition_range_start/end``
tags). Dagster checks both the partition keys and this config at launch.
"""

import dagster as dg
from pydantic import Field

from zquant_orchestration.defs.shared.stock_codes import StockCode


class MarketRunConfig(dg.Config):
    stocks: list[StockCode] = Field(
        default_factory=list,
        description="Refetch only these ts_codes (e.g. ['600519.SH']) over the run's days, one call per "
                    "stock; the days must have landed for the whole market already. Empty: the whole market.")
    force_refresh: bool = Field(
        default=False,
        description="Refetch days the warehouse already holds. Off: landed days are skipped, so a re-run "
                    "of a range resumes where the last one stopped.")
