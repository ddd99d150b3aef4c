"""daily_factors against a plain pandas calculation over the same rows, backfill ranges
that equal day-by-day runs, a missing lookback refused, and the eager automation."""

from __future__ import annotations

import math
import statistics
from datetime import datetime

import dagster as dg
import pandas as pd
import pytest

from zquant_orchestration.defs.derived.assets import daily_factors, daily_hfq
from zquant_orchestration.defs.shared.partitions import SHANGHAI, trading_days
from zquant_orchestration.defs.warehouse.resources import WarehouseResource
from zquant_orchestration.lib.factors import FACTOR_COLUMNS
from zquant_orchestration.lib.warehouse import Warehouse

from .market_helpers import API_OF_TABLE
from .shared_landing import landed_copy

TARGETS = ("2024-04-01", "2024-04-03")


@pytest.fixture(scope="module")
def days() -> list[str]:
    """The trading days, read when a test asks for them rather than when the module is imported."""
    return trading_days.get_partition_keys()


@pytest.fixture(scope="module")
def window(days) -> list[str]:
    """The targets and the 60 trading days of lookback before them."""
    return days[days.index(TARGETS[0]) - 60:days.index(TARGETS[1]) + 1]


def _write_the_window(folder, dataset, window) -> None:
    url = f"sqlite:///{folder / 'warehouse.sqlite'}"
    wh = Warehouse(url)
    daily = dataset.truth("daily", window[0].replace("-", ""), window[-1].replace("-", ""))
    stocks = sorted(set(daily.ts_code))[::14][:390] + ["000001.SZ", "600519.SH", "601318.SH"]
    for table in ("daily_bars", "adj_factor", "daily_basic"):
        rows = dataset.truth(API_OF_TABLE[table], window[0].replace("-", ""), window[-1].replace("-", ""))
        rows = rows[rows.ts_code.isin(stocks)]
        for day, frame in rows.groupby("trade_date"):
            wh.replace_rows(table, frame, {"trade_date": [f"{day[:4]}-{day[4:6]}-{day[6:]}"]})
    wh.engine.dispose()
    resources = {"warehouse": WarehouseResource(url=url)}
    (folder / "dagster_home").mkdir()
    with dg.instance_for_test(temp_dir=str(folder / "dagster_home")) as instance:
        assert dg.materialize([daily_hfq], resources=resources, instance=instance, tags=_range(window[0], window[-1]))


@pytest.fixture
def warehouse(tmp_path, tmp_path_factory, dataset, window):
    """The source's rows of 400 stocks (the real ten among them) over the targets' window,
    written straight into the warehouse (the factors read the warehouse, not Tushare), and
    daily_hfq materialized from them in the instance. Made once per session and copied here,
    warehouse and instance: the tests change both."""
    landed_copy(tmp_path_factory, "factors-window", lambda folder: _write_the_window(folder, dataset, window),
                tmp_path)
    url = f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
    wh = Warehouse(url)
    resources = {"warehouse": WarehouseResource(url=url)}
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as instance:
        yield wh, resources, instance
    wh.engine.dispose()


def _range(first: str, last: str) -> dict:
    return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}


def _materialize(resources, instance, first, last, raise_on_error=True):
    return dg.materialize([daily_factors], resources=resources, instance=instance, tags=_range(first, last),
                          raise_on_error=raise_on_error)


