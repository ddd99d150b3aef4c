"""Jobs over the market assets, for the CLI (`dagster job backfill`), the UI and schedules."""

import dagster as dg

from .assets import stock_basic, trade_cal

reference_data_job = dg.define_asset_job(
    "reference_data_job", selection=[trade_cal, stock_basic],
    description="Refresh the trading calendars and the stock list.",
)

market_data_job = dg.define_asset_job(
    # By key: the partitioned assets are built with the definitions (their calendar is read then).
    "market_data_job", selection=["daily_bars", "adj_factor", "daily_basic", "daily_hfq"],
    description="Daily bars, adjustment factors, valuation and adjusted bars for a trading day or a range.",
)
