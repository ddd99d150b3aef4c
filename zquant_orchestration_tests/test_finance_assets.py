"""Financial statements: history equals the source with every version, incremental syncs
call Tushare only for what changed, the point-in-time read has no look-ahead, and a stock
that keeps failing is retried, then left failed and visible."""

from __future__ import annotations

import json

import dagster as dg
import pandas as pd
import pytest

from zquant_orchestration.defs.finance import failures
from zquant_orchestration.defs.tushare.resources import TushareResource
from zquant_orchestration.lib.tushare_server import LOCAL_TOKEN, Dataset, FaultPlan
from zquant_orchestration.lib.warehouse import Warehouse
from zquant_orchestration.lib.warehouse.tables import FINANCE_TABLES

from .dialects import sqlite_url, warehouse_urls
from .finance_helpers import (
    assert_finance_equal,
    execute_request,
    finance_assets,
    finance_periods,
    finance_resources,
    finance_tick,
    materialize_periods,
    sample_universe,
)
from .market_helpers import materialize_reference

T1, T2 = "20241015", "20241030"  # Q3 2024 reports are coming in; the deadline is 10-31


@pytest.mark.slow  # three years of a sample universe under faults: the vip test lands the same rows faster
@pytest.mark.parametrize("make_url", warehouse_urls())
def test_history_of_a_sample_universe_equals_the_source_with_every_version_under_faults(
        make_url, tmp_path, dataset, local_server):
    universe = sample_universe(dataset)
    # Every fault kind; "slow" stays under the client's timeout here (test_tushare_resource times it out).
    server = local_server(faults=FaultPlan(rate=0.3, seed=11, slow_seconds=0.3))
    url = make_url(tmp_path)
    resources = finance_resources(server, url, universe=universe)
    with dg.instance_for_test() as instance:
        materialize_reference(resources, instance)
        result = materialize_periods("20220331", "20241231", resources, instance)
        assert result.success
        # per_stock mode: one call per stock and statement for three years, faults retried.
        answered = [r for r in server.requests if r.get("api") == "income" and r.get("code") == 0
                    and r["fault"] in (None, "slow")]
        assert len(answered) == len(universe)
        assert_finance_equal(url, dataset, "20220331", "20241231", universe)
        wh = Warehouse(url)
        restated = wh.query("SELECT COUNT(*) AS n FROM income WHERE update_flag = 1").n[0]
        assert restated >= 6, "restated versions are kept beside the originals"
        # The point-in-time view (plain SQL in both dialects): one version per report, the newest known.
        known = wh.point_in_time("income", "20241231", universe)
        assert not known.duplicated(["ts_code", "end_date"]).any()
        assert len(known) == len(wh.query("SELECT DISTINCT ts_code, end_date FROM income"))
        # Running a period again rewrites it exactly: nothing duplicated.
        assert materialize_periods("20240930", "20240930", resources, instance).success
        assert_finance_equal(url, dataset, "20220331", "20241231", universe)
        status = instance.get_status_by_partition(dg.AssetKey("income"), ["20220331", "20241231"], finance_periods())
        assert set(status.values()) == {dg.AssetPartitionStatus.MATERIALIZED}
        wh.engine.dispose()


@pytest.mark.slow  # one of the longest in-process tests
def test_vip_mode_lands_the_same_rows_with_a_call_per_period(tmp_path, dataset, local_server):
    universe = sample_universe(dataset)
    server = local_server(faults=FaultPlan(rate=0.2, seed=5, slow_seconds=0.3))
    url = sqlite_url(tmp_path)
    # The server's today: 2024Q4's reports are not due yet, so that period may be empty.
    resources = finance_resources(server, url, universe=universe, mode="vip", today="2024-12-31")
    with dg.instance_for_test() as instance:
        materialize_reference(resources, instance)
        assert materialize_periods("20240331", "20241231", resources, instance).success
    assert_finance_equal(url, dataset, "20240331", "20241231", universe)
    vip = [r for r in server.requests if r.get("api") == "income_vip" and r.get("code") == 0
           and r["fault"] in (None, "slow")]
    quarters = {f"2024{q}" for q in ("0331", "0630", "0930", "1231")}
    assert {r["params"]["period"] for r in vip} == quarters
    assert not [r for r in server.requests if r.get("api") == "income"], "no per-stock calls in vip mode"


