"""Schedules and the gap-repair sensor: the evening schedule asks for the right trading day
and skips holidays; holes in the recent past become range runs, never twice at once, and a
day that keeps failing is given up after the configured attempts."""

from __future__ import annotations

from datetime import datetime

import dagster as dg
import pytest
from dagster._core.test_utils import create_run_for_test

from zquant_orchestration.defs.derived.assets import daily_hfq
from zquant_orchestration.defs.market.assets import adj_factor, daily_bars, daily_basic
from zquant_orchestration.defs.market.checks import MARKET_CHECKS
from zquant_orchestration.defs.market.jobs import daily_market_job
from zquant_orchestration.defs.market.reference_assets import stock_basic, trade_cal
from zquant_orchestration.defs.market.schedules import market_after_close_schedule
from zquant_orchestration.defs.market.sensors import market_gap_sensor
from zquant_orchestration.defs.shared.partitions import SHANGHAI
from zquant_orchestration.lib.tushare_server import LocalTushareServer

from .cli_helpers import cli_env, execute_job
from .dialects import sqlite_url
from .market_helpers import (
    MARKET_ASSETS,
    assert_same,
    materialize_range,
    materialize_reference,
    resources_for,
    truth_rows,
    warehouse_rows,
)
from .shared_landing import landed_copy


def evaluate_schedule(when: datetime):
    with dg.build_schedule_context(scheduled_execution_time=when) as context:
        return market_after_close_schedule(context)


def test_evening_schedule_requests_the_trading_day_and_skips_a_holiday():
    request = evaluate_schedule(datetime(2024, 10, 8, 18, 30, tzinfo=SHANGHAI))
    assert isinstance(request, dg.RunRequest) and request.partition_key == "2024-10-08"
    holiday = evaluate_schedule(datetime(2024, 10, 1, 18, 30, tzinfo=SHANGHAI))  # National Day, a Tuesday
    assert isinstance(holiday, dg.SkipReason) and "2024-10-01 is not an SSE trading day" in holiday.skip_message
    ticks = market_after_close_schedule.execution_timezone, market_after_close_schedule.cron_schedule
    assert ticks == ("Asia/Shanghai", "30 18 * * 1-5")


def test_a_pinned_today_is_the_day_the_schedule_asks_for_whatever_the_tick(monkeypatch):
    tick = datetime(2024, 10, 8, 18, 30, tzinfo=SHANGHAI)  # a trading day
    monkeypatch.setenv("ZQUANT_TODAY", "2024-10-01")  # National Day
    skipped = evaluate_schedule(tick)
    assert isinstance(skipped, dg.SkipReason) and "2024-10-01 is not an SSE trading day" in skipped.skip_message
    monkeypatch.setenv("ZQUANT_TODAY", "2024-10-09")
    request = evaluate_schedule(tick)
    assert isinstance(request, dg.RunRequest) and request.partition_key == "2024-10-09"


