"""Data derived from the market tables in the warehouse: no Tushare calls.

``daily_hfq``: backward-adjusted bars, one trading-day partition per day, each day
replaced in one transaction. Forward-adjusted bars are the ``daily_qfq`` view (see
lib/adjust.py for why they are never stored).

``daily_factors``: lib/factors.py's set, per trading day. Partition D depends on the 60
trading days of ``daily_hfq`` before it (and 19 of ``daily_basic``) through its partition
mappings, and reads them, so every partition of a backfill is computed from exactly the
rows it would see on its own day; it refuses to run while any of them is missing.
"""

import functools

import dagster as dg
import pandas as pd

from zquant_orchestration.defs.shared.lazy import lazy_attributes
from zquant_orchestration.defs.shared.partitions import trading_day_partitions
from zquant_orchestration.defs.warehouse.resources import WarehouseResource
from zquant_orchestration.lib import dates, factors
from zquant_orchestration.lib.adjust import backward_adjusted
from zquant_orchestration.lib.warehouse import Warehouse

# Days per read: bounds memory on a ten-year backfill (about 5,500 rows a day).
CHUNK_DAYS = 20


def warehouse_pool(table: str) -> str:
    """One writer per derived table at a time (dagster.yaml gives every pool one slot)."""
    return f"warehouse_{table}"


def _adjusted_days(wh: Warehouse, days: list[str]) -> pd.DataFrame:
    """hfq rows of ``days``, or a Failure naming what is missing, before anything is written."""
    first, last = dates.span(days)
    bars = wh.read_days("daily_bars", first, last)
    factors = wh.read_days("adj_factor", first, last)
    bars["day"] = bars.trade_date.map(dates.iso)
    unlanded = sorted(set(days) - set(bars.day))
    if unlanded:
        raise dg.Failure(description=(
            f"daily_bars has not landed {len(unlanded)} of the run's days ({', '.join(unlanded[:5])}): "
            "materialize daily_bars for them first"), allow_retries=False)
    merged = bars.merge(factors[["ts_code", "trade_date", "adj_factor"]], on=["ts_code", "trade_date"], how="left")
    lacking = merged[merged.adj_factor.isna()]
    if len(lacking):
        example = lacking.iloc[0]
        raise dg.Failure(description=(
            f"adj_factor has no factor for {len(lacking)} bars of the run's days (e.g. {example.ts_code} on "
            f"{example.day}): materialize adj_factor for {', '.join(sorted(set(lacking.day))[:5])} first"),
            allow_retries=False)
    return backward_adjusted(merged)


def _by_day(frame: pd.DataFrame, days: list[str]):
    groups = dict(tuple(frame.groupby("day")))
    for day in days:
        yield day, groups.get(day, frame.iloc[0:0]).drop(columns="day")


def build_derived_assets(trading_days: dg.TimeWindowPartitionsDefinition) -> tuple[dg.AssetsDefinition, ...]:
    """daily_hfq and daily_factors over the given trading days (the definitions build them)."""

    @dg.asset(
        group_name="derived",
        kinds={"pandas", "sql"},
        partitions_def=trading_days,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=["daily_bars", "adj_factor"],
        pool=warehouse_pool("daily_hfq"),
        description="Backward-adjusted (hfq) daily bars, as Tushare's pro_bar(adj='hfq'); forward-adjusted "
                    "bars are the view daily_qfq, anchored at each stock's latest factor.",
    )
    def daily_hfq(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        wh = warehouse.get()
        days = context.partition_keys
        rows = 0
        for start in range(0, len(days), CHUNK_DAYS):
            chunk = days[start:start + CHUNK_DAYS]
            adjusted = _adjusted_days(wh, chunk)
            for day, frame in _by_day(adjusted, chunk):
                rows += wh.replace_rows("daily_hfq", frame, {"trade_date": [day]})
        return dg.MaterializeResult(metadata={"rows": rows, "trading_days": len(days), "first_day": days[0],
                                              "last_day": days[-1]})

    @dg.asset(
        group_name="derived",
        kinds={"pandas", "sql"},
        partitions_def=trading_days,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[dg.AssetDep("daily_hfq",
                          partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-factors.LOOKBACK_DAYS)),
              dg.AssetDep("daily_basic", partition_mapping=dg.TimeWindowPartitionMapping(
                  start_offset=-(factors.TURNOVER_WINDOW - 1)))],
        pool=warehouse_pool("daily_factors"),
        # Each new trading day once its 60-day lookback has landed (the automation sensor).
        automation_condition=dg.AutomationCondition.eager(),
        description="Momentum (20/60 d), volatility (20 d), average turnover (20 d) and valuation per stock and "
                    "trading day; definitions in lib/factors.py.",
    )
    def daily_factors(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        wh = warehouse.get()
        days = context.partition_keys
        all_days = trading_days.get_partition_keys()
        first_index = all_days.index(days[0])
        window = all_days[max(0, first_index - factors.LOOKBACK_DAYS):all_days.index(days[-1]) + 1]
        first, last = dates.span(window)
        for table in ("daily_hfq", "daily_basic"):
            missing = sorted(set(window) - wh.days_with_rows(table, first, last))
            if missing:
                raise dg.Failure(description=(
                    f"daily_factors of {days[0]}..{days[-1]} reads {table} from {window[0]} (60 trading days before); "
                    f"{len(missing)} of those days have not landed ({', '.join(missing[:5])}"
                    f"{', ...' if len(missing) > 5 else ''}): materialize {table} for them first"), allow_retries=False)
        hfq = wh.read_days("daily_hfq", first, last)[["ts_code", "trade_date", "close"]]
        basic = wh.read_days("daily_basic", first, last)
        as_dates = dates.to_dates(window)
        computed = factors.compute(hfq, basic, as_dates, as_dates[len(window) - len(days):])
        computed["day"] = computed.trade_date.map(dates.iso)
        rows = 0
        for day, frame in _by_day(computed, days):
            rows += wh.replace_rows("daily_factors", frame, {"trade_date": [day]})
        return dg.MaterializeResult(metadata={
            "rows": rows, "trading_days": len(days), "first_day": days[0], "last_day": days[-1],
            "lookback_from": window[0],
            **{f"{name}_missing_share": float(computed[name].isna().mean()) if len(computed) else 0.0
               for name in factors.FACTOR_COLUMNS}})

    return daily_hfq, daily_factors


@functools.cache
def _process_derived_assets() -> dict[str, dg.AssetsDefinition]:
    return {a.key.to_user_string(): a for a in build_derived_assets(trading_day_partitions())}


# daily_hfq and daily_factors as attributes, for tests and tools that import them: built
# at the first ask over this process's trading days.
__getattr__ = lazy_attributes(__name__, {name: functools.partial(lambda n: _process_derived_assets()[n], name)
                                                for name in ("daily_hfq", "daily_factors")})