@pytest.mark.slow  # several report periods synced twice, one of the longest in-process tests
def test_incremental_run_syncs_new_disclosures_and_restatements_with_point_in_time_reads(tmp_path, local_server):
    dataset = Dataset(as_of=T1)
    later = Dataset(as_of=T2)  # what the server will know after it publishes
    dis = later.finance.query("disclosure_date", {"end_date": "20240930"})
    fresh = set(dis[dis.actual_date.notna() & (dis.actual_date > T1) & (dis.actual_date <= T2)].ts_code)
    versions = later.truth("income", "20230331", "20240930")
    restated_now = versions[(versions.update_flag == 1) & (versions.ann_date > T1) & (versions.ann_date <= T2)]
    restated = sorted(set(restated_now.ts_code) & fresh)[:2]
    early = sorted(set(dis[dis.actual_date.notna() & (dis.actual_date <= T1)].ts_code))[:4]
    quiet = sorted(set(dis.ts_code) - fresh - set(early) - set(restated_now.ts_code))[:3]
    new = sorted(fresh - set(restated_now.ts_code))[:6]
    universe = sorted(set(restated) | set(early) | set(quiet) | set(new))
    disclosing = sorted(set(restated) | set(new))

    server = local_server(dataset=dataset)
    url = sqlite_url(tmp_path)
    resources = finance_resources(server, url, universe=universe, today="2024-10-15")
    with dg.instance_for_test() as instance:
        materialize_reference(resources, instance)
        assert materialize_periods("20230331", "20240930", resources, instance).success
        assert_finance_equal(url, dataset, "20230331", "20240930", universe)

        dataset.set_as_of(T2)  # the server publishes the new reports and the restatements
        resources = finance_resources(server, url, universe=universe, today="2024-10-30")
        before = len(server.requests)
        result = finance_tick(instance, resources)
        assert len(result.run_requests) == 1
        request = result.run_requests[0]
        assert request.tags["dagster/asset_partition_range_end"] == "20240930"
        for api in FINANCE_TABLES:
            assert request.run_config["ops"][api]["config"]["stocks"] == disclosing
        assert execute_request(request, resources, instance, raise_on_error=True).success

        calls = [r for r in server.requests[before:] if r.get("api") == "income"]
        assert len(calls) == len(disclosing), "one income call per new disclosure, none for the quiet stocks"
        assert_finance_equal(url, dataset, "20230331", "20240930", universe)

        # The restated report: the old figure before the restatement was announced, the new after.
        row = restated_now[restated_now.ts_code == restated[0]].iloc[0]
        original = versions[(versions.ts_code == row.ts_code) & (versions.end_date == row.end_date)
                            & (versions.update_flag == 0)].iloc[0]
        wh = Warehouse(url)
        day_before = (pd.Timestamp(row.ann_date) - pd.Timedelta(days=1)).strftime("%Y%m%d")
        old = wh.point_in_time("income", day_before, [row.ts_code], [row.end_date])
        new_ = wh.point_in_time("income", row.ann_date, [row.ts_code], [row.end_date])
        assert len(old) == len(new_) == 1
        assert old.n_income[0] == pytest.approx(original.n_income) and old.update_flag[0] == 0
        assert new_.n_income[0] == pytest.approx(row.n_income) and new_.update_flag[0] == 1
        assert original.n_income != pytest.approx(row.n_income)
        # Before its first announcement a report is unknown: no look-ahead.
        assert wh.point_in_time("income", "20240101", [row.ts_code], ["20240930"]).empty
        wh.engine.dispose()

        # Nothing new: the next tick requests nothing, and costs one disclosure_date call.
        before = len(server.requests)
        again = finance_tick(instance, resources, result.cursor)
        assert again.run_requests == []
        assert {r.get("api") for r in server.requests[before:]} == {"disclosure_date"}


@pytest.mark.slow  # three sensor rounds of retries; test_finance_failures covers retries in the fast tier
def test_a_stock_that_keeps_failing_is_retried_then_left_failed_and_visible(tmp_path, dataset, local_server):
    broken = "000002.SZ"
    universe = ["000001.SZ", broken, "600519.SH"]
    server = local_server(faults=FaultPlan(failing_stocks=(broken,)))
    url = sqlite_url(tmp_path)
    resources = finance_resources(server, url, universe=universe, max_stock_attempts=3, today="2024-12-31")
    resources["tushare"] = TushareResource(token=LOCAL_TOKEN, http_url=server.url, max_attempts=2, backoff_seconds=0.01)
    income = dg.AssetKey("income")
    with dg.instance_for_test() as instance:
        materialize_reference(resources, instance)
        first = materialize_periods("20240331", "20240930", resources, instance, raise_on_error=False)
        assert not first.success
        # The other stocks landed; the broken one is recorded with its error.
        wh = Warehouse(url)
        landed = set(wh.query("SELECT DISTINCT ts_code FROM income").ts_code)
        assert landed == {"000001.SZ", "600519.SH"}
        record = failures.latest_records(instance, income)["20240930"][broken]
        assert record.attempts == 1 and "code 50101" in record.error and "failed 2 times" in record.error

        for attempt in (2, 3):
            evaluation = finance_tick(instance, resources)
            retries = [r for r in evaluation.run_requests if r.tags["zquant/finance"] == "retry"]
            assert [r.run_config["ops"]["income"]["config"]["stocks"] for r in retries if "income" in
                    r.run_config["ops"]] == [[broken]]
            for request in retries:
                assert not execute_request(request, resources, instance).success
            assert failures.latest_records(instance, income)["20240930"][broken].attempts == attempt

        evaluation = finance_tick(instance, resources)
        retries = [r for r in evaluation.run_requests if r.tags["zquant/finance"] == "retry"]
        assert not retries, "no retry after 3 attempts"
        # Visible: the partitions are failed, the check failed with the stock and its error.
        status = instance.get_status_by_partition(income, ["20240331", "20240930"], finance_periods())
        assert set(status.values()) == {dg.AssetPartitionStatus.FAILED}
        check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(income, "no_failed_stocks")])[dg.AssetCheckKey(income, "no_failed_stocks")]
        evaluation = check.event.dagster_event.event_specific_data
        assert evaluation.passed is False
        assert broken in json.dumps([r.data for r in evaluation.metadata["failures"].value.records])

        # Once the source heals, a manual run of that stock completes the partitions.
        server.faults = FaultPlan()
        config = {"ops": {"income": {"config": {"stocks": [broken]}}}}
        dg_income = [a for a in finance_assets() if a.key == income]
        assert materialize_periods("20240331", "20240930", resources, instance, assets=dg_income,
                                   run_config=config).success
        assert failures.latest_records(instance, income)["20240930"] == {}
        status = instance.get_status_by_partition(income, ["20240331", "20240930"], finance_periods())
        assert set(status.values()) == {dg.AssetPartitionStatus.MATERIALIZED}
        assert broken in set(wh.query("SELECT DISTINCT ts_code FROM income").ts_code)
        wh.engine.dispose()


