"""The trading-day market tables: ``daily_bars``, ``adj_factor``, ``daily_basic``.

Each market asset makes ONE ``trade_date`` call per day (plus pages), never one per
stock, and writes whole days, a batch of days per transaction (landing.py). A range run
materializes its partitions only when every day of it has landed, so Dagster never shows a
partition as materialized without its rows. A re-run skips the days already landed (whole,
by the above) unless its config says ``force_refresh``; a run with ``stocks`` refetches only
those stocks over days already landed (config.py).

Assets are built by ``build_market_assets`` over the trading days and the run config the
definitions are built with (their calendar and stock list are read then, not at import).
"""

import functools
import time
from datetime import timedelta

import dagster as dg

from zquant_orchestration.defs.shared.partitions import trading_day_partitions
from zquant_orchestration.defs.shared.stock_codes import codes, stock_code_enum
from zquant_orchestration.defs.tushare.policy import STEP_RETRY, tushare_pool
from zquant_orchestration.defs.tushare.resources import TushareResource
from zquant_orchestration.defs.warehouse.resources import WarehouseResource
from zquant_orchestration.lib import dates

from .checks import CHECK_NAMES, step_checks
from .config import market_run_config
from .landing import MarketTable, land_days, refresh_stocks
from .reference_assets import trade_cal

MARKET_TABLES = (
    MarketTable("daily_bars", "daily", "Unadjusted daily OHLCV of every stock that traded (Tushare `daily`)."),
    MarketTable("adj_factor", "adj_factor", "Adjustment factors of every listed stock (Tushare `adj_factor`)."),
    MarketTable("daily_basic", "daily_basic", "Daily valuation and turnover (Tushare `daily_basic`)."),
)

# Late if the latest trading day has not landed by 19:30 Shanghai (the schedule starts at
# 18:30). The policy's deadline ticks on weekdays; on a weekday holiday it reports late
# although nothing was due (Dagster's cron policies know no exchange calendar).
DAILY_BARS_FRESHNESS = dg.FreshnessPolicy.cron(
    deadline_cron="30 19 * * 1-5", lower_bound_delta=timedelta(hours=1), timezone="Asia/Shanghai")


def build_market_asset(table: MarketTable, trading_days: dg.PartitionsDefinition,
                       run_config: type[dg.Config]) -> dg.AssetsDefinition:
    @dg.asset(
        name=table.asset_name,
        description=table.description,
        group_name="market",
        kinds={"tushare", "sql"},
        partitions_def=trading_days,
        # One run per requested range (CLI --partition-range needs single_run); each day
        # still commits on its own, so a failure costs one re-run of the range, idempotently.
        backfill_policy=dg.BackfillPolicy.single_run(),
        # Not stock_basic: a trade_date call returns every stock that traded whatever the
        # stock list says, so the evening run fetches the day while the list refreshes
        # beside it; only the check against the listed universe waits for the list.
        deps=[trade_cal],
        retry_policy=STEP_RETRY,
        pool=tushare_pool(table.api_name),
        freshness_policy=DAILY_BARS_FRESHNESS if table.asset_name == "daily_bars" else None,
        check_specs=[dg.AssetCheckSpec(name, asset=table.asset_name) for name in CHECK_NAMES[table.asset_name]],
    )
    def market_asset(context: dg.AssetExecutionContext, config: run_config, tushare: TushareResource,
                     warehouse: WarehouseResource) -> dg.MaterializeResult:
        started = time.perf_counter()
        wh = warehouse.get()
        mark = tushare.stats_mark()
        days = context.partition_keys
        start, end = dates.span(days)
        if config.stocks:
            landed = refresh_stocks(context, table, tushare, wh, days, codes(config.stocks))
        else:
            landed = land_days(context, table, tushare, wh, days, config.force_refresh)
        land_seconds = time.perf_counter() - started
        context.log.info(f"{table.asset_name}: {landed['rows']} rows over {landed['days_fetched']} of "
                         f"{len(days)} trading days ({days[0]}..{days[-1]}) in {land_seconds:.1f}s")
        checks = step_checks(table.asset_name, wh, start, end)
        # Where the step's time went: landing (fetch and write overlap, so land_ms is less
        # than fetch_ms + write_ms), checks, and what is left of the step is Dagster's.
        timing = {"land_ms": round(land_seconds * 1000, 1),
                  "check_ms": round((time.perf_counter() - started - land_seconds) * 1000, 1)}
        return dg.MaterializeResult(
            metadata={**landed, "trading_days": len(days), "first_day": days[0], "last_day": days[-1],
                      **tushare.metadata_since(mark), **timing},
            check_results=checks,
        )

    return market_asset


def build_market_assets(trading_days: dg.PartitionsDefinition,
                        run_config: type[dg.Config]) -> tuple[dg.AssetsDefinition, ...]:
    """daily_bars, adj_factor, daily_basic over the given trading days."""
    return tuple(build_market_asset(t, trading_days, run_config) for t in MARKET_TABLES)


@functools.cache
def _process_market_assets() -> dict[str, dg.AssetsDefinition]:
    assets = build_market_assets(trading_day_partitions(), market_run_config(stock_code_enum()))
    return {t.asset_name: a for t, a in zip(MARKET_TABLES, assets, strict=True)}


def __getattr__(name: str):
    # daily_bars, adj_factor, daily_basic as attributes, for tests and tools that import them:
    # built at the first ask over this process's trading days.
    if name in {t.asset_name for t in MARKET_TABLES}:
        return _process_market_assets()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
