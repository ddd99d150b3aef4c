"""Jobs over the market assets, for the CLI (`dagster job backfill`), the UI, the schedules and
the gap sensor. The trading-day assets are selected by group: they are built with the
definitions (their calendar and the enabled datasets are read then), and ``daily_hfq`` is
the derived package's, named by key."""

import dagster as dg

from zquant_orchestration.lib.datasets import DAY_GROUPS

from .checks import MARKET_CHECKS
from .reference_assets import stock_basic

TRADING_DAY_ASSETS = dg.AssetSelection.groups(*DAY_GROUPS) | dg.AssetSelection.assets("daily_hfq")

reference_data_job = dg.define_asset_job(
    "reference_data_job", selection=dg.AssetSelection.groups("reference"),
    description="Refresh the trading calendars, the stock list and the other enabled reference datasets.",
)

market_data_job = dg.define_asset_job(
    "market_data_job", selection=TRADING_DAY_ASSETS,
    description="Every enabled trading-day dataset and adjusted bars, for a trading day or a range.",
)

daily_market_job = dg.define_asset_job(
    "daily_market_job",
    selection=dg.AssetSelection.assets(stock_basic) | TRADING_DAY_ASSETS | dg.AssetSelection.checks(*MARKET_CHECKS),
    description="The stock list and, beside it, one trading day of every enabled dataset (the evening schedule).",
    # One day is a handful of calls and a second of writes: the steps run one after another
    # in the run's own process, which has already imported everything. The default
    # multiprocess executor would first start a forkserver that imports Dagster and this
    # code location again, seconds of CPU before the first row is fetched. Pools
    # (one slot per Tushare API) hold in this executor too.
    executor_def=dg.in_process_executor,
)
