"""The market assets as a user runs them: rows in the warehouse, partitions in Dagster."""

from __future__ import annotations

from datetime import date

import dagster as dg
import pytest

from zquant_orchestration.defs.market.assets import daily_bars
from zquant_orchestration.defs.market.reference_assets import stock_basic
from zquant_orchestration.defs.shared.partitions import trading_days
from zquant_orchestration.lib.tushare.client import EMPTY_REPLY_ATTEMPTS
from zquant_orchestration.lib.tushare_server import Dataset, FaultPlan
from zquant_orchestration.lib.warehouse import Warehouse

from .dialects import warehouse_urls
from .market_helpers import (
    MARKET_ASSETS,
    ChangedReplies,
    assert_same,
    emptied,
    materialize_range,
    materialize_reference,
    normalized,
    resources_for,
    rows_where,
    step_retries_at_once,
    truth_rows,
    warehouse_rows,
    without_column,
)


def test_partitions_are_sse_open_days_only():
    keys = trading_days.get_partition_keys()
    assert keys[0] == "1990-12-19"
    as_dates = [date.fromisoformat(k) for k in keys]
    assert all(d.weekday() < 5 for d in as_dates)
    assert "2024-02-08" in keys and "2024-02-09" not in keys and "2024-02-12" not in keys  # Spring Festival
    assert len(trading_days.get_partition_keys_in_range(dg.PartitionKeyRange("2024-01-02", "2024-01-31"))) == 22


@pytest.mark.parametrize("make_url", warehouse_urls(postgres_marks=pytest.mark.slow))
def test_reference_data_and_a_range_land_exactly_the_servers_rows(local_server, tmp_path, make_url):
    url = make_url(tmp_path)
    server = local_server(faults=FaultPlan(rate=0.2, seed=11, kinds=("http_5xx", "truncated_json", "error_code")))
    resources = resources_for(server, url)
    instance = dg.DagsterInstance.ephemeral()
    assert materialize_reference(resources, instance).success
    result = materialize_range(MARKET_ASSETS, "2024-01-02", "2024-01-10", resources, instance)
    assert result.success

    for table in ("daily_bars", "adj_factor", "daily_basic"):
        assert_same(warehouse_rows(url, table), truth_rows(server, table, "2024-01-02", "2024-01-10"))
    stocks = warehouse_rows(url, "stock_basic")
    assert_same(stocks, normalized(server.dataset.query("stock_basic", {"list_status": "L,D,P"})))
    assert set(stocks.list_status) == {"L", "D", "P"}
    calendar = warehouse_rows(url, "trade_cal")
    assert set(calendar.exchange) == {"SSE", "SZSE", "CFFEX", "SHFE", "CZCE", "DCE", "INE"}

    expected_keys = {"2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05", "2024-01-08", "2024-01-09",
                     "2024-01-10"}
    assert instance.get_materialized_partitions(daily_bars.key) == expected_keys
    materialization = result.asset_materializations_for_node("daily_bars")[0]
    metadata = {k: v.value for k, v in materialization.metadata.items()}
    assert metadata["rows"] == len(warehouse_rows(url, "daily_bars"))
    assert metadata["api_calls"] == 7 and metadata["trading_days"] == 7
    assert metadata["retries"] >= 1, "faults were retried"
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"no_duplicate_keys": True, "ohlc_sane": True, "rows_match_listed_universe": True,
                      "adj_factor_covers_daily_bars": True}


def test_an_open_day_without_rows_fails_and_marks_no_partition(local_server, tmp_path):
    # The source's "today" is 2024-01-05: 2024-01-08 is an open day with nothing published yet.
    server = local_server(dataset=Dataset(as_of="20240105"))
    url = f"sqlite:///{tmp_path / 'wh.sqlite'}"
    instance = dg.DagsterInstance.ephemeral()
    result = materialize_range([daily_bars], "2024-01-04", "2024-01-08", resources_for(server, url), instance,
                               raise_on_error=False)
    assert not result.success
    failure = result.failure_data_for_node("daily_bars")
    assert "daily(trade_date=20240108) returned no rows where rows must exist" in failure.error.message
    assert instance.get_materialized_partitions(daily_bars.key) == set()
    landed = Warehouse(url).read("daily_bars")
    assert sorted({d.isoformat() for d in landed.trade_date}) == ["2024-01-04", "2024-01-05"]
    # An empty day is asked again (a faulty source's empty reply would pass on a second call),
    # then the step fails without a step retry: the gap sensor re-requests the day later.
    assert len(server.requests) == 2 + EMPTY_REPLY_ATTEMPTS


