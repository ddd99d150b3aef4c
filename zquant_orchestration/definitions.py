"""The code location: every asset, check, job and resource, assembled in one place."""

import dagster as dg

from zquant_orchestration.defs.market.assets import (
    adj_factor,
    adj_factor_covers_daily_bars,
    daily_bars,
    daily_basic,
    stock_basic,
    trade_cal,
)
from zquant_orchestration.defs.market.jobs import market_data_job, reference_data_job
from zquant_orchestration.defs.tushare.resources import tushare_resource_from_env
from zquant_orchestration.defs.warehouse.resources import WarehouseResource

defs = dg.Definitions(
    assets=[trade_cal, stock_basic, daily_bars, adj_factor, daily_basic],
    asset_checks=[adj_factor_covers_daily_bars],
    jobs=[reference_data_job, market_data_job],
    resources={
        "tushare": tushare_resource_from_env(),
        "warehouse": WarehouseResource(),
    },
)
