"""Adding a by-trade-date dataset takes its declaration and its data rule in the local server:
the table, the asset, its partitions, its checks and its landing come from the declaration.
Here ``limit_list_d`` (Tushare doc 298: the stocks that closed at a price limit) is added
without writing an asset."""

from __future__ import annotations

from datetime import time

import dagster as dg
import pandas as pd
import pytest

from zquant_orchestration.defs.market.assets import build_market_asset
from zquant_orchestration.defs.market.config import market_run_config
from zquant_orchestration.defs.shared.partitions import trading_day_partitions
from zquant_orchestration.defs.shared.stock_codes import stock_code_enum
from zquant_orchestration.lib import dates
from zquant_orchestration.lib.datasets import DatasetSpec, Fetch, Published
from zquant_orchestration.lib.tushare_server import FaultPlan, LocalTushareServer
from zquant_orchestration.lib.warehouse import Warehouse
from zquant_orchestration.lib.warehouse.tables import dataset_table

from .datasets_helpers import land
from .dialects import sqlite_url
from .market_helpers import materialize_reference, resources_for

LIMIT_LIST = DatasetSpec(
    "limit_list_d", "limit_list_d", Fetch.TRADE_DATE, ("ts_code", "trade_date"), 5000,
    Published(time(19, 0)), "Stocks that closed at their limit up (U) or down (D).", 298,
    date_column="trade_date", may_be_empty=True, required_values=("limit",),
    declared_columns=(("trade_date", "date"), ("ts_code", "str"), ("close", "float"), ("pct_chg", "float"),
                      ("limit", "str")))


def limit_list_rule(market, params: dict) -> pd.DataFrame:
    """The data rule: the day's bars that closed at the day's stk_limit price."""
    window = {k: params[k] for k in ("trade_date", "start_date", "end_date") if params.get(k)}
    bars = market.daily(window)
    limits = market.limits.stk_limit(window)
    day = bars.merge(limits, on=["ts_code", "trade_date"])
    up, down = day.close.round(2) == day.up_limit.round(2), day.close.round(2) == day.down_limit.round(2)
    at = day[up | down].assign(limit=lambda f: ["U" if u else "D" for u in up[up | down]])
    return at[["trade_date", "ts_code", "close", "pct_chg", "limit"]].reset_index(drop=True)


@pytest.fixture
def served(dataset):
    dataset.serve("limit_list_d", limit_list_rule)
    yield dataset
    dataset.stop_serving("limit_list_d")


@pytest.mark.slow  # a week of a new dataset under faults
def test_a_declared_dataset_with_a_server_rule_lands_equal_to_the_truth_under_faults(served, tmp_path):
    dataset = served
    table = dataset_table(LIMIT_LIST)
    assert [c.name for c in table.primary_key.columns] == ["trade_date", "ts_code"]
    asset = build_market_asset(LIMIT_LIST, trading_day_partitions(), market_run_config(stock_code_enum()))
    url = sqlite_url(tmp_path)
    with LocalTushareServer(dataset=dataset, faults=FaultPlan(rate=0.3, seed=5)) as server, \
            dg.instance_for_test() as instance:
        resources = resources_for(server, url)
        materialize_reference(resources, instance)
        result = land([asset], "2024-03-04", "2024-03-08", resources, instance)
        assert result.success
        checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
        assert checks == {"no_duplicate_keys": True}
        assert len(instance.get_materialized_partitions(dg.AssetKey("limit_list_d"))) == 5
        truth = dataset.truth("limit_list_d", "20240304", "20240308")
    got = Warehouse(url).read("limit_list_d")
    assert len(truth) > 50, "limit days every day"
    got["trade_date"] = got.trade_date.map(dates.compact)
    key = ["trade_date", "ts_code"]
    pd.testing.assert_frame_equal(got.sort_values(key).reset_index(drop=True)[list(truth.columns)],
                                  truth.sort_values(key).reset_index(drop=True), check_dtype=False)
