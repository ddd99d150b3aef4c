"""The local server's index and trading-flow APIs agree with the market it serves.

index_weight, index_daily, index_dailybasic, moneyflow, top_list, margin_detail and
stk_factor_pro are all derived from ``daily``/``adj_factor``/``daily_basic``; these tests
recompute what a user would check from those bars and compare.
"""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pandas as pd
import pytest

from zquant_orchestration.lib.tushare import protocol
from zquant_orchestration.lib.tushare.catalog import default_fields
from zquant_orchestration.lib.tushare_server import LOCAL_TOKEN

from .tushare_helpers import resource_for

WEIGHT_DAY = "20240603"    # the first trading day of June 2024: a weight publication day
LATER_DAY = "20240614"
TOP_DAY = "20240627"       # eight SZ stocks rose 7% or more that day: the list keeps five
INDEX_SIZES = {"000016.SH": 50, "000300.SH": 300, "000688.SH": 50, "000852.SH": 1000, "000905.SH": 500,
               "399001.SZ": 500, "399006.SZ": 100}


def _post(server, api_name: str, params: dict, fields: str = "") -> protocol.Reply:
    body = protocol.encode_request(api_name, LOCAL_TOKEN, params, protocol.normalize_fields(fields))
    request = urllib.request.Request(f"{server.url}/{api_name}", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=30) as reply:
        return protocol.decode_reply(reply.read())


def test_index_weights_sum_to_100_over_listed_stocks_of_the_right_board(dataset):
    weights = dataset.query("index_weight", {"start_date": "20240601", "end_date": "20240630"})
    assert set(weights.trade_date) == {WEIGHT_DAY}
    totals = weights.groupby("index_code").weight.sum()
    assert len(totals) == 8
    assert np.allclose(totals, 100, atol=0.01)
    sizes = weights.groupby("index_code").size()
    assert sizes.drop("000001.SH").to_dict() == INDEX_SIZES
    stocks = dataset.query("stock_basic", {"list_status": "L,D,P"}).set_index("ts_code")
    listed = stocks.reindex(weights.con_code)
    assert (listed.list_date.to_numpy() <= WEIGHT_DAY).all()
    assert (listed.delist_date.fillna("99991231").to_numpy() > WEIGHT_DAY).all()
    board = weights.set_index("index_code").con_code
    assert board.loc[["000001.SH", "000016.SH"]].str.endswith(".SH").all()
    assert board.loc["399001.SZ"].str.endswith(".SZ").all()
    assert board.loc["399006.SZ"].str[:3].isin(["300", "301", "302"]).all()
    assert board.loc["000688.SH"].str[:3].isin(["688", "689"]).all()
    csi = board.loc[["000300.SH", "000905.SH", "000852.SH"]]
    assert csi.is_unique and csi.str.endswith((".SH", ".SZ")).all()
    # Weights are monthly: a day that is not a publication day has none, as at Tushare.
    assert dataset.query("index_weight", {"index_code": "000300.SH", "trade_date": LATER_DAY}).empty


def test_index_daily_follows_its_constituents(dataset):
    bars = dataset.query("index_daily", {"ts_code": "000300.SH", "start_date": "20240101", "end_date": LATER_DAY})
    assert list(bars.trade_date) == sorted(bars.trade_date, reverse=True)
    assert (bars.pre_close.to_numpy()[:-1] == bars.close.to_numpy()[1:]).all()
    assert (bars.low <= bars[["open", "close"]].min(axis=1)).all()
    assert (bars.high >= bars[["open", "close"]].max(axis=1)).all()
    assert np.allclose(bars.change, bars.close - bars.pre_close, atol=1e-3)

    weights = dataset.query("index_weight", {"index_code": "000300.SH", "trade_date": WEIGHT_DAY})
    codes = ",".join(weights.con_code)
    window = {"ts_code": codes, "start_date": "20240501", "end_date": LATER_DAY}
    daily = dataset.query("daily", window)
    factors = dataset.query("adj_factor", window)
    adjusted = daily.merge(factors, on=["ts_code", "trade_date"])
    adjusted["hfq"] = adjusted.close * adjusted.adj_factor

    def last_price(day: str) -> pd.Series:  # a suspended constituent keeps its last price
        seen = adjusted[adjusted.trade_date <= day].sort_values("trade_date")
        return seen.groupby("ts_code").hfq.last().reindex(weights.con_code)

    w = weights.weight.to_numpy() / weights.weight.sum()
    growth = float(w @ (last_price(LATER_DAY) / last_price(WEIGHT_DAY)).to_numpy())
    close = bars.set_index("trade_date").close
    assert close[LATER_DAY] == pytest.approx(close[WEIGHT_DAY] * growth, rel=1e-5)
    traded = daily[daily.trade_date == LATER_DAY]
    assert bars.set_index("trade_date").vol[LATER_DAY] == pytest.approx(traded.vol.sum(), rel=1e-9)


