"""The trading-day datasets: ``daily_bars``, ``adj_factor``, ``daily_basic`` and every enabled
dataset of the catalog fetched by trading day, ex-date or code (``lib/datasets``).

A whole-market asset makes ONE call per day (plus pages), never one per stock, and writes
whole days, a batch of days per transaction (landing.py). A range run materializes its
partitions only when every day of it has landed, so Dagster never shows a partition as
materialized without its rows. A re-run skips the days already landed (whole, by the above)
unless its config says ``force_refresh``; a run with ``stocks`` refetches only those stocks
over days already landed (config.py). An index dataset calls once per configured code.

Assets are built by ``build_market_assets`` over the trading days, the run config and the
datasets the definitions are built with (read then, not at import).
"""

import functools
import time
from collections.abc import Iterable
from datetime import timedelta

import dagster as dg

from zquant_orchestration.defs.shared.lazy import lazy_attributes
from zquant_orchestration.defs.shared.partitions import trading_day_partitions
from zquant_orchestration.defs.shared.stock_codes import codes, stock_code_enum
from zquant_orchestration.defs.tushare.policy import STEP_RETRY, tushare_pool
from zquant_orchestration.defs.tushare.resources import TushareResource
from zquant_orchestration.defs.warehouse.resources import WarehouseResource
from zquant_orchestration.lib import dates
from zquant_orchestration.lib.datasets import DATASETS, DatasetSpec, Fetch
from zquant_orchestration.settings import get_settings

from .checks import check_names, step_checks
from .config import market_run_config
from .landing import land_codes, land_days, refresh_stocks
from .reference_assets import trade_cal

CORE_DAY_DATASETS = ("daily_bars", "adj_factor", "daily_basic")

# Late if the latest trading day has not landed by 19:30 Shanghai (the schedule starts at
# 18:30). The policy's deadline ticks on weekdays; on a weekday holiday it reports late
# although nothing was due (Dagster's cron policies know no exchange calendar).
DAILY_BARS_FRESHNESS = dg.FreshnessPolicy.cron(
    deadline_cron="30 19 * * 1-5", lower_bound_delta=timedelta(hours=1), timezone="Asia/Shanghai")


def day_datasets(enabled: Iterable[str]) -> tuple[DatasetSpec, ...]:
    """The core trading-day datasets, then the enabled ones partitioned by trading day."""
    chosen = set(CORE_DAY_DATASETS) | set(enabled)
    return tuple(s for s in DATASETS.values() if s.name in chosen and s.partitioned_by_day)


def build_market_asset(spec: DatasetSpec, trading_days: dg.PartitionsDefinition,
                       run_config: type[dg.Config]) -> dg.AssetsDefinition:
    @dg.asset(
        name=spec.name,
        description=f"{spec.description} Tushare `{spec.api}`, {spec.points} points; published {spec.published}.",
        group_name=spec.group,
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
        pool=tushare_pool(spec.api),
        freshness_policy=DAILY_BARS_FRESHNESS if spec.name == "daily_bars" else None,
        check_specs=[dg.AssetCheckSpec(name, asset=spec.name) for name in check_names(spec)],
        tags={"zquant/fetch": spec.fetch.value},
    )
    def market_asset(context: dg.AssetExecutionContext, config: run_config, tushare: TushareResource,
                     warehouse: WarehouseResource) -> dg.MaterializeResult:
        started = time.perf_counter()
        wh = warehouse.get()
        mark = tushare.stats_mark()
        days = context.partition_keys
        start, end = dates.span(days)
        if config.stocks and spec.fetch is not Fetch.TRADE_DATE:
            raise dg.Failure(description=(f"stocks: {spec.name} is fetched by {spec.fetch.value}, not per stock; "
                                          "run it without `stocks`"), allow_retries=False)
        if spec.fetch is Fetch.PER_CODE:
            landed = land_codes(context, spec, tushare, wh, days, getattr(get_settings(), spec.codes_setting))
        elif config.stocks:
            landed = refresh_stocks(context, spec, tushare, wh, days, codes(config.stocks))
        else:
            landed = land_days(context, spec, tushare, wh, days, config.force_refresh)
        land_seconds = time.perf_counter() - started
        context.log.info(f"{spec.name}: {landed['rows']} rows over {landed['days_fetched']} of "
                         f"{len(days)} trading days ({days[0]}..{days[-1]}) in {land_seconds:.1f}s")
        checks = step_checks(spec, wh, start, end)
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


def build_market_assets(trading_days: dg.PartitionsDefinition, run_config: type[dg.Config],
                        enabled: Iterable[str] = ()) -> tuple[dg.AssetsDefinition, ...]:
    """daily_bars, adj_factor, daily_basic and the ``enabled`` trading-day datasets."""
    return tuple(build_market_asset(s, trading_days, run_config) for s in day_datasets(enabled))


@functools.cache
def _process_market_assets() -> dict[str, dg.AssetsDefinition]:
    specs = day_datasets(())
    assets = build_market_assets(trading_day_partitions(), market_run_config(stock_code_enum()))
    return {s.name: a for s, a in zip(specs, assets, strict=True)}


# daily_bars, adj_factor, daily_basic as attributes, for tests and tools that import them:
# built at the first ask over this process's trading days.
__getattr__ = lazy_attributes(__name__, {name: functools.partial(lambda n: _process_market_assets()[n], name)
                                                for name in CORE_DAY_DATASETS})
