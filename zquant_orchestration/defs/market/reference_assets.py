"""Reference data: the trading calendars and the stock list, each replaced whole per refresh,
never shrunk silently (reference.py)."""

from collections.abc import Iterable

import dagster as dg
import pandas as pd

from zquant_orchestration.defs.tushare.policy import STEP_RETRY, failing_fast_on_permanent_errors, tushare_pool
from zquant_orchestration.defs.tushare.resources import TushareResource
from zquant_orchestration.defs.warehouse.resources import WarehouseResource
from zquant_orchestration.lib.datasets import DATASETS, DatasetSpec, Fetch
from zquant_orchestration.lib.tushare import TushareUnavailableError

from .reference import STATUSES_WITH_ROWS, ReferenceRunConfig, guard_calendar, guard_rows, guard_stock_list
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


def build_reference_asset(spec: DatasetSpec) -> dg.AssetsDefinition:
    """A catalog reference dataset (``namechange``, ``index_basic``): the whole table, one call
    (or one per ``split_by`` value), replaced whole, never shrunk silently (reference.py)."""

    @dg.asset(name=spec.name, group_name="reference", kinds={"tushare", "sql"}, retry_policy=STEP_RETRY,
              pool=tushare_pool(spec.api),
              description=f"{spec.description} Tushare `{spec.api}`, {spec.points} points; replaced whole per refresh.")
    def reference_asset(context: dg.AssetExecutionContext, config: ReferenceRunConfig, tushare: TushareResource,
                        warehouse: WarehouseResource) -> dg.MaterializeResult:
        mark = tushare.stats_mark()
        calls = [dict([split]) for split in spec.split_by] or [{}]
        with failing_fast_on_permanent_errors(spec):
            frames = [whole_reply(f"{spec.api}({_describe(params)})", spec.name,
                                  tushare.query(spec.api, params, expect_rows=True))
                      for params in calls]
        frame = pd.concat(frames, ignore_index=True).drop_duplicates(ignore_index=True)
        repeated = frame.duplicated(list(spec.keys))
        if repeated.any():
            raise TushareUnavailableError(
                f"{spec.api} returned {int(repeated.sum())} repeated keys ({', '.join(spec.keys)}) with different "
                "values; nothing was written, re-run")
        wh = warehouse.get()
        removed = guard_rows(context, wh, spec.name, spec.keys, frame, config.allow_removals)
        rows = wh.replace_rows(spec.name, frame)
        context.log.info(f"{spec.name}: {rows} rows in {len(calls)} call(s)")
        return dg.MaterializeResult(metadata={"rows": rows, "rows_removed": removed, **tushare.metadata_since(mark)})

    return reference_asset


def _describe(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def build_reference_assets(enabled: Iterable[str]) -> list[dg.AssetsDefinition]:
    """The enabled catalog reference datasets."""
    return [build_reference_asset(DATASETS[n]) for n in enabled if DATASETS[n].fetch is Fetch.REFERENCE]
