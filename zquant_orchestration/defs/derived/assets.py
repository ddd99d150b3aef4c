"""Data derived from the market tables in the warehouse: no Tushare calls.

``daily_hfq``: backward-adjusted bars, one trading-day partition per day, each day
replaced in one transaction. Forward-adjusted bars are the ``daily_qfq`` view (see
lib/adjust.py for why they are never stored).
"""

from datetime import date

import dagster as dg
import pandas as pd

from zquant_orchestration.defs.market.assets import adj_factor, daily_bars
from zquant_orchestration.defs.market.partitions import trading_days
from zquant_orchestration.defs.warehouse.resources import WarehouseResource
from zquant_orchestration.lib.adjust import backward_adjusted
from zquant_orchestration.lib.warehouse import Warehouse, to_iso_date

# Days per read: bounds memory on a ten-year backfill (about 5,500 rows a day).
CHUNK_DAYS = 20


def warehouse_pool(table: str) -> str:
    """One writer per derived table at a time (dagster.yaml gives every pool one slot)."""
    return f"warehouse_{table}"


@dg.asset(
    group_name="derived",
    kinds={"pandas", "sql"},
    partitions_def=trading_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[daily_bars, adj_factor],
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


def _adjusted_days(wh: Warehouse, days: list[str]) -> pd.DataFrame:
    """hfq rows of ``days``, or a Failure naming what is missing, before anything is written."""
    first, last = date.fromisoformat(days[0]), date.fromisoformat(days[-1])
    bars = wh.read_days("daily_bars", first, last)
    factors = wh.read_days("adj_factor", first, last)
    bars["day"] = bars.trade_date.map(to_iso_date)
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
        yield day, groups[day].drop(columns="day")
