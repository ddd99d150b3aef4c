"""Partitions follow the calendar the trade_cal asset lands, past the shipped snapshot."""

from __future__ import annotations

from datetime import date, datetime

import dagster as dg
import pandas as pd
import pytest

from zquant_orchestration.defs.market.reference_assets import trade_cal
from zquant_orchestration.defs.shared.partitions import build_trading_day_partitions
from zquant_orchestration.lib.trading_calendar import load_calendar
from zquant_orchestration.lib.warehouse import Warehouse

from .market_helpers import ChangedReplies, assert_same, resources_for, rows_where, warehouse_rows


def test_a_refreshed_calendar_extends_the_partitions_without_its_holidays(tmp_path):
    url = f"sqlite:///{tmp_path / 'wh.sqlite'}"
    shipped = load_calendar(url)
    assert shipped.last_known_day == date(2026, 12, 31)

    # What trade_cal lands once Tushare publishes 2027: New Year's Day closed, then open days.
    days = pd.date_range("2027-01-01", "2027-01-08")
    frame = pd.DataFrame({"exchange": "SSE", "cal_date": days.strftime("%Y%m%d"),
                          "is_open": [0 if d.day == 1 or d.weekday() >= 5 else 1 for d in days],
                          "pretrade_date": None})
    Warehouse(url).replace_rows("trade_cal", frame)
    refreshed = load_calendar(url)
    assert refreshed.last_known_day == date(2027, 1, 8)

    partitions = build_trading_day_partitions(refreshed)
    keys = partitions.get_partition_keys(current_time=datetime(2027, 1, 9))
    assert keys[-6:] == ["2026-12-31", "2027-01-04", "2027-01-05", "2027-01-06", "2027-01-07", "2027-01-08"]


def test_an_unreachable_warehouse_falls_back_to_the_shipped_calendar():
    calendar = load_calendar("postgresql://nobody@127.0.0.1:1/none")
    assert calendar.last_known_day == date(2026, 12, 31)
    assert calendar.open_days[0] == date(1990, 12, 19)


@pytest.mark.slow  # one of the longest in-process tests
def test_a_calendar_refresh_that_drops_days_or_an_exchange_is_refused_unless_forced(local_server, dataset, tmp_path):
    """An empty but successful trade_cal(exchange=...) reply, or calendars without days the
    table holds, would delete them: refused in one line, the table kept; allow_removals forces it."""
    url = f"sqlite:///{tmp_path / 'wh.sqlite'}"
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize([trade_cal], resources=resources_for(local_server(), url), instance=instance).success
    held = warehouse_rows(url, "trade_cal")

    def run(change, force=False):
        config = {"ops": {"trade_cal": {"config": {"allow_removals": True}}}} if force else None
        with ChangedReplies(change, dataset=dataset) as server:
            return dg.materialize([trade_cal], resources=resources_for(server, url), instance=instance,
                                  raise_on_error=False, run_config=config)

    # Tushare's SSE calendar a month shorter than the one landed.
    shorter = rows_where("trade_cal", lambda params, rows: (rows.exchange != "SSE") | (rows.cal_date < "20261201"))
    refused = run(shorter)
    assert not refused.success
    message = refused.failure_data_for_node("trade_cal").error.message.strip()
    assert "lacks 31 of the" in message and "(SSE 2026-12-01, SSE 2026-12-02," in message
    assert "allow_removals" in message and "\n" not in message
    assert_same(warehouse_rows(url, "trade_cal"), held)

    refused = run(rows_where("trade_cal", lambda params, rows: rows.exchange != "SZSE"))
    message = refused.failure_data_for_node("trade_cal").error.message.strip()
    assert "trade_cal(exchange=SZSE) returned no days" in message and "allow_removals" in message
    assert "\n" not in message
    assert_same(warehouse_rows(url, "trade_cal"), held)

    forced = run(shorter, force=True)
    assert forced.success
    assert forced.asset_materializations_for_node("trade_cal")[0].metadata["calendar_days_removed"].value == 31
    landed = warehouse_rows(url, "trade_cal")
    assert landed[landed.exchange == "SSE"].cal_date.max() == "20261130"
    assert len(landed) == len(held) - 31