def test_index_dailybasic_covers_the_documented_indices(dataset):
    basics = dataset.query("index_dailybasic", {"trade_date": WEIGHT_DAY})
    assert set(basics.ts_code) == {"000001.SH", "000016.SH", "000300.SH", "000905.SH", "399001.SZ", "399006.SZ"}
    assert (basics.float_mv <= basics.total_mv).all() and (basics.free_share <= basics.float_share).all()
    assert (basics.turnover_rate_f >= basics.turnover_rate).all()
    assert (basics.pb > 0).all()
    with pytest.raises(ValueError, match="trade_date or ts_code"):
        dataset.query("index_dailybasic", {"start_date": "20240101"})


def test_moneyflow_splits_the_days_volume_and_amount(dataset):
    flows = dataset.query("moneyflow", {"trade_date": LATER_DAY}).set_index("ts_code")
    daily = dataset.query("daily", {"trade_date": LATER_DAY}).set_index("ts_code")
    assert set(flows.index) == set(daily.index)
    daily = daily.reindex(flows.index)
    for side in ("buy", "sell"):
        lots = sum(flows[f"{side}_{b}_vol"] for b in ("sm", "md", "lg", "elg"))
        money = sum(flows[f"{side}_{b}_amount"] for b in ("sm", "md", "lg", "elg"))
        assert (lots == np.round(daily.vol)).all()
        assert np.allclose(money, daily.amount / 10, atol=0.03)  # thousand CNY -> 10k CNY
    assert (flows.net_mf_vol.abs() <= daily.vol * 0.1 + 1).all()
    assert dataset.query("moneyflow", {"trade_date": "20091230"}).empty  # doc 170: from 2010


def _expected_top_list(daily: pd.DataFrame) -> set[tuple[str, str]]:
    daily = daily[daily.ts_code.str.endswith((".SH", ".SZ"))].assign(
        amplitude=lambda f: (f.high - f.low) / f.pre_close * 100, exchange=lambda f: f.ts_code.str[-2:])
    expected = set()
    for reason, hit, key in (("日涨幅偏离值达到7%的前5只证券", daily.pct_chg >= 7, -daily.pct_chg),
                             ("日跌幅偏离值达到7%的前5只证券", daily.pct_chg <= -7, daily.pct_chg),
                             ("日振幅值达到15%的前5只证券", daily.amplitude >= 15, -daily.amplitude)):
        for _, rows in daily[hit].assign(key=key[hit]).sort_values(["key", "ts_code"]).groupby("exchange"):
            expected |= {(code, reason) for code in rows.ts_code.head(5)}
    return expected


def test_top_list_is_the_days_biggest_moves(dataset):
    daily = dataset.query("daily", {"trade_date": TOP_DAY})
    listed = dataset.query("top_list", {"trade_date": TOP_DAY})
    expected = _expected_top_list(daily)
    assert set(zip(listed.ts_code, listed.reason, strict=True)) == expected
    assert len(listed) == len(expected)
    assert (listed.reason == "日涨幅偏离值达到7%的前5只证券").sum() >= 6  # five per exchange, SZ had eight
    bars = daily.set_index("ts_code").reindex(listed.ts_code)
    assert (listed.close.to_numpy() == bars.close.to_numpy()).all()
    assert (listed["pct_change"].to_numpy() == bars.pct_chg.to_numpy()).all()
    assert np.allclose(listed.l_amount, listed.l_buy + listed.l_sell)
    one = listed.ts_code.iloc[0]
    assert set(dataset.query("top_list", {"trade_date": TOP_DAY, "ts_code": one}).ts_code) == {one}
    with pytest.raises(ValueError, match="trade_date"):
        dataset.query("top_list", {"ts_code": one})


def test_top_list_is_empty_on_a_day_without_a_list(dataset, local_server):
    # Limit days make every recent day list someone; before 2005 Tushare has no list at all.
    quiet = "20040105"
    assert _expected_top_list(dataset.query("daily", {"trade_date": quiet}))
    reply = _post(local_server(), "top_list", {"trade_date": quiet})
    assert reply.code == 0 and reply.items == [] and reply.fields == default_fields("top_list")


