"""Reference data: the trading calendars and the stock list, each replaced whole per refresh,
never shrunk silently (reference.py)."""

import dagster as dg
import pandas as pd

from zquant_orchestration.defs.tushare.policy import STEP_RETRY, failing_fast_on_permanent_errors, tushare_pool
from zquant_orchestration.defs.tushare.resources import TushareResource
from zquant_orchestration.defs.warehouse.resources import WarehouseResource
from zquant_orchestration.lib.tushare import TushareUnavailableError

from .reference import STATUSES_WITH_ROWS, ReferenceRunConfig, guard_calendar, guard_stock_list
from .replies import whole_reply

# The exchanges Tushare's trade_cal documents.
EXCHANGES = ("SSE", "SZSE", "CFFEX", "SHFE", "CZCE", "DCE", "INE")
LIST_STATUSES = {"L": "listed", "D": "delisted", "P": "paused"}


@dg.asset(group_name="reference", kinds={"tushare", "sql"}, retry_policy=STEP_RETRY, pool=tushare_pool("trade_cal"))
def trade_cal(context: dg.AssetExecutionContext, config: ReferenceRunConfig, tushare: TushareResource,
              warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Trading calendars of every exchange Tushare has; the SSE one drives the partitions.
    A refresh that would drop days the table holds is refused unless forced (reference.py)."""
    mark = tushare.stats_mark()
    with failing_fast_on_permanent_errors():
        frames = {ex: whole_reply(f"trade_cal(exchange={ex})", "trade_cal",
                                  tushare.query("trade_cal", {"exchange": ex}, expect_rows=True))
                  for ex in EXCHANGES}
    wh = warehouse.get()
    removed = guard_calendar(context, wh, frames, config.allow_removals)
    frame = pd.concat(frames.values(), ignore_index=True)
    rows = wh.replace_rows("trade_cal", frame)
    sse = frame[(frame.exchange == "SSE") & (frame.is_open == 1)]
    context.log.info(f"trade_cal: {rows} rows for {len(EXCHANGES)} exchanges, SSE known until {frame.cal_date.max()}")
    return dg.MaterializeResult(metadata={
        "rows": rows,
        "rows_by_exchange": {ex: int((frame.exchange == ex).sum()) for ex in EXCHANGES},
        "sse_open_days": len(sse),
        "last_calendar_day": str(frame.cal_date.max()),
        "calendar_days_removed": removed,
        **tushare.metadata_since(mark),
    })


@dg.asset(group_name="reference", kinds={"tushare", "sql"}, retry_policy=STEP_RETRY,
          pool=tushare_pool("stock_basic"))
def stock_basic(context: dg.AssetExecutionContext, config: ReferenceRunConfig, tushare: TushareResource,
                warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Every stock Tushare lists, in each list status (listed, delisted, paused). A refresh
    that would drop stocks the table holds is refused unless forced (reference.py)."""
    mark = tushare.stats_mark()
    with failing_fast_on_permanent_errors():
        frames = {status: whole_reply(f"stock_basic(list_status={status})", "stock_basic",
                                      tushare.query("stock_basic", {"list_status": status},
                                                    expect_rows=status in STATUSES_WITH_ROWS))
                  for status in LIST_STATUSES}
    frame = pd.concat(frames.values(), ignore_index=True)
    if frame.ts_code.duplicated().any():
        raise TushareUnavailableError(
            f"stock_basic returned {int(frame.ts_code.duplicated().sum())} stocks in two list statuses at once; "
            "nothing was written, re-run"
        )
    wh = warehouse.get()
    removed = guard_stock_list(context, wh, frames, config.allow_removals)
    rows = wh.replace_rows("stock_basic", frame)
    return dg.MaterializeResult(metadata={
        "rows": rows,
        "stocks_removed": removed,
        **{f"{name}_stocks": len(frames[status]) for status, name in LIST_STATUSES.items()},
        **tushare.metadata_since(mark),
    })
