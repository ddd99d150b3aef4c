"""``daily_tradable``: per stock and trading day, whether a backtest may fill an order
(ST, suspended, traded, at a price limit, days since listing; lib/tradable.py has the rules).

It reads what landed (``daily_bars``, ``stk_limit``, ``suspend_d``, ``namechange``,
``stock_basic``, ``trade_cal``) and makes no Tushare call. It exists when the three
optional datasets it needs are enabled (ZQUANT_DATASETS), and follows each new day by
declarative automation once those have landed.
"""

from collections.abc import Iterable

import dagster as dg
import pandas as pd

from zquant_orchestration.defs.warehouse.resources import WarehouseResource
from zquant_orchestration.lib import dates
from zquant_orchestration.lib.tradable import tradable_day

NEEDS = ("stk_limit", "suspend_d", "namechange")


def build_tradable_asset(trading_days: dg.PartitionsDefinition,
                         enabled: Iterable[str]) -> list[dg.AssetsDefinition]:
    """The asset, or none when a dataset it reads is not enabled."""
    if not set(NEEDS) <= set(enabled):
        return []

    @dg.asset(
        group_name="derived",
        kinds={"pandas", "sql"},
        partitions_def=trading_days,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=["daily_bars", "stk_limit", "suspend_d", "namechange", "stock_basic", "trade_cal"],
        pool="warehouse_daily_tradable",
        automation_condition=dg.AutomationCondition.eager(),
        description="Per stock and trading day: is_st, is_suspended, traded, at_up_limit, at_down_limit, "
                    "listed_days (lib/tradable.py), for refusing fills a backtest could not have made.",
    )
    def daily_tradable(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        wh = warehouse.get()
        days = context.partition_keys
        first, last = dates.span(days)
        calendar = wh.read("trade_cal", {"exchange": ["SSE"]})
        open_days = sorted(calendar[calendar.is_open == 1].cal_date.map(dates.iso))
        stocks, names = wh.read("stock_basic"), wh.read("namechange")
        frames = {table: _by_day(wh.read_days(table, first, last)) for table in ("daily_bars", "stk_limit",
                                                                                 "suspend_d")}
        missing = [d for d in days if d not in frames["daily_bars"]]
        if missing:
            raise dg.Failure(description=(
                f"daily_tradable: daily_bars has not landed {len(missing)} of the run's days "
                f"({', '.join(missing[:5])}): materialize daily_bars for them first"), allow_retries=False)
        rows = flagged_st = at_limit = 0
        for day in days:
            frame = tradable_day(day, open_days, stocks, names, frames["daily_bars"][day],
                                 frames["stk_limit"].get(day, _empty("stk_limit")),
                                 frames["suspend_d"].get(day, _empty("suspend_d")))
            rows += wh.replace_rows("daily_tradable", frame, {"trade_date": [day]})
            flagged_st += int(frame.is_st.sum())
            at_limit += int((frame.at_up_limit | frame.at_down_limit).sum())
        return dg.MaterializeResult(metadata={"rows": rows, "trading_days": len(days), "first_day": days[0],
                                              "last_day": days[-1], "st_stock_days": flagged_st,
                                              "limit_stock_days": at_limit})

    return [daily_tradable]


def _by_day(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    if frame.empty:
        return {}
    day = frame.trade_date.map(dates.iso)
    return {d: group for d, group in frame.groupby(day)}


def _empty(table: str) -> pd.DataFrame:
    columns = {"stk_limit": ["ts_code", "up_limit", "down_limit"], "suspend_d": ["ts_code", "suspend_type"]}
    return pd.DataFrame(columns=columns[table])
