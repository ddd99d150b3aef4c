"""The schedules and the gap sensor cover every enabled dataset, each no earlier than Tushare
publishes it: the evening run takes what is out by 18:30, later datasets get their own
ticks, margin balances are asked for the next morning, and gap repair waits for publication."""

from __future__ import annotations

from datetime import datetime, time

import dagster as dg
import pytest

from zquant_orchestration.defs.market.assets import day_datasets
from zquant_orchestration.defs.market.schedules import build_schedules
from zquant_orchestration.defs.market.sensors import market_gap_sensor
from zquant_orchestration.defs.shared.partitions import SHANGHAI
from zquant_orchestration.lib.datasets import DATASETS, OPTIONAL
from zquant_orchestration.settings import get_settings


@pytest.fixture(autouse=True)
def _every_dataset(monkeypatch):
    monkeypatch.setenv("ZQUANT_DATASETS", "all")


def _requests(schedule, when: datetime) -> list[dg.RunRequest]:
    with dg.build_schedule_context(scheduled_execution_time=when) as context:
        result = schedule(context)
    if isinstance(result, dg.SkipReason):
        return []
    return [result] if isinstance(result, dg.RunRequest) else list(result)


def _names(request: dg.RunRequest) -> set[str]:
    return {k.to_user_string() for k in request.asset_selection}


def _published(name: str, day: str) -> datetime:
    """When Tushare has ``name``'s rows of ``day`` (trading days around National Day 2024)."""
    after = {"2024-09-30": "2024-10-08", "2024-10-08": "2024-10-09"}
    spec = DATASETS[name]
    on = after[day] if spec.published.trading_days_later else day
    return datetime.combine(datetime.fromisoformat(on).date(), spec.published.at, tzinfo=SHANGHAI)


def test_every_enabled_dataset_is_fetched_once_a_day_no_earlier_than_published():
    schedules = {s.name: s for s in build_schedules()}
    evening, late = schedules["market_after_close_schedule"], schedules["late_datasets_schedule"]
    ticks = [datetime(2024, 10, 8, 9, 0), datetime(2024, 10, 8, 18, 30), datetime(2024, 10, 8, 19, 0),
             datetime(2024, 10, 8, 20, 0), datetime(2024, 10, 9, 9, 0)]
    fetched: dict[tuple[str, str], datetime] = {}
    for tick in (t.replace(tzinfo=SHANGHAI) for t in ticks):
        for schedule in (evening, late):
            if tick.time() == time(18, 30) and schedule is late or tick.time() != time(18, 30) and schedule is evening:
                continue
            for request in _requests(schedule, tick):
                for name in _names(request) & set(DATASETS):
                    key = (name, request.partition_key)
                    assert key not in fetched, f"{key} requested twice"
                    fetched[key] = tick
    for name in (s.name for s in day_datasets(get_settings().datasets)):
        assert (name, "2024-10-08") in fetched, f"{name} of 2024-10-08 is never requested"
        assert fetched[(name, "2024-10-08")] >= _published(name, "2024-10-08"), name
    # Margin balances of the last trading day before the holiday, the first morning after it.
    assert fetched[("margin_detail", "2024-09-30")] == datetime(2024, 10, 8, 9, 0, tzinfo=SHANGHAI)
    evening_names = {n for (n, day), tick in fetched.items() if tick.time() == time(18, 30)}
    assert evening_names == {"stock_basic", "daily_bars", "adj_factor", "daily_basic", "stk_limit", "suspend_d",
                             "dividend"}


def test_with_no_optional_dataset_the_evening_run_is_the_whole_job_and_there_is_no_late_schedule(monkeypatch):
    monkeypatch.setenv("ZQUANT_DATASETS", "none")
    schedules = {s.name: s for s in build_schedules()}
    assert set(schedules) == {"market_after_close_schedule", "reference_data_schedule"}
    (request,) = _requests(schedules["market_after_close_schedule"],
                           datetime(2024, 10, 8, 18, 30, tzinfo=SHANGHAI))
    assert request.asset_selection is None and request.partition_key == "2024-10-08"


def test_late_ticks_skip_a_holiday():
    late = {s.name: s for s in build_schedules()}["late_datasets_schedule"]
    with dg.build_schedule_context(scheduled_execution_time=datetime(2024, 10, 1, 19, 0, tzinfo=SHANGHAI)) as context:
        result = late(context)
    assert isinstance(result, dg.SkipReason) and "2024-10-01 is not an SSE trading day" in result.skip_message


def test_gap_repair_asks_for_each_dataset_only_once_it_is_published(monkeypatch):
    monkeypatch.setenv("ZQUANT_TODAY", "2024-03-20")
    monkeypatch.setenv("ZQUANT_GAP_LOOKBACK_DAYS", "5")
    with dg.instance_for_test() as instance, dg.build_sensor_context(instance=instance) as context:
        result = market_gap_sensor(context)
    by_range = {(r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"]):
                _names(r) for r in result.run_requests}
    # Seen from the start of 03-20: 03-19's margin balances come out at 09:00 that day.
    day_names = {s.name for s in day_datasets(OPTIONAL)}
    assert by_range == {("2024-03-13", "2024-03-18"): day_names | {"daily_hfq"},
                        ("2024-03-19", "2024-03-19"): (day_names - {"margin_detail"}) | {"daily_hfq"}}
