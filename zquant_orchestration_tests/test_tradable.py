"""``daily_tradable`` against the local server's own truth: the ST flag against the server's
ST episodes, suspensions against the days it hides a bar, limit flags against its limit
prices, listed days against its calendar; and against the real fixtures' limit days."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from zquant_orchestration.defs.derived.tradable import build_tradable_asset
from zquant_orchestration.defs.shared.partitions import trading_day_partitions
from zquant_orchestration.lib import dates
from zquant_orchestration.lib.warehouse import Warehouse

from .datasets_helpers import day_assets, land, land_reference
from .dialects import sqlite_url
from .market_helpers import materialize_reference, resources_for

pytestmark = pytest.mark.slow  # thirteen days of four datasets landed first

# Real bars of 000858.SZ close at the limit up on 09-26, 09-27 and 09-30, and 9.98% down,
# just short of the limit, on 10-09. Thirteen trading days hold hundreds of ST, suspended,
# limit-up and limit-down stock-days each.
FIRST, LAST = "2024-09-12", "2024-10-09"


@pytest.fixture(scope="module")
def landed(tmp_path_factory, dataset):
    from zquant_orchestration.lib.tushare_server import LocalTushareServer

    url = sqlite_url(tmp_path_factory.mktemp("tradable"))
    with pytest.MonkeyPatch.context() as env, LocalTushareServer(dataset=dataset) as server:
        env.setenv("ZQUANT_DATASETS", "stk_limit,suspend_d,namechange")
        resources = resources_for(server, url)
        (tradable,) = build_tradable_asset(trading_day_partitions(), ("stk_limit", "suspend_d", "namechange"))
        assets = day_assets("stk_limit", "suspend_d")
        with dg.instance_for_test() as instance:
            materialize_reference(resources, instance)
            assert land_reference(("namechange",), resources, instance).success
            assert land([assets[n] for n in ("daily_bars", "stk_limit", "suspend_d")], FIRST, LAST, resources,
                        instance).success
            tags = {"dagster/asset_partition_range_start": FIRST, "dagster/asset_partition_range_end": LAST}
            assert dg.materialize([tradable], resources=resources, instance=instance, tags=tags).success
    wh = Warehouse(url)
    frame = wh.read("daily_tradable")
    wh.engine.dispose()
    frame["day"] = frame.trade_date.map(dates.compact)
    return frame.set_index(["ts_code", "day"]).sort_index(), dataset


def _positions(dataset, frame):
    m = dataset.market
    stocks_at = pd.Index(m.stocks.ts_code).get_indexer(frame.index.get_level_values("ts_code"))
    days_at = np.array([m.day_index(d) for d in frame.index.get_level_values("day")])
    return stocks_at, days_at


def test_every_listed_stock_has_a_row_each_day_with_its_listed_days(landed):
    frame, dataset = landed
    m = dataset.market
    days = [d for d in m.open_days if dates.compact(FIRST) <= d <= dates.compact(LAST)]
    assert sorted(set(frame.index.get_level_values("day"))) == days
    stocks_at, days_at = _positions(dataset, frame)
    assert (stocks_at >= 0).all()
    listed = m.stocks.list_date.to_numpy(dtype=str)[stocks_at]
    first_open = np.searchsorted(m.open_days, listed, side="left")
    assert (frame.listed_days.to_numpy() == days_at - first_open + 1).all()
    stocks = dataset.query("stock_basic", {"list_status": "L,D,P"})
    for day in (days[0], days[-1]):
        live = stocks[(stocks.list_date <= day) & (stocks.delist_date.isna() | (stocks.delist_date > day))]
        assert set(frame.xs(day, level="day").index) == set(live.ts_code)


def test_st_follows_the_servers_risk_warnings(landed):
    frame, dataset = landed
    stocks_at, days_at = _positions(dataset, frame)
    truth = dataset.market.is_st(stocks_at, days_at)
    assert truth.sum() > 100, "the month has ST stock-days"
    assert (frame.is_st.to_numpy() == truth).all()


def test_suspended_means_the_server_hid_the_bar_and_said_so(landed):
    frame, dataset = landed
    stocks_at, days_at = _positions(dataset, frame)
    truth = dataset.market.suspended_live(stocks_at, days_at)
    assert truth.sum() > 100, "the month has suspended stock-days"
    assert (frame.is_suspended.to_numpy() == truth).all()
    assert not (frame.is_suspended.astype(bool) & frame.traded.astype(bool)).any()


def test_limit_flags_follow_the_close_against_the_days_limits(landed):
    frame, dataset = landed
    bars = dataset.truth("daily", dates.compact(FIRST), dates.compact(LAST)).set_index(["ts_code", "trade_date"])
    limits = dataset.truth("stk_limit", dates.compact(FIRST), dates.compact(LAST))
    limits = limits.set_index(["ts_code", "trade_date"]).reindex(frame.index)
    close = bars.close.reindex(frame.index)
    up = (close.round(2) == limits.up_limit.round(2)).to_numpy()
    down = (close.round(2) == limits.down_limit.round(2)).to_numpy()
    assert up.sum() > 100 and down.sum() > 100, "the month has limit days both ways"
    assert (frame.at_up_limit.to_numpy() == up).all()
    assert (frame.at_down_limit.to_numpy() == down).all()


def test_the_real_limit_days_of_a_fixture_stock(landed):
    frame, _ = landed
    wuliangye = frame.xs("000858.SZ", level="ts_code")
    assert wuliangye.loc[["20240926", "20240927", "20240930"], "at_up_limit"].tolist() == [1, 1, 1]
    assert wuliangye.loc["20241009", ["at_down_limit", "is_st", "is_suspended"]].tolist() == [0, 0, 0]
    assert wuliangye.loc["20241009", "close"] == 147.68 and wuliangye.loc["20241009", "down_limit"] == 147.65
