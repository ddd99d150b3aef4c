"""The local server's namechange, stk_limit, suspend_d and dividend agree with its bars:
ST names with ST limits, suspensions with missing bars, limit days with closes at the
limit, dividends with adj_factor steps; and they travel the wire like every other API."""

from __future__ import annotations

import json
import urllib.request
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd
import pytest

from zquant_orchestration.lib.tushare_server import LOCAL_TOKEN, Dataset

from .tushare_helpers import resource_for

MONTH = ("20240301", "20240329")


@pytest.fixture(scope="module")
def march(dataset):
    """March 2024's bars joined to its limit rows, and the month's suspend_d rows."""
    bars = dataset.truth("daily", *MONTH)
    limits = dataset.truth("stk_limit", *MONTH)
    joined = bars.merge(limits, on=["ts_code", "trade_date"], how="left", suffixes=("", "_limit"))
    return joined, limits, dataset.truth("suspend_d", *MONTH)


def half_up(price: float, band: str) -> float:
    return float((Decimal(str(price)) * Decimal(band)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def expected_band(ts_code: str, day: str, st: bool) -> int:
    """The exchanges' rule, written out independently of the server."""
    if ts_code.endswith(".BJ"):
        return 30
    if ts_code[:3] in ("688", "689"):
        return 20
    if ts_code[:3] in ("300", "301", "302"):
        return 20 if day >= "20200824" else 10
    return 5 if st and day < "20260706" else 10


def st_days(names: pd.DataFrame) -> dict[str, list[tuple[str, str]]]:
    """Per stock, the [start, end] spans of its warned names (end open: '99991231')."""
    warned = names[names.name.str.startswith(("ST", "*ST"))]
    spans: dict[str, list[tuple[str, str]]] = {}
    for row in warned.itertuples():
        spans.setdefault(row.ts_code, []).append((row.start_date, row.end_date or "99991231"))
    return spans


def test_st_names_follow_is_st_and_main_board_st_days_have_5_percent_limits(dataset, march):
    market = dataset.market
    names = dataset.query("namechange", {})
    assert (names.start_date <= dataset.as_of).all()
    warned = names[names.change_reason.isin(["ST", "*ST"])]
    assert len(warned) > 100
    plain = names[names.change_reason == "其他"].set_index("ts_code").name
    assert (warned.name == warned.change_reason + plain[warned.ts_code].to_numpy()).all()
    lifted = names[names.change_reason.str.startswith("撤销")]
    assert (lifted.name == plain[lifted.ts_code].to_numpy()).all()
    # One current name per stock, and each row ends the day before the next one starts.
    assert names.groupby("ts_code").end_date.apply(lambda e: e.isna().sum()).eq(1).all()

    # is_st agrees with the names on every 15th trading day since 1998.
    spans = st_days(names)
    codes = pd.Index(market.stocks.ts_code)
    days = market.open_days_between("19980422", dataset.as_of)[::15]
    S = np.repeat(np.arange(len(codes)), len(days))
    D = np.tile(days, len(codes))
    got = market.is_st(S, D)
    want = np.zeros(len(S), dtype=bool)
    for code, code_spans in spans.items():
        rows = slice(codes.get_loc(code) * len(days), (codes.get_loc(code) + 1) * len(days))
        day_text = market.open_days[days]
        for start, end in code_spans:
            want[rows] |= (day_text >= start) & (day_text <= end)
    # While listed: a stock delisted under *ST keeps that name as its last one.
    listing = dataset.query("stock_basic", {"list_status": "L,D,P"}).set_index("ts_code")
    day_text = market.open_days[D]
    delisted = listing.delist_date.reindex(codes).fillna("99991231").to_numpy()[S]
    live = (day_text >= listing.list_date.reindex(codes).fillna("99991231").to_numpy()[S]) & (day_text < delisted)
    assert (want & live).sum() > 1000
    assert (got[live] == want[live]).all()

    # Every limit row of the month follows the rule, and main-board ST rows are at 5%.
    joined, limits, _ = march
    S = codes.get_indexer(limits.ts_code)
    D = np.array([market.day_index(d) for d in limits.trade_date])
    limits = limits.assign(st=market.is_st(S, D))
    stocks = limits[limits.pre_close.notna()]
    bands = [expected_band(c, d, st) for c, d, st in zip(stocks.ts_code, stocks.trade_date, stocks.st, strict=True)]
    up = [half_up(p, f"{1 + b / 100}") for p, b in zip(stocks.pre_close, bands, strict=True)]
    down = [half_up(p, f"{1 - b / 100}") for p, b in zip(stocks.pre_close, bands, strict=True)]
    assert stocks.up_limit.tolist() == up
    assert stocks.down_limit.tolist() == down
    main_st = stocks[stocks.st & ~stocks.ts_code.str[:3].isin(["300", "301", "302", "688", "689"])
                     & ~stocks.ts_code.str.endswith(".BJ")]
    assert len(main_st) > 500
    assert np.allclose(main_st.up_limit / main_st.pre_close, 1.05, atol=0.006)


def test_namechange_shows_only_what_had_started_by_as_of():
    early = Dataset(as_of="20100104")
    names = early.query("namechange", {})
    assert (names.start_date <= "20100104").all()
    assert names.groupby("ts_code").end_date.apply(lambda e: e.isna().sum()).eq(1).all()
    by_ann = early.query("namechange", {"start_date": "20050101", "end_date": "20051231"})
    assert len(by_ann) > 0 and by_ann.ann_date.between("20050101", "20051231").all()


def test_suspend_d_s_rows_are_exactly_the_live_days_without_a_bar(dataset, march):
    joined, _, suspended = march
    live = dataset.truth("adj_factor", *MONTH)  # Tushare publishes factors for suspended stocks too
    traded = set(zip(joined.ts_code, joined.trade_date, strict=True))
    missing = {pair for pair in zip(live.ts_code, live.trade_date, strict=True) if pair not in traded}
    s_rows = suspended[suspended.suspend_type == "S"]
    assert set(zip(s_rows.ts_code, s_rows.trade_date, strict=True)) == missing
    assert len(missing) > 100 and len(s_rows) == len(missing)
    # An R row is a traded day that follows a suspended one.
    days = list(dataset.query("trade_cal", {"start_date": "20240201", "end_date": MONTH[1], "is_open": 1}).cal_date)
    days.sort()
    r_rows = suspended[suspended.suspend_type == "R"]
    assert len(r_rows) > 10
    everything = dataset.truth("suspend_d", "20240201", MONTH[1])
    s_all = set(zip(everything.ts_code, everything.trade_date, strict=True))
    for row in r_rows.itertuples():
        assert (row.ts_code, row.trade_date) in traded
        assert (row.ts_code, days[days.index(row.trade_date) - 1]) in s_all
    assert suspended.suspend_timing.isna().all()


def test_limit_days_close_at_the_limit_and_every_bar_stays_inside(march):
    joined, _, _ = march
    limited = joined[joined.up_limit.notna()]
    assert len(limited) > 0.99 * len(joined)  # only the first days after a listing have none
    assert (limited.pre_close == limited.pre_close_limit).all()
    for column in ("open", "high", "low", "close"):
        assert (limited[column] <= limited.up_limit).all(), column
        assert (limited[column] >= limited.down_limit).all(), column
    assert ((joined.low <= joined.open) & (joined.open <= joined.high)).all()
    assert ((joined.low <= joined.close) & (joined.close <= joined.high)).all()
    at_up = limited[limited.close == limited.up_limit]
    at_down = limited[limited.close == limited.down_limit]
    share = (len(at_up) + len(at_down)) / len(limited)
    assert 0.004 < share < 0.03, share
    assert len(at_up) > 50 and len(at_down) > 50
    # The day after a limit day starts from the limit close (no ex-date in between).
    by_stock = joined.sort_values(["ts_code", "trade_date"]).groupby("ts_code")
    nxt = joined.sort_values(["ts_code", "trade_date"]).assign(
        next_pre=by_stock.pre_close.shift(-1), next_day=by_stock.trade_date.shift(-1))
    hits = nxt[(nxt.close == nxt.up_limit) | (nxt.close == nxt.down_limit)].dropna(subset=["next_pre"])
    assert (np.isclose(hits.next_pre, hits.close) | (hits.next_pre < hits.close)).all()
    assert np.isclose(hits.next_pre, hits.close).mean() > 0.95


def test_dividends_fall_on_the_days_adj_factor_steps_with_the_cash_of_the_step(dataset):
    factors = dataset.truth("adj_factor", "20231201", "20241231").sort_values(["ts_code", "trade_date"])
    before = factors.groupby("ts_code").adj_factor.shift(1)
    steps = factors[before.notna() & (factors.adj_factor != before) & (factors.trade_date >= "20240101")]
    dividends = dataset.truth("dividend", "20240101", "20241231")
    assert (dividends.div_proc == "实施").all()
    assert set(zip(dividends.ts_code, dividends.ex_date, strict=True)) == set(
        zip(steps.ts_code, steps.trade_date, strict=True))
    assert len(dividends) > 3000 and len(dividends) == len(steps)
    # Cash per share = previous close - the ex-date's pre_close, where the stock traded.
    bars = dataset.truth("daily", "20231201", "20241231").sort_values(["ts_code", "trade_date"])
    bars["prev_close"] = bars.groupby("ts_code").close.shift(1)
    on_ex = dividends.merge(bars, left_on=["ts_code", "ex_date"], right_on=["ts_code", "trade_date"])
    assert len(on_ex) > 0.9 * len(dividends)
    assert np.allclose(on_ex.cash_div, (on_ex.prev_close - on_ex.pre_close).round(4), atol=1e-9)
    assert (on_ex.cash_div == on_ex.cash_div_tax).all() and (on_ex.stk_div == 0).all()
    assert (on_ex.record_date < on_ex.ex_date).all() and (on_ex.imp_ann_date < on_ex.record_date).all()
    # Query by ex_date gives that day's rows; by ts_code also the plans without dates.
    day = dividends.ex_date.iloc[0]
    same_day = dataset.query("dividend", {"ex_date": day})
    assert sorted(same_day.ts_code) == sorted(dividends[dividends.ex_date == day].ts_code)
    history = dataset.query("dividend", {"ts_code": "000001.SZ"})
    assert {"实施", "预案"} == set(history.div_proc)
    assert history[history.div_proc == "预案"].ex_date.isna().all()
    with pytest.raises(ValueError):
        dataset.query("dividend", {})


def test_a_whole_market_stk_limit_day_pages_through_the_client(local_server):
    server = local_server()
    day = "20240315"
    truth = server.truth("stk_limit", day, day)
    assert len(truth) > 5800  # funds included, as at Tushare
    assert truth[truth.ts_code.str.match(r"^(51|15|56|58)")].pre_close.isna().all()
    got = resource_for(server).query("stk_limit", {"trade_date": day})
    offsets = [r["params"].get("offset") for r in server.requests if r.get("api") == "stk_limit"]
    assert offsets == [0, 5800]
    key = ["ts_code", "trade_date"]
    got = got.sort_values(key).reset_index(drop=True)
    want = truth.sort_values(key).reset_index(drop=True)
    assert got.ts_code.tolist() == want.ts_code.tolist()
    assert np.allclose(got.up_limit.astype(float), want.up_limit) and np.allclose(
        got.down_limit.astype(float), want.down_limit)
    assert got.pre_close.isna().sum() == want.pre_close.isna().sum()


def test_an_empty_suspend_d_day_is_an_empty_successful_reply(local_server, dataset):
    server = local_server()
    days = dataset.query("trade_cal", {"start_date": MONTH[0], "end_date": MONTH[1], "is_open": 1}).cal_date
    empty = [d for d in days if dataset.query("suspend_d", {"trade_date": d}).empty]
    assert empty, "some days of the month have no suspension"
    got = resource_for(server).query("suspend_d", {"trade_date": empty[0]})
    assert got.empty
    assert [r["code"] for r in server.requests if r.get("api") == "suspend_d"] == [0]


def test_a_call_without_fields_gets_the_default_display_columns(local_server):
    server = local_server()
    body = json.dumps({"api_name": "stk_limit", "token": LOCAL_TOKEN, "params": {"trade_date": "20240315",
                                                                                "limit": 3}, "fields": ""})
    request = urllib.request.Request(server.url, data=body.encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        data = json.loads(reply.read())
    assert data["code"] == 0
    assert data["data"]["fields"] == ["trade_date", "ts_code", "up_limit", "down_limit"]
    assert len(data["data"]["items"]) == 3 and data["data"]["has_more"] is True
