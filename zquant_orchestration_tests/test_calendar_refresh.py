"""Partitions follow the calendar the trade_cal asset lands, past the shipped snapshot."""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd

from zquant_orchestration.defs.market.partitions import build_trading_day_partitions
from zquant_orchestration.lib.trading_calendar import load_calendar
from zquant_orchestration.lib.warehouse import Warehouse


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
