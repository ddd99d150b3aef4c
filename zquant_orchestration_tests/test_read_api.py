"""The research reads (Warehouse.prices, factors, fundamentals, tradable) against the views
and tables they read, row for row, on two weeks of the local server's whole market and five
report periods of statements read over two months, in SQLite and Postgres; and their
one-line errors."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from zquant_orchestration.defs.derived.assets import daily_hfq
from zquant_orchestration.lib import dates, factors
from zquant_orchestration.lib.tushare_server import LocalTushareServer
from zquant_orchestration.lib.warehouse import Warehouse, wide
from zquant_orchestration.lib.warehouse.forward_adjust import round2_postgres
from zquant_orchestration.lib.warehouse.views import round2_sql, round2_sql_fast

from .dialects import sqlite_url, warehouse_urls
from .finance_helpers import finance_resources, materialize_periods
from .market_helpers import MARKET_ASSETS, materialize_range, materialize_reference

MARKET_FIRST, MARKET_LAST = "2024-05-20", "2024-05-31"  # the whole market: ~53,000 rows a table
FIRST, LAST = "2024-04-01", "2024-05-31"  # the statements, read over the SSE calendar
# 001339.SZ restates its 2023-06-30 report on 04-15 (an older period: the latest known report
# stays 2023-12-31) and its 2024-03-31 report on 05-31, which replaces the original of 04-22.
RESTATED = "001339.SZ"
UNIVERSE = [RESTATED, "300437.SZ", "600862.SH", "600519.SH", "000001.SZ"]
TRADABLE_FLAGS = ["is_st", "is_suspended", "traded", "at_up_limit", "at_down_limit"]


# Landing the market and the statements takes about a minute on either dialect.
@pytest.fixture(scope="module", params=[pytest.param(p.values[0], id=p.id, marks=pytest.mark.slow)
                                        for p in warehouse_urls()])
def warehouse(request, tmp_path_factory, dataset):
    """Market, hfq and statements landed by their assets; daily_factors computed by
    lib/factors.py and daily_tradable rows written from the bars, for the reads of those tables."""
    url = request.param(tmp_path_factory.mktemp("reads"))
    with LocalTushareServer(dataset=dataset) as server, dg.instance_for_test() as instance:
        resources = finance_resources(server, url, universe=UNIVERSE)
        materialize_reference(resources, instance)
        assert materialize_range(MARKET_ASSETS + [daily_hfq], MARKET_FIRST, MARKET_LAST, resources, instance).success
        assert materialize_periods("20230331", "20240630", resources, instance).success
    wh = Warehouse(url)
    window = dates.span([MARKET_FIRST, MARKET_LAST])
    hfq, basic = wh.read_days("daily_hfq", *window), wh.read_days("daily_basic", *window)
    days = sorted(set(hfq.trade_date))
    computed = factors.compute(hfq[["ts_code", "trade_date", "close"]], basic, days, days)
    wh.replace_rows("daily_factors", computed, {"trade_date": days})
    bars = wh.read_days("daily_bars", *window)
    flags = bars[["ts_code", "trade_date", "close"]].assign(
        is_st=0, is_suspended=0, traded=1, at_up_limit=(bars.pct_chg >= 9.9).astype(int),
        at_down_limit=(bars.pct_chg <= -9.9).astype(int), listed_days=np.arange(len(bars)) % 500 + 1.0,
        up_limit=(bars.pre_close * 1.1).round(2),
        down_limit=np.where(bars.index % 7 == 0, np.nan, bars.pre_close * 0.9))
    wh.replace_rows("daily_tradable", flags, {"trade_date": days})
    yield wh
    wh.engine.dispose()


def _sql_rows(wh: Warehouse, sql: str, columns: list[str], **params) -> pd.DataFrame:
    """Rows as SQL gives them, in the panel's order, days as datetime64 like the panel's."""
    frame = wh.query(sql, **params)
    frame["trade_date"] = pd.to_datetime(frame.trade_date.map(dates.iso))
    return frame.sort_values(["trade_date", "ts_code"]).reset_index(drop=True)[columns]


def _assert_rows_equal(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert len(got) == len(want) > 0
    for column in got.columns:
        if column == "ts_code":
            assert got[column].tolist() == want[column].tolist(), column
        elif column in ("trade_date", "end_date", "known_from"):
            days = pd.to_datetime(want[column].map(dates.iso)).to_numpy(dtype="datetime64[D]")
            assert np.array_equal(got[column].to_numpy(dtype="datetime64[D]"), days), column
        else:  # exactly the same doubles, NULL as NaN
            mine, theirs = got[column].to_numpy(dtype=float), pd.to_numeric(want[column]).to_numpy(dtype=float)
            assert np.array_equal(mine, theirs, equal_nan=True), column


@pytest.mark.parametrize("adjust,source", [(None, "daily_bars"), ("hfq", "daily_hfq"), ("qfq", "daily_qfq")])
def test_prices_equal_the_table_or_view_row_for_row(warehouse, adjust, source):
    got = warehouse.prices(MARKET_FIRST, MARKET_LAST, adjust=adjust)
    want = _sql_rows(warehouse, f"SELECT * FROM {source} WHERE trade_date BETWEEN :a AND :b", list(got.columns),
                     a=dates.to_date(MARKET_FIRST), b=dates.to_date(MARKET_LAST))
    assert list(got.columns[:2]) == ["trade_date", "ts_code"] and str(got.trade_date.dtype).startswith("datetime64")
    _assert_rows_equal(got, want)
    if adjust == "qfq":  # anchored at the latest factor: the last day's close is the traded one
        last = got[got.trade_date == got.trade_date.max()]
        bars = warehouse.prices(MARKET_LAST, MARKET_LAST, adjust=None, fields=["close"])
        assert (last.adj_factor == last.anchor_factor).all()
        assert np.allclose(last.close.to_numpy(), bars.set_index("ts_code").close.loc[last.ts_code].to_numpy())


def test_qfq_of_a_bar_without_its_factor_and_of_a_stock_whose_latest_factor_is_null(warehouse):
    """The view's inner joins and NULLs: a bar whose day has no factor has no qfq row; a stock
    whose latest factor is NULL has NULL prices. The warehouse is put back afterwards."""
    day, last = dates.to_date("2024-05-22"), dates.to_date(MARKET_LAST)
    kept = warehouse.query("SELECT * FROM adj_factor WHERE (ts_code = '600519.SH' AND trade_date = :d) "
                           "OR (ts_code = '000001.SZ' AND trade_date = :l)", d=day, l=last)
    assert len(kept) == 2
    warehouse.replace_rows("adj_factor", kept.iloc[:0], {"ts_code": ["600519.SH"], "trade_date": [day]})
    try:
        warehouse.replace_rows("adj_factor", kept[kept.ts_code == "000001.SZ"].assign(adj_factor=None),
                               {"ts_code": ["000001.SZ"], "trade_date": [last]})
        got = warehouse.prices(MARKET_FIRST, MARKET_LAST, adjust="qfq")
        want = _sql_rows(warehouse, "SELECT * FROM daily_qfq WHERE trade_date BETWEEN :a AND :b", list(got.columns),
                         a=dates.to_date(MARKET_FIRST), b=last)
        _assert_rows_equal(got, want)
        assert not ((got.ts_code == "600519.SH") & (got.trade_date == pd.Timestamp(day))).any()
        assert got[got.ts_code == "000001.SZ"].close.isna().all()
    finally:
        for i, row in kept.iterrows():
            warehouse.replace_rows("adj_factor", kept.loc[[i]],
                                   {"ts_code": [row.ts_code], "trade_date": [row.trade_date]})


def test_prices_of_some_fields_and_stocks(warehouse):
    got = warehouse.prices("2024-05-27", "2024-05-31", adjust="qfq", fields=["pct_chg", "close"],
                           ts_codes=["600519.SH", "000001.SZ"])
    assert list(got.columns) == ["trade_date", "ts_code", "pct_chg", "close"]
    want = _sql_rows(warehouse, "SELECT * FROM daily_qfq WHERE trade_date BETWEEN :a AND :b "
                     "AND ts_code IN ('600519.SH', '000001.SZ')", list(got.columns),
                     a=dates.to_date("2024-05-27"), b=dates.to_date("2024-05-31"))
    _assert_rows_equal(got, want)
    assert len(got) == 10
    panel = wide(got, "close")
    assert list(panel.columns) == ["000001.SZ", "600519.SH"] and len(panel) == 5


def test_factors_and_tradable_equal_their_tables(warehouse):
    got = warehouse.factors(MARKET_FIRST, MARKET_LAST)
    span = {"a": dates.to_date(MARKET_FIRST), "b": dates.to_date(MARKET_LAST)}
    _assert_rows_equal(got, _sql_rows(warehouse, "SELECT * FROM daily_factors WHERE trade_date BETWEEN :a AND :b",
                                      list(got.columns), **span))
    assert got.ep_ttm.notna().any() and got.mom_20.isna().all(), "NULL reads as NaN (no 20-day lookback here)"
    flags = warehouse.tradable(MARKET_FIRST, MARKET_LAST)
    assert list(flags.columns[2:7]) == TRADABLE_FLAGS
    _assert_rows_equal(flags, _sql_rows(warehouse, "SELECT * FROM daily_tradable WHERE trade_date BETWEEN :a AND :b",
                                        list(flags.columns), **span))


@pytest.mark.parametrize("table,field", [("income", "revenue"), ("fina_indicator", "roe")])
def test_fundamentals_equal_the_pit_view_day_by_day_across_restatements(warehouse, table, field):
    got = warehouse.fundamentals(table, [field, "update_flag"], FIRST, LAST)
    days = warehouse.query("SELECT cal_date FROM trade_cal WHERE exchange = 'SSE' AND is_open = 1 "
                           "AND cal_date BETWEEN :a AND :b ORDER BY cal_date",
                           a=dates.to_date(FIRST), b=dates.to_date(LAST)).cal_date.map(dates.iso).tolist()
    assert sorted(set(got.trade_date.dt.strftime("%Y-%m-%d"))) == days
    # Per day: what point_in_time (the view) knew at that day's close, the latest period per stock.
    expected = []
    for day in days:
        known = warehouse.point_in_time(table, day, UNIVERSE)
        latest = known.sort_values("end_date").groupby("ts_code").tail(1)
        expected.append(latest.assign(trade_date=day))
    want = pd.concat(expected, ignore_index=True)
    want["trade_date"] = pd.to_datetime(want.trade_date)
    want = want.sort_values(["trade_date", "ts_code"]).reset_index(drop=True)[list(got.columns)]
    _assert_rows_equal(got, want)

    # The restatements, as a user sees them: the older period's changes nothing, the latest's
    # replaces the figure from the day it is known.
    mine = got[got.ts_code == RESTATED].set_index(got[got.ts_code == RESTATED].trade_date.dt.strftime("%Y-%m-%d"))
    assert str(mine.loc["2024-04-16", "end_date"])[:10] == "2023-12-31"
    assert str(mine.loc["2024-04-22", "end_date"])[:10] == "2024-03-31"
    assert mine.loc["2024-05-30", "update_flag"] == 0 and mine.loc["2024-05-31", "update_flag"] == 1
    versions = warehouse.query(f"SELECT {field}, update_flag FROM {table} WHERE ts_code = :c AND end_date = :e",
                               c=RESTATED, e=dates.to_date("2024-03-31")).set_index("update_flag")[field]
    assert mine.loc["2024-05-30", field] == versions.loc[0] and mine.loc["2024-05-31", field] == versions.loc[1]


def test_fundamentals_of_some_stocks_and_days(warehouse):
    got = warehouse.fundamentals("fina_indicator", ["roe"], "2024-05-31", "2024-05-31", ts_codes=[RESTATED])
    assert list(got.columns) == ["trade_date", "ts_code", "end_date", "known_from", "roe"]
    assert len(got) == 1 and str(got.known_from.iloc[0])[:10] == "2024-05-31"


@pytest.mark.parametrize("call,message", [
    (lambda wh: wh.prices(FIRST, LAST, adjust="forward"), "adjust must be None, 'hfq' or 'qfq', not 'forward'"),
    (lambda wh: wh.prices(FIRST, LAST, fields=["close", "closing"]),
     "daily_qfq has no field 'closing'; fields are open"),
    (lambda wh: wh.prices(LAST, FIRST), "start 2024-05-31 is after end 2024-04-01: give start <= end"),
    (lambda wh: wh.prices("2024-13-01", LAST), "not a day (YYYY-MM-DD or YYYYMMDD): '2024-13-01'"),
    (lambda wh: wh.factors(FIRST, LAST, ts_codes=["600519.SH'; DROP TABLE x"]), "ts_codes must be Tushare codes"),
    (lambda wh: wh.fundamentals("daily_bars", ["close"], FIRST, LAST), "table must be one of income, balancesheet"),
    (lambda wh: wh.fundamentals("income", ["roe"], FIRST, LAST), "income has no field 'roe'; fields are ts_code"),
    (lambda wh: wh.fundamentals("income", "revenue", FIRST, LAST), "fields must be a list of income's columns"),
    (lambda wh: wh.fundamentals("income", ["revenue"], FIRST, LAST, as_of="latest"),
     "as_of must be one of 'point_in_time', not 'latest'"),
])
def test_bad_input_is_one_line_naming_what_is_accepted(tmp_path, call, message):
    wh = Warehouse(sqlite_url(tmp_path))
    with pytest.raises(ValueError) as refused:
        call(wh)
    assert message in str(refused.value) and "\n" not in str(refused.value)
    wh.engine.dispose()


@pytest.mark.parametrize("make_url", warehouse_urls())
def test_the_fast_rounding_gives_the_views_numbers(tmp_path, make_url):
    """Ties of every kind (2.675 is 2.67499... as a double, 1.005 is 1.00499...), both signs,
    values past the fast path's range, and random prices and ratios of every magnitude."""
    rng = np.random.default_rng(7)
    ties = [k + 0.005 for k in (0, 1, 2.67, 1234.56, 99999.99)] + [2.675, 1.005, 0.145, 0.285, 1.115, 8.345]
    values = ties + [-v for v in ties] + [0.0, 1e6 + 0.125, 1e7 - 0.005, -3e7, 123456789.125]
    values += list(rng.uniform(0, 3000, 4000)) + list(10 ** rng.uniform(-4, 7, 4000) * rng.choice([-1, 1], 4000))
    values += list(np.round(rng.uniform(0, 200, 2000), 3) / 1.0)  # many lie on a half cent
    wh = Warehouse(make_url(tmp_path))
    table = ", ".join(f"({float(v)!r})" for v in values)
    exact, fast = round2_sql(wh.dialect), round2_sql_fast(wh.dialect)
    source = "(SELECT CAST(column1 AS DOUBLE PRECISION) AS x FROM (VALUES " + table + ") v)"
    if wh.dialect == "postgresql":
        source = "(SELECT CAST(column1 AS DOUBLE PRECISION) AS x FROM (VALUES " + table + ") v(column1))"
    rows = wh.query(f"SELECT x, {exact('x * 1.0')} AS exact, {fast('x * 1.0')} AS fast FROM {source} s")
    assert len(rows) == len(values)
    assert np.array_equal(rows.exact.to_numpy(dtype=float), rows.fast.to_numpy(dtype=float))
    if wh.dialect == "postgresql":  # the qfq panel rounds in numpy what the view rounds in SQL
        computed = round2_postgres(rows.x.to_numpy(dtype=float) * 1.0)
        assert np.array_equal(computed, rows.exact.to_numpy(dtype=float))
    assert (rows.x.abs() > 1e6).any() and (rows.x.map(lambda v: f"{v:.15g}").str.endswith("5")).sum() > 100
    wh.engine.dispose()