def test_the_scheduled_run_lands_the_stock_list_and_the_day_then_checks_the_day_against_the_list(
        tmp_path, local_server):
    server = local_server()
    url = sqlite_url(tmp_path)
    defs = dg.Definitions(assets=[trade_cal, stock_basic, daily_bars, adj_factor, daily_basic, daily_hfq],
                          asset_checks=MARKET_CHECKS, jobs=[daily_market_job],
                          resources=resources_for(server, url))
    request = evaluate_schedule(datetime(2024, 10, 8, 18, 30, tzinfo=SHANGHAI))
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("daily_market_job").execute_in_process(
            partition_key=request.partition_key, instance=instance, tags=request.tags)
        assert result.success
        started = [e.step_key for e in result.all_events if e.event_type_value == "STEP_START"]
        ended = [e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"]
        # The day's fetch does not wait for the stock list; the check against the list does.
        universe_check = "daily_bars_rows_match_listed_universe"
        assert started.index(universe_check) > max(ended.index(a) for a in ("stock_basic", "daily_bars"))
        assert started.index("daily_hfq") > max(ended.index(a) for a in ("daily_bars", "adj_factor"))
        checks = {(c.asset_key.to_user_string(), c.check_name): c.passed for c in result.get_asset_check_evaluations()}
        assert checks[("daily_bars", "rows_match_listed_universe")] is True
        assert checks[("adj_factor", "adj_factor_covers_daily_bars")] is True
        for asset in ("daily_bars", "adj_factor", "daily_basic", "daily_hfq"):
            assert instance.get_materialized_partitions(dg.AssetKey(asset)) == {"2024-10-08"}


def _land_march(folder, dataset) -> None:
    url = sqlite_url(folder)
    (folder / "dagster_home").mkdir()
    with LocalTushareServer(dataset=dataset) as server, \
            LocalTushareServer(dataset=dataset, denied_apis=("daily",)) as denying, \
            dg.instance_for_test(temp_dir=str(folder / "dagster_home")) as instance:
        resources = resources_for(server, url)
        materialize_reference(resources, instance)
        assert materialize_range(MARKET_ASSETS, "2024-03-06", "2024-03-08", resources, instance).success
        assert materialize_range(MARKET_ASSETS, "2024-03-13", "2024-03-14", resources, instance).success
        denied = resources_for(denying, url)
        assert not materialize_range(MARKET_ASSETS, "2024-03-15", "2024-03-15", denied, instance,
                                     raise_on_error=False).success
        # A run for 03-19 is already running: the sensor must leave that day alone.
        create_run_for_test(instance, job_name="market_data_job", status=dg.DagsterRunStatus.STARTED,
                            tags={"dagster/partition": "2024-03-19"})


@pytest.fixture
def march(tmp_path, tmp_path_factory, dataset, monkeypatch):
    """Ten trading days 2024-03-06..03-19 seen from 03-20: some landed, one failed, some missing.
    Landed once per session (warehouse and Dagster instance) and copied here: the tests run
    the sensor and its runs on it."""
    monkeypatch.setenv("ZQUANT_TODAY", "2024-03-20")
    monkeypatch.setenv("ZQUANT_GAP_LOOKBACK_DAYS", "10")
    monkeypatch.setenv("ZQUANT_GAP_MAX_ATTEMPTS", "2")
    landed_copy(tmp_path_factory, "gap-sensor-march", lambda folder: _land_march(folder, dataset), tmp_path)
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as instance:
        yield instance


def tick(instance, cursor=None):
    with dg.build_sensor_context(instance=instance, cursor=cursor) as context:
        return market_gap_sensor(context)


def ranges(result) -> list[tuple[str, str]]:
    return [(r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
            for r in result.run_requests]


def test_gap_sensor_requests_each_hole_as_one_range_and_skips_queued_days(march):
    first = tick(march)
    # 03-11..12 missing; 03-15 failed (daily_bars) + 03-18 missing; 03-19 running already.
    assert ranges(first) == [("2024-03-11", "2024-03-12"), ("2024-03-15", "2024-03-18")]
    assert all(r.job_name in (None, "market_data_job") for r in first.run_requests)


@pytest.mark.slow  # one of the longest in-process tests
def test_gap_sensor_gives_up_on_a_day_after_the_maximum_attempts(march):
    first = tick(march)
    second = tick(march, first.cursor)
    assert ranges(second) == ranges(first), "attempt 2 of 2"
    assert len({r.run_key for r in first.run_requests + second.run_requests}) == 4, "each attempt is a new run"
    third = tick(march, second.cursor)
    assert third.run_requests == [], "after 2 attempts the days stay failed and visible"


@pytest.mark.slow  # one of the longest in-process tests
def test_gap_sensor_repairs_holes_so_the_window_is_complete(march, tmp_path, local_server):
    resources = resources_for(local_server(), sqlite_url(tmp_path))
    for first, last in ranges(tick(march)):
        assert materialize_range(MARKET_ASSETS, first, last, resources, march).success
    assert ranges(tick(march)) == [], "only the running day is left, and it is someone else's"


@pytest.mark.slow  # the `dagster` CLI in a process of its own
def test_the_evening_job_run_as_deployed_lands_the_day_with_every_step_in_the_run_process(tmp_path, local_server):
    """`dagster job execute` runs the job with its own executor (not execute_in_process): the
    steps run in the run's process, one after another, and the day lands with its checks."""
    server = local_server()
    url = sqlite_url(tmp_path)
    env = cli_env(tmp_path, server, url)
    reference = execute_job(env, "reference_data_job")
    assert reference.returncode == 0, reference.stdout[-3000:] + reference.stderr[-3000:]
    evening = execute_job(env, "daily_market_job", "2024-10-08", timeout=300)
    assert evening.returncode == 0, evening.stdout[-3000:] + evening.stderr[-3000:]

    for table in ("daily_bars", "adj_factor", "daily_basic"):
        assert_same(warehouse_rows(url, table), truth_rows(server, table, "2024-10-08", "2024-10-08"))
    with dg.instance_for_test(temp_dir=env["DAGSTER_HOME"]) as instance:
        (run,) = instance.get_runs(dg.RunsFilter(job_name="daily_market_job"))
        assert run.status == dg.DagsterRunStatus.SUCCESS
        events = [e for e in instance.all_logs(run.run_id) if e.is_dagster_event]
        steps = {e.step_key for e in events if e.dagster_event.event_type == dg.DagsterEventType.STEP_SUCCESS}
        assert {"stock_basic", "daily_bars", "adj_factor", "daily_basic", "daily_hfq",
                "daily_bars_rows_match_listed_universe"} <= steps
        started = [e for e in events if e.dagster_event.event_type == dg.DagsterEventType.STEP_START]
        assert {e.dagster_event.pid for e in started} == {run_start_pid(events)}


def run_start_pid(events) -> int:
    (start,) = [e for e in events if e.dagster_event.event_type == dg.DagsterEventType.RUN_START]
    return start.dagster_event.pid