def plain_factors(wh: Warehouse, day: str, days: list[str]) -> pd.DataFrame:
    """The definitions of lib/factors.py, one stock and one day at a time, with no pandas windows."""
    i = days.index(day)
    hfq = wh.query("SELECT ts_code, trade_date, close FROM daily_hfq")
    basic = wh.query("SELECT * FROM daily_basic")
    close = {(c, str(d)): v for c, d, v in zip(hfq.ts_code, hfq.trade_date, hfq.close, strict=True)}
    by_key = basic.assign(trade_date=basic.trade_date.astype(str)).set_index(["ts_code", "trade_date"])
    rows = []
    for code in sorted({c for c, d in close if d == day}):
        def c(k, code=code):
            return close.get((code, days[k]), math.nan)

        returns = [c(k) / c(k - 1) - 1 for k in range(i - 19, i + 1)]
        turnover = [by_key.turnover_rate.get((code, days[k]), math.nan) for k in range(i - 19, i + 1)]
        turnover = [t for t in turnover if not math.isnan(t)]
        today = by_key.loc[(code, day)] if (code, day) in by_key.index else None

        def inverse(name, today=today):
            value = math.nan if today is None else today[name]
            return 1 / value if value and value > 0 else math.nan

        rows.append({
            "ts_code": code,
            "mom_20": c(i) / c(i - 20) - 1,
            "mom_60": c(i) / c(i - 60) - 1,
            "vol_20": math.nan if any(math.isnan(r) for r in returns) else statistics.stdev(returns) * math.sqrt(252),
            "turnover_20": sum(turnover) / len(turnover) if len(turnover) >= 10 else math.nan,
            "ep_ttm": inverse("pe_ttm"), "bp": inverse("pb"), "sp_ttm": inverse("ps_ttm"),
            "dv_ttm": math.nan if today is None else today["dv_ttm"],
            "log_mv": math.nan if today is None or not today["total_mv"] > 0 else math.log(today["total_mv"]),
        })
    return pd.DataFrame(rows).set_index("ts_code").astype(float)


def stored(wh: Warehouse, day: str) -> pd.DataFrame:
    frame = wh.query("SELECT * FROM daily_factors WHERE trade_date = :day", day=day)
    return frame.drop(columns="trade_date").set_index("ts_code").sort_index().astype(float)


@pytest.mark.slow  # a plain-Python calculation of every factor of 400 stocks over three days
def test_factors_equal_a_plain_calculation_and_a_range_equals_single_days(warehouse, days):
    wh, resources, instance = warehouse
    assert _materialize(resources, instance, *TARGETS).success
    for day in days[days.index(TARGETS[0]):days.index(TARGETS[1]) + 1]:
        got, want = stored(wh, day), plain_factors(wh, day, days)
        assert list(got.index) == list(want.index) and len(got) > 300
        pd.testing.assert_frame_equal(got[FACTOR_COLUMNS], want[FACTOR_COLUMNS], rtol=1e-9)
        assert got.mom_60.notna().mean() > 0.8 and got.vol_20.notna().mean() > 0.8, "most values are real numbers"
    # One partition alone gives exactly what the range run gave it.
    in_range = stored(wh, "2024-04-02")
    assert _materialize(resources, instance, "2024-04-02", "2024-04-02").success
    pd.testing.assert_frame_equal(stored(wh, "2024-04-02"), in_range)


def test_a_missing_lookback_day_fails_the_run_and_writes_nothing(warehouse, window):
    wh, resources, instance = warehouse
    with wh.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM daily_hfq WHERE trade_date = ?", (window[5],))
    result = _materialize(resources, instance, *TARGETS, raise_on_error=False)
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert (f"daily_factors of 2024-04-01..2024-04-03 reads daily_hfq from {window[0]} (60 trading days before); "
            f"1 of those days have not landed ({window[5]}): materialize daily_hfq for them first") in message
    assert wh.scalar("SELECT COUNT(*) FROM daily_factors") == 0


@pytest.mark.slow  # one of the longest in-process tests
def test_the_eager_condition_waits_for_the_whole_lookback(warehouse, days):
    _, resources, instance = warehouse
    latest = "2024-04-03"
    evening = datetime(2024, 4, 3, 20, 0, tzinfo=SHANGHAI)
    source = dg.AssetSpec("daily_basic", partitions_def=trading_days)  # its Tushare side plays no part here
    defs = dg.Definitions(assets=[daily_factors, daily_hfq, source], resources=resources)

    cursor = None

    def requested():
        nonlocal cursor
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=evening,
                                                   asset_selection=dg.AssetSelection.assets(daily_factors),
                                                   cursor=cursor)
        cursor = result.cursor
        return set(result.get_requested_partitions(daily_factors.key))

    window = days[days.index(latest) - 60:days.index(latest) + 1]
    for key in window[1:]:  # the oldest day of the lookback is missing
        instance.report_runless_asset_event(dg.AssetMaterialization("daily_hfq", partition=key))
    for key in window[-20:]:
        instance.report_runless_asset_event(dg.AssetMaterialization("daily_basic", partition=key))
    assert requested() == set()
    instance.report_runless_asset_event(dg.AssetMaterialization("daily_hfq", partition=window[0]))
    assert requested() == {latest}