def test_a_day_with_more_than_6000_stocks_lands_whole_through_paging(local_server, tmp_path):
    server = local_server(dataset=Dataset(as_of="20241231", extra_stocks=900))
    url = f"sqlite:///{tmp_path / 'wh.sqlite'}"
    resources = resources_for(server, url)
    instance = dg.DagsterInstance.ephemeral()
    assert materialize_range([daily_bars], "2024-01-02", "2024-01-02", resources, instance).success
    got = warehouse_rows(url, "daily_bars")
    assert len(got) > 6000
    assert_same(got, truth_rows(server, "daily_bars", "2024-01-02", "2024-01-02"))
    assert [r["params"]["offset"] for r in server.requests if r["api"] == "daily"] == [0, 6000]


@pytest.mark.parametrize("change", [without_column("daily", "close"), emptied("daily", "close")],
                         ids=["reply_without_close", "close_null_in_a_row"])
def test_a_day_whose_reply_lacks_close_lands_nothing_and_marks_no_partition(dataset, tmp_path, monkeypatch, change):
    """On every attempt: the run fails naming the API, day and column, no NULL close lands,
    and no partition is materialized, so the gap sensor and the next run fetch the days again."""
    step_retries_at_once(monkeypatch, daily_bars)
    url = f"sqlite:///{tmp_path / 'wh.sqlite'}"
    instance = dg.DagsterInstance.ephemeral()
    with ChangedReplies(change, dataset=dataset) as server:
        result = materialize_range([daily_bars], "2024-01-02", "2024-01-03", resources_for(server, url), instance,
                                   raise_on_error=False)
    assert not result.success
    assert len([e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]) == 2
    message = result.failure_data_for_node("daily_bars").error.to_string()
    assert "daily(trade_date=20240102)" in message and "close" in message
    assert instance.get_materialized_partitions(daily_bars.key) == set()
    assert Warehouse(url).scalar("SELECT COUNT(*) FROM daily_bars") == 0


def test_an_empty_delisted_list_or_a_missing_stock_is_refused_unless_forced(local_server, dataset, tmp_path):
    """An empty but successful stock_basic(list_status=D), or a list without a stock the table
    holds, would delete stocks: refused in one line, the table kept; allow_removals forces it."""
    url = f"sqlite:///{tmp_path / 'wh.sqlite'}"
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize([stock_basic], resources=resources_for(local_server(), url), instance=instance).success
    held = warehouse_rows(url, "stock_basic")
    delisted = int((held.list_status == "D").sum())
    assert delisted > 0

    def run(change, force=False):
        config = {"ops": {"stock_basic": {"config": {"allow_removals": True}}}} if force else None
        with ChangedReplies(change, dataset=dataset) as server:
            return dg.materialize([stock_basic], resources=resources_for(server, url), instance=instance,
                                  raise_on_error=False, run_config=config)

    no_delisted = rows_where("stock_basic", lambda params, rows: rows.list_status != "D")
    refused = run(no_delisted)
    assert not refused.success
    message = refused.failure_data_for_node("stock_basic").error.message.strip()
    assert "stock_basic(list_status=D) returned no stocks" in message and "allow_removals" in message
    assert "\n" not in message
    assert_same(warehouse_rows(url, "stock_basic"), held)

    refused = run(rows_where("stock_basic", lambda params, rows: rows.ts_code != "600519.SH"))
    assert not refused.success
    message = refused.failure_data_for_node("stock_basic").error.message
    assert "lacks 1 of the" in message and "(600519.SH)" in message and "allow_removals" in message
    assert_same(warehouse_rows(url, "stock_basic"), held)

    forced = run(no_delisted, force=True)
    assert forced.success
    assert (warehouse_rows(url, "stock_basic").list_status == "D").sum() == 0
    metadata = forced.asset_materializations_for_node("stock_basic")[0].metadata
    assert metadata["stocks_removed"].value == delisted

    # P (listing suspended) may rightly be empty at Tushare: a first refresh without any lands.
    fresh = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    with ChangedReplies(rows_where("stock_basic", lambda params, rows: rows.list_status != "P"),
                        dataset=dataset) as server:
        assert dg.materialize([stock_basic], resources=resources_for(server, fresh), instance=instance).success
    assert set(warehouse_rows(fresh, "stock_basic").list_status) == {"L", "D"}
