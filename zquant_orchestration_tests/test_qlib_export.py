"""The qlib export, read back by qlib's own reader (pyqlib's ``D.features``), equals the
warehouse; the next trading day only appends bytes; a re-landed day is overwritten in place;
a day after a hole is refused."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import qlib
from qlib.constant import REG_CN
from qlib.data import D

from zquant_orchestration.defs.derived.assets import daily_hfq
from zquant_orchestration.defs.exports.qlib import qlib_export
from zquant_orchestration.lib import dates
from zquant_orchestration.lib.exports.qlib_bin import ExportRefused, QlibBinExport, instrument, qlib_fields
from zquant_orchestration.lib.warehouse import Warehouse

from .market_helpers import MARKET_ASSETS, ChangedReplies, materialize_range, materialize_reference, resources_for

# November 2020: three stocks delist (000542.SZ on the 11th, 601802.SH on the 12th,
# 000984.SZ and 600948.SH on the 20th), a dozen list, and suspension blocks start and end.
FIRST, LAST, NEXT = "2020-11-02", "2020-11-30", "2020-12-01"
SLICED_APIS = ("stock_basic", "daily", "adj_factor", "daily_basic")


def sliced(dataset) -> ChangedReplies:
    """A server whose market is every third stock, and every stock that lists or delists from
    FIRST to NEXT: its stock list and its bars agree, so it is a smaller market, not a market
    with holes. The export's claims do not depend on how many stocks there are; a third of
    them still has some twenty suspended on NEXT."""
    stocks = dataset.query("stock_basic", {"list_status": "L,D,P"})
    first, next_ = FIRST.replace("-", ""), NEXT.replace("-", "")
    moving = stocks[stocks.list_date.between(first, next_) | stocks.delist_date.between(first, next_)]
    codes = set(sorted(stocks.ts_code)[::3]) | set(moving.ts_code) | {"600519.SH", "000001.SZ"}

    def reply(api_name, params, rows):
        return rows[rows.ts_code.isin(codes)] if api_name in SLICED_APIS else rows
    return ChangedReplies(reply, dataset=dataset)
QLIB_FIELDS = ["$open", "$close", "$high", "$low", "$volume", "$factor", "$change", "$amount", "$vwap"]


def read_qlib(root: Path, names: list[str], first: str, last: str) -> pd.DataFrame:
    """What qlib reads: one process (kernels=1), its memory cache cleared by the init."""
    qlib.init(provider_uri=str(root), region=REG_CN, kernels=1)
    frame = D.features(names, QLIB_FIELDS, start_time=first, end_time=last)
    frame.columns = [c.lstrip("$") for c in frame.columns]
    return frame.sort_index()


def warehouse_truth(url: str, first: str, last: str) -> pd.DataFrame:
    """The fields computed from the warehouse's own tables: the bars, the factor table and
    the stored hfq bars, indexed as qlib indexes them (instrument, datetime)."""
    wh = Warehouse(url)
    frame = wh.query(
        "SELECT b.ts_code, b.trade_date, h.open, h.close, h.high, h.low, h.pre_close, b.vol, b.amount, "
        "b.close AS raw_close, f.adj_factor FROM daily_bars b JOIN adj_factor f USING (ts_code, trade_date) "
        "JOIN daily_hfq h USING (ts_code, trade_date) WHERE b.trade_date BETWEEN :a AND :b",
        a=dates.to_date(first), b=dates.to_date(last))
    wh.engine.dispose()
    truth = pd.DataFrame({
        "instrument": frame.ts_code.map(instrument), "datetime": pd.to_datetime(frame.trade_date.map(dates.iso)),
        "open": frame.open, "close": frame.close, "high": frame.high, "low": frame.low,
        "volume": frame.vol * 100 / frame.adj_factor, "factor": frame.adj_factor,
        "change": frame.close / frame.pre_close - 1, "amount": frame.amount * 1000,
        "vwap": frame.amount * 1000 / (frame.vol * 100 / frame.adj_factor), "raw_close": frame.raw_close})
    return truth.set_index(["instrument", "datetime"]).sort_index()


def trading_days(url: str, first: str, last: str) -> list[str]:
    wh = Warehouse(url)
    days = wh.days_with_rows("trade_cal", dates.to_date(first), dates.to_date(last), column="cal_date", is_open=1)
    wh.engine.dispose()
    return sorted(days)


def expected_spans(url: str, first: str, last: str) -> dict[str, tuple[str, str]]:
    """Every stock listed on any day of [first, last], from its first listed day to its last
    (the day before its delisting): what instruments/all.txt must say."""
    days = trading_days(url, first, last)
    wh = Warehouse(url)
    stocks = wh.read("stock_basic")
    wh.engine.dispose()
    spans = {}
    for code, listed, delisted in zip(stocks.ts_code, stocks.list_date, stocks.delist_date, strict=True):
        on = [d for d in days if dates.iso(listed) <= d and (delisted is None or d < dates.iso(delisted))]
        if on:
            spans[instrument(code)] = (on[0], on[-1])
    return spans


def read_instruments(root: Path) -> dict[str, tuple[str, str]]:
    lines = (root / "instruments" / "all.txt").read_text().splitlines()
    return {name: (start, end) for name, start, end in (line.split("\t") for line in lines)}


def file_bytes(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and p.name != "all.txt"}


def assert_equal_at_float32(got: pd.DataFrame, truth: pd.DataFrame) -> None:
    for column in got.columns:
        expected = truth[column].to_numpy(dtype=float).astype(np.float32)
        np.testing.assert_array_equal(got[column].to_numpy(dtype=np.float32), expected, err_msg=column)


def run_export(resources, instance, first, last, raise_on_error=True):
    return materialize_range([qlib_export], first, last, resources, instance, raise_on_error=raise_on_error)


@pytest.mark.slow  # lands a month of the market, then exports it
def test_a_month_opens_in_qlib_equal_to_the_warehouse_and_the_next_day_only_appends(tmp_path, dataset,
                                                                                        monkeypatch):
    monkeypatch.setenv("ZQUANT_EXPORT_DIR", str(tmp_path / "exports"))
    root = tmp_path / "exports" / "qlib"
    url = f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
    with sliced(dataset) as server, dg.instance_for_test() as instance:
        resources = resources_for(server, url)
        materialize_reference(resources, instance)
        assert materialize_range(MARKET_ASSETS + [daily_hfq], FIRST, NEXT, resources, instance).success
        month = run_export(resources, instance, FIRST, LAST)
        spans = expected_spans(url, FIRST, LAST)
        calendar = trading_days(url, FIRST, LAST)
        metadata = month.asset_materializations_for_node("qlib_export")[0].metadata
        assert metadata["days_written"].value == 21 and metadata["instruments"].value == len(spans)

        # The calendar is the month's trading days; instruments/all.txt has every stock listed in
        # it, with the day it listed and the day before it delisted (no survivorship bias).
        assert (root / "calendars" / "day.txt").read_text().splitlines() == calendar and len(calendar) == 21
        assert read_instruments(root) == spans
        assert spans["SZ000542"] == (FIRST, "2020-11-10") and spans["SZ000984"][1] == "2020-11-19"
        assert spans["SZ003018"] == ("2020-11-06", LAST)
        # A stock listed later starts its own files at its first day's calendar index.
        start = np.fromfile(root / "features" / "sz003018" / "close.day.bin", dtype="<f4")[0]
        assert start == calendar.index("2020-11-06") == 4

        # qlib's reader gives the warehouse's values, at float32 precision, and NaN for a listed
        # stock without a bar (suspended).
        truth = warehouse_truth(url, FIRST, LAST)
        names = sorted(spans)[::15] + ["SZ000542", "SZ003018", "SH600519", "SZ000001"]
        got = read_qlib(root, names, FIRST, LAST)
        traded = got.index.intersection(truth.index)
        assert len(traded) > 0.95 * len(got)
        assert_equal_at_float32(got.loc[traded], truth.loc[traded])
        # $close / $factor is the raw close, as qlib's exchange takes it (hfq is rounded to the cent).
        raw, factor = truth.loc[traded, "raw_close"], got.loc[traded, "factor"].astype(float)
        assert ((got.loc[traded, "close"] / factor - raw).abs() <= 0.005 / factor + 1e-6 * raw).all()
        suspended = got.index.difference(truth.index)
        assert len(suspended) and got.loc[suspended].isna().all().all()
        assert got.loc["SZ000542"].index.max() == pd.Timestamp("2020-11-10")

        # The next day: every file's old bytes stay as they were; files only grow at their end.
        before = file_bytes(root)
        day = run_export(resources, instance, NEXT, NEXT)
        after = file_bytes(root)
        assert set(before) <= set(after)
        grown = 0
        for path, old in before.items():
            assert after[path][:len(old)] == old, path
            grown += len(after[path]) - len(old)
        assert (root / "calendars" / "day.txt").read_text().splitlines()[-1] == NEXT
        assert (day.asset_materializations_for_node("qlib_export")[0].metadata["bytes_appended"].value
                == grown + sum(len(after[p]) for p in set(after) - set(before)))
        # A delisted stock's files stay as they were; a listed one's grow by one value.
        assert len(after[root / "features" / "sz000542" / "close.day.bin"]) == 4 * (1 + 7)
        assert len(after[root / "features" / "sh600519" / "close.day.bin"]) == 4 * (1 + 22)
        instruments = read_instruments(root)
        assert instruments["SZ000542"] == (FIRST, "2020-11-10") and instruments["SH600519"] == (FIRST, NEXT)
        next_truth = warehouse_truth(url, NEXT, NEXT)
        listed_next = [n for n, (_, end) in instruments.items() if end == NEXT]
        traded_next = set(next_truth.index.get_level_values("instrument"))
        assert traded_next <= set(listed_next)
        suspended_next = [n for n in listed_next if n not in traded_next]
        assert len(suspended_next) > 10
        got = read_qlib(root, sorted(set(listed_next[::10] + suspended_next)), NEXT, NEXT)
        traded = got.index.intersection(next_truth.index)
        assert len(traded) == len(listed_next[::10]) - len(set(listed_next[::10]) & set(suspended_next))
        assert_equal_at_float32(got.loc[traded], next_truth.loc[traded])
        assert got.loc[got.index.difference(next_truth.index)].isna().all().all()

        # A day landed again with other values is written again in place: no file changes size.
        wh = Warehouse(url)
        with wh.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE daily_hfq SET close = close + 1 WHERE ts_code = '600519.SH' "
                                 "AND trade_date = '2020-11-09'")
        wh.engine.dispose()
        before = after
        relanded = run_export(resources, instance, "2020-11-09", "2020-11-09")
        after = file_bytes(root)
        changed = [p for p in before if after[p] != before[p]]
        assert sorted(changed) == [root / "features" / "sh600519" / f"{name}.day.bin" for name in ("change", "close")]
        assert [len(after[p]) for p in before] == [len(before[p]) for p in before]
        assert relanded.asset_materializations_for_node("qlib_export")[0].metadata["bytes_appended"].value == 0
        assert read_qlib(root, ["SH600519"], "2020-11-09", "2020-11-09").close.item() == np.float32(
            truth.loc[("SH600519", pd.Timestamp("2020-11-09")), "close"] + 1)

        # A day after a hole is refused, and nothing is written.
        refused = run_export(resources, instance, "2020-12-03", "2020-12-03", raise_on_error=False)
        assert not refused.success
        message = refused.get_step_failure_events()[0].step_failure_data.error.message
        assert f"ends at {NEXT}; 2020-12-03 would leave 1 trading day(s) out (2020-12-02): export those first" \
               in message
        assert file_bytes(root) == after


TRADING_DAYS = ["2021-01-04", "2021-01-05", "2021-01-06", "2021-01-07", "2021-01-08"]


def bars(day: str, codes: list[str], close: float = 10.0) -> pd.DataFrame:
    return pd.DataFrame({"ts_code": codes, "trade_date": day, "open": close, "high": close, "low": close,
                         "close": close, "pre_close": close, "vol": 1000.0, "amount": 1.0e4, "adj_factor": 2.0})


LISTINGS = pd.DataFrame({"ts_code": ["600000.SH", "000002.SZ"], "list_date": ["2000-01-04", "2021-01-05"],
                         "delist_date": [None, None]})


def test_a_day_after_a_hole_or_before_the_start_is_refused_and_writes_nothing(tmp_path):
    export = QlibBinExport(tmp_path)
    export.write(TRADING_DAYS[1:3], qlib_fields(pd.concat([bars(d, ["600000.SH"]) for d in TRADING_DAYS[1:3]])),
                 LISTINGS, TRADING_DAYS)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(ExportRefused, match=r"ends at 2021-01-06; 2021-01-08 would leave 1 trading day\(s\) out "
                                            r"\(2021-01-07\): export those first"):
        export.write(TRADING_DAYS[4:], qlib_fields(bars(TRADING_DAYS[4], ["600000.SH"])), LISTINGS, TRADING_DAYS)
    with pytest.raises(ExportRefused, match="starts at 2021-01-05; 2021-01-04 is earlier"):
        export.write(TRADING_DAYS[:1], qlib_fields(bars(TRADING_DAYS[0], ["600000.SH"])), LISTINGS, TRADING_DAYS)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_a_re_exported_day_overwrites_its_values_in_place(tmp_path):
    export = QlibBinExport(tmp_path)
    days = TRADING_DAYS[:3]
    frames = [bars(d, ["600000.SH", "000002.SZ"] if d >= "2021-01-05" else ["600000.SH"]) for d in days]
    export.write(days, qlib_fields(pd.concat(frames)), LISTINGS, TRADING_DAYS)
    path = tmp_path / "features" / "sz000002" / "close.day.bin"
    assert np.fromfile(path, dtype="<f4").tolist() == [1.0, 10.0, 10.0]  # listed on the calendar's 2nd day
    before = {p: p.read_bytes() for p in tmp_path.rglob("*.bin")}
    # 2021-01-05 again: 000002.SZ at 12, and 600000.SH without a bar (suspended after all).
    stats = export.write(days[1:2], qlib_fields(bars(days[1], ["000002.SZ"], close=12.0)), LISTINGS, TRADING_DAYS)
    assert (stats.bytes_appended, stats.days_appended, stats.files_rewritten) == (0, 0, 0)
    assert np.fromfile(path, dtype="<f4").tolist() == [1.0, 12.0, 10.0]
    close = np.fromfile(tmp_path / "features" / "sh600000" / "close.day.bin", dtype="<f4")
    assert close[0] == 0 and close[1] == 10.0 and np.isnan(close[2]) and close[3] == 10.0
    assert all(len(p.read_bytes()) == len(old) for p, old in before.items())
    assert (tmp_path / "calendars" / "day.txt").read_text() == "".join(f"{d}\n" for d in days)
