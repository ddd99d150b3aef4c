"""The catalog's datasets as a user gets them: a week of each lands from the local server
with every fault kind on and equals the server's truth; a day past a row limit pages; a
dataset whose days may be empty lands an empty day, one whose days may not fails it; a
dataset the account lacks the points for fails alone, naming the points and the setting."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from zquant_orchestration.defs.derived.tradable import build_tradable_asset
from zquant_orchestration.defs.shared.partitions import trading_day_partitions
from zquant_orchestration.lib.datasets import DATASETS, DEFAULT_INDEX_CODES, OPTIONAL, Fetch
from zquant_orchestration.lib.tushare_server import ALL_FAULT_KINDS, FaultPlan
from zquant_orchestration.lib.warehouse import Warehouse

from .cli_helpers import cli_env, execute_job
from .datasets_helpers import assert_equal_rows, day_assets, land, land_reference, table_rows, truth_of
from .dialects import sqlite_url, warehouse_urls
from .market_helpers import ChangedReplies, materialize_reference, resources_for, rows_where

NEW_DAY_DATASETS = tuple(n for n, s in DATASETS.items() if not s.core and s.partitioned_by_day)
NEW_REFERENCE_DATASETS = tuple(n for n, s in DATASETS.items() if not s.core and s.fetch is Fetch.REFERENCE)
# March 2024's first week: index weights are published on the month's first trading day;
# stk_limit pages every day. Six days of twelve datasets are some 200 calls, enough for every
# fault kind to strike; each day lands through the same calls as any other.
WEEK = ("2024-03-01", "2024-03-08")


@pytest.fixture(autouse=True)
def _every_dataset(monkeypatch):
    monkeypatch.setenv("ZQUANT_DATASETS", "all")


def test_every_dataset_is_declared_with_a_table_and_documented_columns():
    for spec in DATASETS.values():
        assert spec.columns, spec.name
        assert set(spec.keys) <= {c for c, _ in spec.columns}, spec.name
        assert spec.date_column is None or spec.date_column in {c for c, _ in spec.columns}, spec.name
        assert spec.points > 0 and spec.doc_url.startswith("https://tushare.pro/document/2?doc_id=")


@pytest.mark.slow  # a week of twelve datasets under every fault kind
def test_a_week_of_every_new_dataset_lands_equal_to_the_truth_under_every_fault(local_server, tmp_path):
    server = local_server(faults=FaultPlan(rate=0.2, seed=21, kinds=ALL_FAULT_KINDS, slow_seconds=2.5))
    url = sqlite_url(tmp_path)
    resources = resources_for(server, url)
    assets = day_assets(*NEW_DAY_DATASETS)
    with dg.instance_for_test() as instance:
        materialize_reference(resources, instance)
        assert land_reference(NEW_REFERENCE_DATASETS, resources, instance).success
        result = land([assets[n] for n in NEW_DAY_DATASETS], *WEEK, resources, instance)
        assert result.success
        week = set(trading_day_partitions().get_partition_keys_in_range(dg.PartitionKeyRange(*WEEK)))
        assert len(week) == 6
        for name in NEW_DAY_DATASETS:
            assert instance.get_materialized_partitions(dg.AssetKey(name)) == week, name
    for name in NEW_DAY_DATASETS:
        codes = DEFAULT_INDEX_CODES if DATASETS[name].fetch is Fetch.PER_CODE else None
        truth = truth_of(server, name, *WEEK, codes=codes)
        assert len(truth), f"{name}: the server holds rows for the week"
        assert_equal_rows(table_rows(url, name), truth, name)
    for name in NEW_REFERENCE_DATASETS:
        truth = truth_of(server, name, "19000101", "20991231")
        assert_equal_rows(table_rows(url, name), truth, name)
    faults = {r["fault"] for r in server.requests if r.get("api") in set(NEW_DAY_DATASETS) and r.get("fault")}
    assert faults >= {"http_5xx", "empty", "missing_column", "truncated_json"}, faults
    # A whole-market stk_limit day (stocks and funds) is past the 5,800 rows one call returns: it pages.
    pages = [r["params"].get("offset", 0) for r in server.requests
             if r.get("api") == "stk_limit" and r.get("code") == 0 and r.get("fault") is None]
    assert 5800 in pages


def test_an_empty_suspension_day_is_a_success_with_no_rows_and_an_empty_bars_day_fails(local_server, tmp_path):
    empty, busy = "2024-03-05", "2024-03-06"
    assert truth_of(local_server(), "suspend_d", empty, empty).empty, "a day without suspensions"
    assert not truth_of(local_server(), "suspend_d", busy, busy).empty
    url = sqlite_url(tmp_path)
    assets = day_assets("suspend_d")
    with dg.instance_for_test() as instance:
        resources = resources_for(local_server(), url)
        materialize_reference(resources, instance)
        assert land([assets["suspend_d"]], empty, busy, resources, instance).success
        assert instance.get_materialized_partitions(dg.AssetKey("suspend_d")) == {empty, busy}
        assert_equal_rows(table_rows(url, "suspend_d"), truth_of(local_server(), "suspend_d", empty, busy),
                          "suspend_d")

        no_bars = ChangedReplies(rows_where("daily", lambda params, rows: rows.trade_date != "20240305"),
                                 dataset=local_server().dataset).start()
        try:
            failed = land([assets["daily_bars"]], empty, empty, resources_for(no_bars, url), instance,
                          raise_on_error=False)
        finally:
            no_bars.stop()
        assert not failed.success
        assert empty not in instance.get_materialized_partitions(dg.AssetKey("daily_bars"))


def test_a_dataset_before_tushare_has_it_lands_empty_without_a_call(local_server, tmp_path):
    server = local_server()
    url = sqlite_url(tmp_path)
    assets = day_assets("margin_detail")
    with dg.instance_for_test() as instance:
        resources = resources_for(server, url)
        materialize_reference(resources, instance)
        assert land([assets["margin_detail"]], "2010-03-29", "2010-03-31", resources, instance).success
    calls = [r["params"]["trade_date"] for r in server.requests if r.get("api") == "margin_detail"]
    assert calls == ["20100331"], "margin trading starts on 2010-03-31"
    assert set(table_rows(url, "margin_detail").trade_date) == {"20100331"}


@pytest.mark.slow  # the `dagster` CLI in processes of their own
def test_the_evening_job_lands_every_dataset_but_the_one_the_account_may_not_read(local_server, tmp_path):
    server = local_server(denied_apis=("stk_factor_pro",))
    url = sqlite_url(tmp_path)
    env = cli_env(tmp_path, server, url, ZQUANT_DATASETS="all")
    reference = execute_job(env, "reference_data_job")
    assert reference.returncode == 0, reference.stdout[-3000:] + reference.stderr[-3000:]
    evening = execute_job(env, "daily_market_job", "2024-03-01", timeout=600)
    assert evening.returncode != 0
    with dg.instance_for_test(temp_dir=env["DAGSTER_HOME"]) as instance:
        (run,) = instance.get_runs(dg.RunsFilter(job_name="daily_market_job"))
        assert run.status == dg.DagsterRunStatus.FAILURE
        events = [e.dagster_event for e in instance.all_logs(run.run_id) if e.is_dagster_event]
        failed = {e.step_key: e for e in events if e.event_type == dg.DagsterEventType.STEP_FAILURE}
        assert set(failed) == {"stk_factor_pro"}
        message = failed["stk_factor_pro"].step_failure_data.error.message
        assert "stk_factor_pro needs 5000 points" in message or "the dataset needs 5000 points" in message
        assert "ZQUANT_DATASETS" in message and "\n" not in message.strip().removeprefix("dagster._core.definitions"
                                                                                        ".events.Failure: ")
        landed = {e.step_key for e in events if e.event_type == dg.DagsterEventType.STEP_SUCCESS}
    day_names = [n for n in DATASETS if DATASETS[n].partitioned_by_day and n != "stk_factor_pro"]
    assert set(day_names) <= landed
    for name in day_names:
        spec = DATASETS[name]
        truth = truth_of(server, name, "2024-03-01", "2024-03-01",
                         codes=DEFAULT_INDEX_CODES if spec.fetch is Fetch.PER_CODE else None)
        assert_equal_rows(table_rows(url, name), truth, name)
    assert table_rows(url, "stk_factor_pro").empty


@pytest.mark.slow  # every dataset and daily_tradable for a day, in each warehouse
@pytest.mark.parametrize("make_url", warehouse_urls())
def test_a_day_of_every_dataset_and_its_tradability_land_in_either_warehouse(local_server, tmp_path, make_url):
    server = local_server()
    url = make_url(tmp_path)
    resources = resources_for(server, url)
    assets = day_assets(*NEW_DAY_DATASETS)
    (tradable,) = build_tradable_asset(trading_day_partitions(), OPTIONAL)
    day = "2024-03-01"
    with dg.instance_for_test() as instance:
        materialize_reference(resources, instance)
        assert land_reference(NEW_REFERENCE_DATASETS, resources, instance).success
        assert land([assets[n] for n in ("daily_bars", *NEW_DAY_DATASETS)], day, day, resources, instance).success
        tags = {"dagster/partition": day}
        assert dg.materialize([tradable], resources=resources, instance=instance, tags=tags).success
    for name in (*NEW_DAY_DATASETS, *NEW_REFERENCE_DATASETS):
        per_code = DATASETS[name].fetch is Fetch.PER_CODE
        first, last = (day, day) if DATASETS[name].partitioned_by_day else ("19000101", "20991231")
        assert_equal_rows(table_rows(url, name), truth_of(server, name, first, last,
                                                          codes=DEFAULT_INDEX_CODES if per_code else None), name)
    wh = Warehouse(url)
    flags = wh.read("daily_tradable")
    wh.engine.dispose()
    assert len(flags) > 5000 and flags.is_st.sum() > 0 and flags.at_up_limit.sum() > 0


def test_each_new_dataset_table_is_named_after_it_and_keyed_as_declared(tmp_path):
    from zquant_orchestration.lib.warehouse import TABLES

    for name in (*NEW_DAY_DATASETS, *NEW_REFERENCE_DATASETS):
        table = TABLES[name]
        assert {c.name for c in table.primary_key.columns} == set(DATASETS[name].keys)
        assert [c.name for c in table.columns] == [c for c, _ in DATASETS[name].columns]
    assert pd.Series(NEW_DAY_DATASETS).is_unique
