"""Finance failures are per stock and per period: a reply one stock's rows cannot be kept
from fails that stock alone, recorded and retried, and an attempt limit reached in one
period holds no stock back from another."""

from __future__ import annotations

import json

import dagster as dg
import pandas as pd

from zquant_orchestration.defs.finance import failures
from zquant_orchestration.lib.warehouse import Warehouse

from .dialects import sqlite_url
from .finance_helpers import (
    execute_request,
    finance_assets,
    finance_resources,
    finance_tick,
    materialize_periods,
    truth_finance,
    warehouse_finance,
)
from .market_helpers import materialize_reference

BAD = "000002.SZ"
UNIVERSE = ["000001.SZ", BAD, "600519.SH"]  # one stock before the bad one, one after


class DashInRevenue:
    """The shared dataset, except that one stock's income carries "--" in ``revenue``, as a
    source does for a figure it does not have. ``code = None`` heals it."""

    def __init__(self, dataset, code: str | None):
        self.dataset, self.code = dataset, code

    def query(self, api_name: str, params: dict) -> pd.DataFrame:
        frame = self.dataset.query(api_name, params)
        if api_name == "income" and params.get("ts_code") == self.code and not frame.empty:
            revenue = frame.revenue.astype(object)
            revenue.iloc[0] = "--"
            frame = frame.assign(revenue=revenue)
        return frame

    def __getattr__(self, name):
        return getattr(self.dataset, name)


def test_a_value_its_column_cannot_hold_fails_that_stock_only_recorded_and_retried(tmp_path, dataset, local_server):
    source = DashInRevenue(dataset, BAD)
    server = local_server(dataset=source)
    url = sqlite_url(tmp_path)
    resources = finance_resources(server, url, universe=UNIVERSE, today="2024-12-31")
    income = dg.AssetKey("income")
    only_income = [a for a in finance_assets() if a.key == income]
    with dg.instance_for_test() as instance:
        materialize_reference(resources, instance)
        first = materialize_periods("20240331", "20240930", resources, instance, assets=only_income,
                                    raise_on_error=False)
        assert not first.success
        # The stocks before and after the bad one landed; the bad one is recorded with its error.
        wh = Warehouse(url)
        assert set(wh.query("SELECT DISTINCT ts_code FROM income").ts_code) == {"000001.SZ", "600519.SH"}
        records = failures.latest_records(instance, income)
        for period in ("20240331", "20240630", "20240930"):
            assert set(records[period]) == {BAD}
            assert records[period][BAD].attempts == 1
            assert "income.revenue cannot hold a value" in records[period][BAD].error
        message = first.get_step_failure_events()[0].step_failure_data.error.message
        assert f"{BAD}: ValueError: stage_income.revenue cannot hold a value" in message
        check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(income, "no_failed_stocks")])[dg.AssetCheckKey(income, "no_failed_stocks")]
        evaluation = check.event.dagster_event.event_specific_data
        assert evaluation.passed is False
        listed = json.dumps([r.data for r in evaluation.metadata["failures"].value.records])
        assert BAD in listed and "revenue" in listed

        # The sensor retries it; once the source sends a number, the retry completes the periods.
        retries = [r for r in finance_tick(instance, resources).run_requests if r.tags["zquant/finance"] == "retry"]
        assert [r.run_config["ops"]["income"]["config"]["stocks"] for r in retries] == [[BAD]]
        source.code = None
        assert execute_request(retries[0], resources, instance).success
        assert failures.latest_records(instance, income)["20240930"] == {}
        got = warehouse_finance(url, "income")
        want = truth_finance(dataset, "income", "20240331", "20240930", UNIVERSE)
        pd.testing.assert_frame_equal(got, want[list(got.columns)], check_dtype=False)
        wh.engine.dispose()


def test_an_attempt_limit_reached_in_one_period_holds_the_stock_back_there_only(tmp_path, dataset, local_server):
    server = local_server()
    url = sqlite_url(tmp_path)
    disclosed = dataset.finance.query("disclosure_date", {"end_date": "20240930"})
    out = disclosed[disclosed.actual_date.notna() & (disclosed.actual_date.astype(str) <= "20241030")]
    old_failure, failing_now, exhausted_now = sorted(out.ts_code)[:3]
    resources = finance_resources(server, url, universe=[old_failure, failing_now, exhausted_now],
                                  max_stock_attempts=3, today="2024-10-30")
    income = dg.AssetKey("income")
    with dg.instance_for_test() as instance:
        materialize_reference(resources, instance)
        for period, record in (("20150331", {old_failure: failures.FailedStock("code 50101", 3)}),
                               ("20240930", {failing_now: failures.FailedStock("code 50101", 1),
                                             exhausted_now: failures.FailedStock("code 50101", 3)})):
            instance.report_runless_asset_event(failures.observation(income, period, record))

        requests = finance_tick(instance, resources).run_requests
        q3 = [r for r in requests if r.tags["zquant/finance"] == "incremental"
              and r.tags["dagster/asset_partition_range_end"] == "20240930"]
        assert len(q3) == 1
        stocks = q3[0].run_config["ops"]
        # 2015Q1's exhausted stock is asked for its new 2024Q3 report, in every statement.
        assert stocks["income"]["config"]["stocks"] == [old_failure]
        for api in ("balancesheet", "cashflow", "fina_indicator"):
            assert stocks[api]["config"]["stocks"] == sorted([old_failure, failing_now, exhausted_now])
        # In 2024Q3 itself the stock below the limit is retried, the exhausted one is left failed.
        retries = [r for r in requests if r.tags["zquant/finance"] == "retry"]
        assert [r.run_config["ops"]["income"]["config"]["stocks"] for r in retries] == [[failing_now]]


def test_a_refusal_of_the_account_stops_the_run_at_the_first_stock(tmp_path, dataset, local_server):
    server = local_server(denied_apis=("income",))  # the account lacks the points for income
    url = sqlite_url(tmp_path)
    resources = finance_resources(server, url, universe=UNIVERSE)
    with dg.instance_for_test() as instance:
        materialize_reference(resources, instance)
        result = materialize_periods("20240930", "20240930", resources, instance,
                                     assets=[a for a in finance_assets() if a.key.path == ["income"]],
                                     raise_on_error=False)
        assert not result.success
        message = result.get_step_failure_events()[0].step_failure_data.error.message
        assert "Tushare refused income for lack of permission" in message
        assert len([r for r in server.requests if r.get("api") == "income"]) == 1, "not one call per stock"
        assert failures.latest_records(instance, dg.AssetKey("income")) == {}, "no stock's failure: the account's"
