"""Every fault kind the local server knows, all at once, on about a fifth of the calls: what
lands still equals the server's truth, column by column, with no NULL where the truth has a
value. The faults are the real service's: HTTP errors, dropped connections, timeouts, garbage
and truncated JSON, error codes, successful replies that are empty, lack a requested column or
carry one nobody asked for."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from zquant_orchestration.defs.finance.partitions import report_periods
from zquant_orchestration.defs.finance.resources import FinanceSettings
from zquant_orchestration.lib.tushare_server import ALL_FAULT_KINDS, DATA_FAULT_KINDS, FaultPlan
from zquant_orchestration.lib.warehouse.tables import FINANCE_TABLES

from .dialects import sqlite_url
from .finance_helpers import (
    assert_finance_equal,
    execute_request,
    finance_resources,
    finance_tick,
    materialize_periods,
    sample_universe,
)
from .market_helpers import (
    MARKET_ASSETS,
    assert_same,
    materialize_range,
    materialize_reference,
    normalized,
    resources_for,
    truth_rows,
    warehouse_rows,
)

pytestmark = pytest.mark.slow  # years of history under every fault kind

# The client gives up after 2 s (resources_for); a slow reply takes longer, so it times out.
ALL_FAULTS = dict(rate=0.2, kinds=ALL_FAULT_KINDS, slow_seconds=2.5)


def assert_no_lost_values(got: pd.DataFrame, truth: pd.DataFrame, table: str) -> None:
    truth = truth[list(got.columns)].reset_index(drop=True)
    lost = {c: int((got[c].isna() & truth[c].notna()).sum()) for c in got.columns}
    assert not any(lost.values()), f"{table}: NULL where the source has a value: {lost}"


def test_a_month_of_market_data_and_every_listed_status_land_whole_under_every_fault(local_server, tmp_path):
    server = local_server(faults=FaultPlan(seed=18, **ALL_FAULTS))
    assert set(server.faults.kinds) >= {"empty", "missing_column", "extra_column", "slow", "drop"}
    url = sqlite_url(tmp_path)
    resources = resources_for(server, url)
    with dg.instance_for_test() as instance:
        assert materialize_reference(resources, instance).success
        assert materialize_range(MARKET_ASSETS, "2024-03-01", "2024-03-29", resources, instance).success

    faults = {r.get("fault") for r in server.requests} - {None}
    assert faults >= set(DATA_FAULT_KINDS) and len(faults) >= 6, f"faults drawn: {faults}"
    for table in ("daily_bars", "adj_factor", "daily_basic"):
        got, truth = warehouse_rows(url, table), truth_rows(server, table, "2024-03-01", "2024-03-29")
        assert_no_lost_values(got, truth, table)
        assert_same(got, truth)
    stocks = warehouse_rows(url, "stock_basic")
    truth = normalized(server.dataset.query("stock_basic", {"list_status": "L,D,P"}))
    assert_no_lost_values(stocks, truth, "stock_basic")
    assert_same(stocks, truth)
    assert set(stocks.list_status) == {"L", "D", "P"}
    assert stocks.exchange.notna().all() and stocks[stocks.list_status == "D"].delist_date.notna().all()


def test_a_finance_history_lands_whole_under_every_fault(local_server, tmp_path, dataset):
    universe = sample_universe(dataset)
    server = local_server(faults=FaultPlan(seed=19, **ALL_FAULTS))
    url = sqlite_url(tmp_path)
    resources = finance_resources(server, url, universe=universe, today="2024-12-31")
    with dg.instance_for_test() as instance:
        assert materialize_reference(resources, instance).success
        result = materialize_periods("20200331", "20241231", resources, instance, raise_on_error=False)
        # A stock the faults kept failing past the client's retries is the run's visible
        # failure, never a silent gap; the sensor's retry run, as the daemon makes it, lands it.
        for _ in range(FinanceSettings().max_stock_attempts - 1):
            if result.success:
                break
            retries = [r for r in finance_tick(instance, resources).run_requests if r.tags["zquant/finance"] == "retry"]
            assert retries, "a failed run leaves its failed stocks for the sensor to retry"
            outcomes = [execute_request(r, resources, instance) for r in retries]
            result = outcomes[-1] if all(o.success for o in outcomes) else next(o for o in outcomes if not o.success)
        assert result.success
        for api in FINANCE_TABLES:
            statuses = instance.get_status_by_partition(dg.AssetKey(api), ["20200331", "20240930"], report_periods)
            assert set(statuses.values()) == {dg.AssetPartitionStatus.MATERIALIZED}, api
    faults = {r.get("fault") for r in server.requests} - {None}
    assert faults >= set(DATA_FAULT_KINDS) and len(faults) >= 6, f"faults drawn: {faults}"
    assert_finance_equal(url, dataset, "20200331", "20241231", universe)