def test_margin_detail_only_for_traded_eligible_stocks_and_balances_reconcile(dataset):
    margin = dataset.query("margin_detail", {"trade_date": LATER_DAY})
    daily = dataset.query("daily", {"trade_date": LATER_DAY})
    assert set(margin.ts_code) <= set(daily.ts_code)
    assert margin.ts_code.str.endswith((".SH", ".SZ")).all()
    assert 0.3 < len(margin) / len(daily) < 0.5
    stocks = dataset.query("stock_basic", {"list_status": "L,D,P"}).set_index("ts_code")
    assert (stocks.list_date.reindex(margin.ts_code) < "20240101").all()  # listed more than ~6 months
    columns = ["rzye", "rqye", "rzmre", "rqyl", "rzche", "rqchl", "rqmcl"]
    assert (margin[columns] >= 0).all().all()
    assert np.allclose(margin.rzrqye, margin.rzye + margin.rqye)

    code = margin.ts_code.iloc[0]
    month = dataset.query("margin_detail", {"ts_code": code, "start_date": "20240501", "end_date": LATER_DAY})
    month = month.sort_values("trade_date")
    traded = dataset.query("daily", {"ts_code": code, "start_date": "20240501", "end_date": LATER_DAY})
    assert sorted(month.trade_date) == sorted(traded.trade_date)
    previous, today = month.iloc[:-1], month.iloc[1:]
    assert (today.rzye.to_numpy() == previous.rzye.to_numpy() + today.rzmre.to_numpy() - today.rzche.to_numpy()).all()
    assert (today.rqyl.to_numpy() == previous.rqyl.to_numpy() + today.rqmcl.to_numpy() - today.rqchl.to_numpy()).all()


def test_stk_factor_pro_uses_the_days_bars_and_factors(dataset):
    code = "000001.SZ"
    window = {"ts_code": code, "start_date": "20240101", "end_date": LATER_DAY}
    factors = dataset.query("stk_factor_pro", window).set_index("trade_date").sort_index()
    daily = dataset.query("daily", window).set_index("trade_date").sort_index()
    adj = dataset.query("adj_factor", window).set_index("trade_date").adj_factor.reindex(daily.index)
    latest = dataset.query("adj_factor", {"ts_code": code, "trade_date": dataset.as_of}).adj_factor.iloc[0]
    assert list(factors.index) == list(daily.index)
    assert (factors.close == daily.close).all() and (factors.vol == daily.vol).all()
    assert np.allclose(factors.close_hfq, daily.close * adj, atol=1e-4)
    assert np.allclose(factors.close_qfq, daily.close * adj / latest, atol=1e-4)
    hfq = daily.close * adj
    assert np.allclose(factors.ma_hfq_5.iloc[5:], hfq.rolling(5).mean().iloc[5:], atol=1e-3)
    assert np.allclose(factors.ma_bfq_20.iloc[20:], daily.close.rolling(20).mean().iloc[20:], atol=1e-3)
    assert factors.rsi_bfq_6.isna().all()  # a recursion over the whole history: NULL, as documented
    basic = dataset.query("daily_basic", window).set_index("trade_date").reindex(factors.index)
    assert (factors.circ_mv == basic.circ_mv).all() and (factors.pe == basic.pe).all()


@pytest.mark.parametrize(("api_name", "params"), [
    ("index_basic", {}),
    ("index_weight", {"index_code": "000016.SH", "trade_date": WEIGHT_DAY}),
    ("index_daily", {"ts_code": "000300.SH", "start_date": WEIGHT_DAY, "end_date": LATER_DAY}),
    ("index_dailybasic", {"trade_date": WEIGHT_DAY}),
    ("moneyflow", {"ts_code": "000001.SZ", "trade_date": LATER_DAY}),
    ("top_list", {"trade_date": TOP_DAY}),
    ("margin_detail", {"trade_date": LATER_DAY, "ts_code": "000001.SZ,600000.SH,600519.SH"}),
    ("stk_factor_pro", {"ts_code": "000001.SZ", "trade_date": LATER_DAY}),
])
def test_a_call_without_fields_gets_the_default_display_columns(local_server, api_name, params):
    reply = _post(local_server(), api_name, params)
    assert reply.code == 0, reply.msg
    assert reply.fields == default_fields(api_name)
    assert reply.items, f"{api_name} {params} returned no rows"
    if api_name == "index_basic":
        assert "fullname" not in reply.fields and {"base_date", "base_point"} <= set(reply.fields)
        assert {row[0] for row in reply.items} >= {"000001.SH", "399001.SZ", "399006.SZ", "000016.SH",
                                                   "000300.SH", "000905.SH", "000852.SH", "000688.SH"}


@pytest.mark.parametrize(("api_name", "limit"), [("moneyflow", 1000), ("stk_factor_pro", 2000)])
def test_a_whole_market_day_pages_and_lands_whole(dataset, local_server, api_name, limit):
    server = local_server(row_limits={api_name: limit})
    landed = resource_for(server, timeout_seconds=30.0).query(api_name, {"trade_date": LATER_DAY})
    truth = dataset.truth(api_name, LATER_DAY, LATER_DAY)
    assert len(truth) > 2 * limit
    pages = [json.dumps(r["params"].get("offset")) for r in server.requests if r.get("api") == api_name]
    assert len(pages) == -(-len(truth) // limit)
    key = ["ts_code", "trade_date"]
    landed = landed.sort_values(key, ignore_index=True)
    truth = truth.sort_values(key, ignore_index=True)[list(landed.columns)]
    values = [c for c in landed.columns if c not in key]  # an all-NULL column lands as None
    landed[values] = landed[values].apply(pd.to_numeric)
    pd.testing.assert_frame_equal(landed, truth, check_dtype=False)