def test_unknown_stocks_in_run_config_are_refused_at_launch_and_nothing_is_called(tmp_path, dataset, local_server):
    server = local_server()
    url = sqlite_url(tmp_path)
    resources = finance_resources(server, url)
    with dg.instance_for_test() as instance:
        materialize_reference(resources, instance)
        before = len(server.requests)
        config = {"ops": {"income": {"config": {"stocks": ["600519.SH", "123456.XX"]}}}}
        with pytest.raises(dg.DagsterInvalidConfigError,
                           match=r"root:ops:income:config:stocks\[1\] not in enum type StockCode got 123456.XX"):
            materialize_periods("20240930", "20240930", resources, instance,
                                assets=[a for a in finance_assets() if a.key.path == ["income"]], run_config=config)
        assert instance.get_runs_count() == 1, "only the reference run: no run was created"
        assert len(server.requests) == before
        assert Warehouse(url).scalar("SELECT COUNT(*) FROM income") == 0


def test_an_unknown_stock_in_the_universe_fails_the_step_before_any_call(tmp_path, dataset, local_server):
    server = local_server()
    url = sqlite_url(tmp_path)
    resources = finance_resources(server, url, universe=["600519.SH", "123456.XX"])
    with dg.instance_for_test() as instance:
        materialize_reference(resources, instance)
        before = len(server.requests)
        result = materialize_periods("20240930", "20240930", resources, instance,
                                     assets=[a for a in finance_assets() if a.key.path == ["income"]],
                                     raise_on_error=False)
        assert not result.success
        failure = result.get_step_failure_events()[0].step_failure_data.error.message
        assert "ZQUANT_FINANCE_UNIVERSE names stocks stock_basic does not know: 123456.XX" in failure
        assert len(server.requests) == before
        assert Warehouse(url).scalar("SELECT COUNT(*) FROM income") == 0


LATE = "001279.SZ"


def test_after_the_deadline_listed_stocks_without_a_report_are_tried_once_a_day(tmp_path, dataset, local_server):
    server = local_server()
    url = sqlite_url(tmp_path)
    synced = finance_resources(server, url, universe=["600519.SH", "000001.SZ"])
    resources = finance_resources(server, url, universe=["600519.SH", "000001.SZ", LATE],
                                  today="2024-11-05")
    with dg.instance_for_test() as instance:
        materialize_reference(synced, instance)
        assert materialize_periods("20240930", "20240930", synced, instance).success
        # A listed stock Tushare has no Q3 report for (a late filer): nothing was landed for it.
        # 001279.SZ listed in 2024-10 (no report before Q4 at the source); the warehouse is told
        # it listed in 2001, so its Q3 and H1 reports are overdue.
        wh = Warehouse(url)
        late = wh.read("stock_basic", {"ts_code": ["600519.SH"]}).assign(ts_code=LATE, symbol=LATE[:6])
        wh.replace_rows("stock_basic", late, {"ts_code": [LATE]})

        first = finance_tick(instance, resources)
        assert [r.run_config["ops"]["income"]["config"]["stocks"] for r in first.run_requests] == [[LATE]]
        assert finance_tick(instance, resources, first.cursor).run_requests == [], "once a day, not every tick"
        next_day = finance_resources(server, url, universe=["600519.SH", "000001.SZ", LATE],
                                     today="2024-11-06")
        assert len(finance_tick(instance, next_day, first.cursor).run_requests) == 1
        # Before Q3's deadline its missing report is not chased (H1's, past its deadline, is).
        early = finance_resources(server, url, universe=[LATE], today="2024-10-20")
        ends = [r.tags["dagster/asset_partition_range_end"] for r in finance_tick(instance, early).run_requests]
        assert ends == ["20240630"]
        wh.engine.dispose()
