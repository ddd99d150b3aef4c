"""The code location: every asset, check, job, sensor and resource, assembled in one place.

``defs`` is a ``@dg.definitions`` function: Dagster calls it when it loads the code location
(``dagster dev -m``, workspace.yaml, ``[tool.dagster]``), and only then are the trading
calendar, the stock list and the task file read. Importing this module opens no warehouse.
"""

import dagster as dg
import pyarrow as pa

from zquant_orchestration.defs.derived.assets import build_derived_assets
from zquant_orchestration.defs.derived.sensors import build_derived_automation_sensor
from zquant_orchestration.defs.derived.tradable import build_tradable_asset
from zquant_orchestration.defs.exports.parquet import build_parquet_export
from zquant_orchestration.defs.exports.qlib import build_qlib_export
from zquant_orchestration.defs.finance.assets import build_finance_assets
from zquant_orchestration.defs.finance.jobs import finance_job
from zquant_orchestration.defs.finance.partitions import report_period_partitions
from zquant_orchestration.defs.finance.resources import finance_settings_from_env
from zquant_orchestration.defs.finance.sensors import build_finance_disclosure_sensor
from zquant_orchestration.defs.market.assets import build_market_assets
from zquant_orchestration.defs.market.checks import MARKET_CHECKS, build_coverage_checks
from zquant_orchestration.defs.market.config import market_run_config
from zquant_orchestration.defs.market.jobs import daily_market_job, market_data_job, reference_data_job
from zquant_orchestration.defs.market.reference_assets import build_reference_assets, stock_basic, trade_cal
from zquant_orchestration.defs.market.schedules import build_schedules
from zquant_orchestration.defs.market.sensors import market_gap_sensor
from zquant_orchestration.defs.notifications.sensors import run_notification_sensor
from zquant_orchestration.defs.script_tasks.assets import load_script_tasks
from zquant_orchestration.defs.shared.partitions import load_trading_days
from zquant_orchestration.defs.shared.stock_codes import load_stock_code_enum
from zquant_orchestration.defs.tushare.resources import tushare_resource_from_env
from zquant_orchestration.defs.warehouse.resources import WarehouseResource
from zquant_orchestration.execution import build_executor
from zquant_orchestration.settings import get_settings


# Arrow's default allocator (mimalloc) holds on to memory that one thread allocated and
# another freed until the first allocates again, and that is how a market step works: its
# fetch thread decodes the day frames, its writing thread drops them once written. The C
# library's allocator gives that memory back, as fast, so a step's peak stays lower
# (docs/benchmarks.md). Chosen when the definitions are built, which every step does before
# it runs; ARROW_DEFAULT_MEMORY_POOL, where someone set it, still decides.
def _use_the_system_allocator() -> None:
    if not get_settings().arrow_default_memory_pool:
        pa.set_memory_pool(pa.system_memory_pool())


@dg.definitions
def defs() -> dg.Definitions:
    _use_the_system_allocator()
    # The calendar and the stock list as they are now (the warehouse's, else the shipped ones):
    # a reload of the code location picks up new trading days and listings.
    trading_days = load_trading_days()
    stock_code = load_stock_code_enum()
    # The optional datasets ZQUANT_DATASETS enables (lib/datasets): assets, checks and schedules.
    enabled = get_settings().datasets
    core_assets = [trade_cal, stock_basic, *build_reference_assets(enabled),
                   *build_market_assets(trading_days, market_run_config(stock_code), enabled),
                   *build_derived_assets(trading_days), *build_tradable_asset(trading_days, enabled),
                   *build_finance_assets(report_period_partitions(), stock_code),
                   build_parquet_export(trading_days), build_qlib_export(trading_days)]
    # Users' script tasks from $ZQUANT_TASKS_FILE (or ./tasks.yaml), each with its own sensor
    # (a switch per task): a bad file stops the load here.
    script_tasks = load_script_tasks(core_assets, trading_days)
    return dg.Definitions(
        assets=[*core_assets, *script_tasks.assets],
        asset_checks=[*MARKET_CHECKS, *build_coverage_checks(enabled)],
        jobs=[reference_data_job, market_data_job, daily_market_job, finance_job],
        schedules=list(build_schedules()),
        sensors=[market_gap_sensor, build_finance_disclosure_sensor(), run_notification_sensor,
                 build_derived_automation_sensor(), *script_tasks.sensors],
        resources={
            "tushare": tushare_resource_from_env(),
            "warehouse": WarehouseResource(),
            "finance": finance_settings_from_env(),
            "pipes_subprocess_client": dg.PipesSubprocessClient(),
        },
        # ZQUANT_EXECUTOR: steps in processes on the run's host (the default) or on Celery workers.
        executor=build_executor(),
    )
