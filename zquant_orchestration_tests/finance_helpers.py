"""Shared helpers: run the finance assets against a local server and compare with its truth."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from zquant_orchestration.defs.finance.assets import FINANCE_ASSETS
from zquant_orchestration.defs.finance.resources import FinanceSettings
from zquant_orchestration.defs.finance.sensors import finance_disclosure_sensor
from zquant_orchestration.defs.market.reference_assets import stock_basic, trade_cal
from zquant_orchestration.lib.tushare_server import Dataset
from zquant_orchestration.lib.warehouse import Warehouse
from zquant_orchestration.lib.warehouse.tables import FINANCE_TABLES, version_keys

from .market_helpers import resources_for

DATE_COLUMNS = ("ann_date", "f_ann_date", "end_date")


def sample_universe(dataset: Dataset) -> list[str]:
    """Stocks with restated reports and delisted ones, plus a spread of the market."""
    income = dataset.truth("income", "20200331", "20241231")
    restated = sorted(income[income.update_flag == 1].ts_code.unique())[:6]
    delisted = dataset.market.stocks[dataset.market.stocks.list_status == "D"].ts_code.tolist()[:2]
    spread = sorted(income.ts_code.unique())[::500]
    return sorted(set(restated) | set(delisted) | set(spread) | {"600519.SH"})


def finance_resources(server, warehouse_url: str, **settings) -> dict:
    resources = resources_for(server, warehouse_url)
    resources["finance"] = FinanceSettings(**settings)
    return resources


def materialize_periods(first: str, last: str, resources: dict, instance, assets=FINANCE_ASSETS,
                        run_config: dict | None = None, raise_on_error: bool = True):
    tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    return dg.materialize([*assets, trade_cal, stock_basic], selection=list(assets), resources=resources,
                          instance=instance, tags=tags, run_config=run_config, raise_on_error=raise_on_error)


def execute_request(request: dg.RunRequest, resources: dict, instance, raise_on_error: bool = False):
    """Run what a sensor asked for, as the daemon would: its assets, config and range tags."""
    selection = [a for a in FINANCE_ASSETS if a.key in set(request.asset_selection)]
    return dg.materialize([*FINANCE_ASSETS, trade_cal, stock_basic], selection=selection, resources=resources,
                          instance=instance, tags=request.tags, run_config=request.run_config,
                          raise_on_error=raise_on_error)


def finance_normalized(frame: pd.DataFrame, api: str) -> pd.DataFrame:
    """Rows as Tushare returns them: YYYYMMDD dates, int update_flag, NaN for NULL; sorted by version."""
    frame = frame.copy()
    for column in DATE_COLUMNS:
        if column in frame:
            frame[column] = frame[column].map(lambda v: None if v is None or v != v else str(v).replace("-", ""))
    frame["update_flag"] = frame["update_flag"].astype(int)
    for column in frame.columns:
        if column not in (*DATE_COLUMNS, "ts_code", "report_type", "comp_type", "end_type", "update_flag"):
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
        elif frame[column].dtype != int:
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    keys = version_keys(api)
    return frame.sort_values(keys).reset_index(drop=True)


def warehouse_finance(url: str, api: str) -> pd.DataFrame:
    wh = Warehouse(url)
    frame = wh.read(api)
    wh.engine.dispose()
    return finance_normalized(frame, api)


def truth_finance(dataset, api: str, first: str, last: str, universe) -> pd.DataFrame:
    return finance_normalized(dataset.truth(api, first, last, ts_codes=list(universe)), api)


def assert_finance_equal(url: str, dataset, first: str, last: str, universe) -> None:
    for api in FINANCE_TABLES:
        got, want = warehouse_finance(url, api), truth_finance(dataset, api, first, last, universe)
        assert len(got) == len(want), f"{api}: {len(got)} rows in the warehouse, {len(want)} at the source"
        pd.testing.assert_frame_equal(got, want[list(got.columns)], check_dtype=False, obj=api)


def finance_tick(instance, resources, cursor=None):
    """One evaluation of the finance sensor, as the daemon makes it."""
    with dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor) as context:
        return finance_disclosure_sensor(context)


def finance_periods():
    from zquant_orchestration.defs.finance.partitions import report_periods

    return report_periods


def finance_assets():
    from zquant_orchestration.defs.finance.assets import FINANCE_ASSETS

    return list(FINANCE_ASSETS)
