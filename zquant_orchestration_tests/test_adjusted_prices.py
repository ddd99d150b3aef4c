"""Adjusted prices against values computed independently: Tushare's own `pro_bar`, run on
the same source, and the real fixture bars and adj_factor snapshots (000001.SZ paid a
dividend on 2020-05-28: its factor steps from 109.169 to 111.048)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import tushare as ts

from zquant_orchestration.defs.derived.assets import daily_hfq
from zquant_orchestration.lib.tushare_server import LOCAL_TOKEN, LocalTushareServer
from zquant_orchestration.lib.warehouse import Warehouse

from .dialects import sqlite_url, warehouse_urls
from .market_helpers import MARKET_ASSETS, materialize_range, materialize_reference, resources_for
from .shared_landing import landed_copy

DATA = Path(__file__).resolve().parents[1] / "zquant_orchestration" / "lib" / "tushare_server" / "data"
REAL_STOCKS = sorted(p.stem for p in (DATA / "daily").glob("*.csv"))
FIRST, LAST = "2020-05-20", "2020-06-05"


def land(dataset, url):
    with LocalTushareServer(dataset=dataset) as server, dg.instance_for_test() as instance:
        resources = resources_for(server, url)
        materialize_reference(resources, instance)
        assert materialize_range(MARKET_ASSETS + [daily_hfq], FIRST, LAST, resources, instance).success


def landed(tmp_path, tmp_path_factory, dataset, make_url=sqlite_url) -> str:
    """A warehouse holding FIRST..LAST and its hfq, landed by the assets: on SQLite a copy of
    one landing per session (a test may change its copy), on Postgres a landing of its own."""
    if make_url is sqlite_url:
        landed_copy(tmp_path_factory, "adjusted-prices", lambda folder: land(dataset, sqlite_url(folder)), tmp_path)
        return sqlite_url(tmp_path)
    url = make_url(tmp_path)
    land(dataset, url)
    return url


def pro_bar(server, code: str, adj: str) -> pd.DataFrame:
    """Tushare's own adjustment, by its own client, on the same source."""
    api = ts.pro_api(LOCAL_TOKEN)
    api._DataApi__http_url = server.url
    frame = ts.pro_bar(ts_code=code, adj=adj, start_date=FIRST.replace("-", ""), end_date=LAST.replace("-", ""),
                       api=api)
    return frame.assign(trade_date=frame.trade_date.astype(str)).set_index("trade_date").sort_index()


def ours(url: str, table: str, code: str) -> pd.DataFrame:
    wh = Warehouse(url)
    frame = wh.query(f"SELECT * FROM {table} WHERE ts_code = :code ORDER BY trade_date", code=code)
    wh.engine.dispose()
    frame["trade_date"] = frame.trade_date.map(lambda d: str(d).replace("-", "")[:8])
    return frame.set_index("trade_date")


@pytest.mark.parametrize("make_url", warehouse_urls(postgres_marks=pytest.mark.slow))
def test_hfq_and_qfq_equal_tushares_pro_bar_for_the_real_stocks(tmp_path, tmp_path_factory, dataset, local_server,
                                                                 make_url):
    server = local_server()
    url = landed(tmp_path, tmp_path_factory, dataset, make_url)
    for code in REAL_STOCKS:
        for adj, table, tolerance in (("hfq", "daily_hfq", 0.0), ("qfq", "daily_qfq", 0.0100001)):
            theirs, mine = pro_bar(server, code, adj), ours(url, table, code)
            assert list(mine.index) == list(theirs.index) and len(mine) == 13, (code, adj)
            for column in ("open", "high", "low", "close", "pre_close", "change", "pct_chg", "vol", "amount"):
                gap = (mine[column].astype(float) - theirs[column].astype(float)).abs().max()
                # Tushare rounds with '%.2f'; SQL's ROUND in the view may differ by a cent on a tie.
                assert gap <= tolerance + 1e-9, (code, adj, column, gap)


@pytest.mark.slow  # one of the longest in-process tests
def test_the_real_dividend_of_000001_sz(tmp_path, tmp_path_factory, dataset):
    url = landed(tmp_path, tmp_path_factory, dataset)
    bars = pd.read_csv(DATA / "daily" / "000001.SZ.csv", dtype={"trade_date": str}).set_index("trade_date")
    snapshot = pd.read_csv(DATA / "adj_factor_snapshots.csv", dtype={"trade_date": str})
    factor_0529 = snapshot[(snapshot.ts_code == "000001.SZ") & (snapshot.trade_date == "20200529")].adj_factor.item()
    assert factor_0529 == 111.048
    hfq, qfq = ours(url, "daily_hfq", "000001.SZ"), ours(url, "daily_qfq", "000001.SZ")
    # hfq on the snapshot day is the real close times the real factor.
    assert hfq.loc["20200529", "close"] == round(bars.loc["20200529", "close"] * factor_0529, 2)
    # The exchange's ex-dividend reference price (pre_close 12.78 after a 13.00 close) is what
    # forward adjustment turns the day before into; backward adjustment joins the two days.
    assert (bars.loc["20200527", "close"], bars.loc["20200528", "pre_close"]) == (13.00, 12.78)
    assert qfq.loc["20200527", "close"] == 12.78
    assert abs(hfq.loc["20200528", "pre_close"] - hfq.loc["20200527", "close"]) <= 0.01
    # Unadjusted, the series jumps by the dividend; adjusted, every day joins the one before.
    for frame in (hfq, qfq):
        joined = (frame.pre_close.iloc[1:].to_numpy() - frame.close.iloc[:-1].to_numpy())
        assert abs(joined).max() <= 0.011


@pytest.mark.slow  # one of the longest in-process tests
def test_a_new_factor_moves_qfq_history_but_rewrites_nothing_stored(tmp_path, tmp_path_factory, dataset):
    url = landed(tmp_path, tmp_path_factory, dataset)
    hfq_before, qfq_before = ours(url, "daily_hfq", "000001.SZ"), ours(url, "daily_qfq", "000001.SZ")
    wh = Warehouse(url)
    with wh.engine.begin() as conn:  # a later dividend: a new, higher factor lands
        conn.exec_driver_sql("INSERT INTO adj_factor VALUES ('000001.SZ', '2020-06-08', 222.096)")
    wh.engine.dispose()
    hfq_after, qfq_after = ours(url, "daily_hfq", "000001.SZ"), ours(url, "daily_qfq", "000001.SZ")
    pd.testing.assert_frame_equal(hfq_after, hfq_before)
    assert (qfq_after.close - (qfq_before.close / 2).map(lambda v: float(f"{v:.2f}"))).abs().max() <= 0.0100001


@pytest.mark.slow  # one of the longest in-process tests
def test_hfq_of_days_without_factors_fails_and_writes_nothing(tmp_path, local_server):
    server = local_server()
    url = f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
    resources = resources_for(server, url)
    with dg.instance_for_test() as instance:
        materialize_reference(resources, instance)
        daily_bars = MARKET_ASSETS[0]
        assert materialize_range([daily_bars], FIRST, LAST, resources, instance).success
        result = materialize_range([daily_hfq], FIRST, LAST, resources, instance, raise_on_error=False)
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "adj_factor has no factor for" in message and "materialize adj_factor for 2020-05-20" in message
    assert Warehouse(url).scalar("SELECT COUNT(*) FROM daily_hfq") == 0
