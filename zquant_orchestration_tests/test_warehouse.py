"""The warehouse layer on both dialects: atomic, idempotent partition replacement."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from sqlalchemy import text

from zquant_orchestration.lib.warehouse import TABLES, Warehouse, quality

from .dialects import warehouse_urls


@pytest.fixture(params=warehouse_urls())
def warehouse(request, tmp_path) -> Warehouse:
    url = request.param(tmp_path)
    wh = Warehouse(url)
    wh.ensure_schema()
    yield wh
    wh.engine.dispose()


def whole(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every column of ``table``: those it lacks empty (a write needs them all)."""
    return frame.reindex(columns=[c.name for c in TABLES[table].columns])


def bars(day: str, codes: list[str], close: float = 10.0) -> pd.DataFrame:
    return pd.DataFrame({"ts_code": codes, "trade_date": day, "open": close, "high": close + 1, "low": close - 1,
                         "close": close, "pre_close": close, "change": 0.0, "pct_chg": 0.0, "vol": 1.0,
                         "amount": 1.0})


def test_replacing_a_partition_twice_leaves_one_copy_and_other_days_untouched(warehouse):
    warehouse.replace_rows("daily_bars", bars("20240102", ["000001.SZ", "600000.SH"]), {"trade_date": ["20240102"]})
    warehouse.replace_rows("daily_bars", bars("20240103", ["000001.SZ"]), {"trade_date": ["20240103"]})
    warehouse.replace_rows("daily_bars", bars("20240102", ["000001.SZ", "600000.SH"], close=11.0),
                           {"trade_date": ["20240102"]})
    frame = warehouse.read("daily_bars").sort_values(["trade_date", "ts_code"])
    assert list(zip(frame.trade_date, frame.ts_code, frame.close, strict=True)) == [
        (date(2024, 1, 2), "000001.SZ", 11.0), (date(2024, 1, 2), "600000.SH", 11.0),
        (date(2024, 1, 3), "000001.SZ", 10.0)]


def test_a_failed_write_keeps_the_old_rows(warehouse):
    warehouse.replace_rows("daily_bars", bars("20240102", ["000001.SZ"]), {"trade_date": ["20240102"]})
    broken = bars("20240102", ["000001.SZ", "000001.SZ"], close=12.0)  # the same key twice: the insert fails
    with pytest.raises(Exception):  # noqa: B017 - the driver's own integrity error, which differs by dialect
        warehouse.replace_rows("daily_bars", broken, {"trade_date": ["20240102"]})
    frame = warehouse.read("daily_bars")
    assert list(frame.close) == [10.0], "the DELETE was rolled back with the failed INSERT"


def test_rows_without_a_column_of_the_table_are_refused_in_one_line_and_nothing_is_written(warehouse):
    """A frame that lost a column (a short Tushare reply) would land NULLs that look like
    Tushare's own; a column the table does not have (one Tushare added) is left out."""
    warehouse.replace_rows("daily_bars", bars("20240102", ["000001.SZ"]), {"trade_date": ["20240102"]})
    short = bars("20240102", ["000001.SZ", "600000.SH"], close=11.0).drop(columns=["close", "vol"])
    with pytest.raises(ValueError) as refused:
        warehouse.replace_rows("daily_bars", short, {"trade_date": ["20240102"]})
    message = str(refused.value)
    assert "\n" not in message and message.startswith("daily_bars: ") and "close, vol" in message
    assert "nothing was written" in message
    assert warehouse.read("daily_bars").close.tolist() == [10.0], "the day's rows were left as they were"
    with pytest.raises(ValueError, match="income: .*ann_date"):
        warehouse.stage_rows("income", "run-1", whole("income", pd.DataFrame({
            "ts_code": ["000001.SZ"], "end_date": ["20241231"]})).drop(columns=["ann_date"]))
    assert warehouse.scalar("SELECT COUNT(*) FROM stage_income") == 0

    wider = bars("20240102", ["000001.SZ"], close=12.0).assign(new_tushare_column="x")
    warehouse.replace_rows("daily_bars", wider, {"trade_date": ["20240102"]})
    assert warehouse.read("daily_bars").close.tolist() == [12.0]


def test_rows_outside_the_partition_are_refused_and_nothing_is_written(warehouse):
    with pytest.raises(ValueError, match="fall outside the partition"):
        warehouse.replace_rows("daily_bars", bars("20240103", ["000001.SZ"]), {"trade_date": ["20240102"]})
    assert warehouse.read("daily_bars").empty


def test_types_are_real_dates_and_doubles(warehouse):
    frame = bars("20240102", ["000001.SZ"], close=12.345678901)
    warehouse.replace_rows("daily_bars", frame, {"trade_date": ["20240102"]})
    row = warehouse.read("daily_bars").iloc[0]
    assert row.trade_date == date(2024, 1, 2)
    assert row.close == 12.345678901


def test_schema_upkeep_adds_columns_the_code_gained(warehouse):
    with warehouse.engine.begin() as conn:
        conn.execute(text("DROP VIEW daily_qfq"))  # a warehouse that old had no view on adj_factor yet
        conn.execute(text("DROP TABLE adj_factor"))
        conn.execute(text("CREATE TABLE adj_factor (ts_code VARCHAR(12), trade_date DATE, "
                          "PRIMARY KEY (ts_code, trade_date))"))
    fresh = Warehouse(warehouse.url)
    fresh.ensure_schema()
    fresh.replace_rows("adj_factor", pd.DataFrame({"ts_code": ["000001.SZ"], "trade_date": ["20240102"],
                                                   "adj_factor": [109.169]}), {"trade_date": ["20240102"]})
    assert fresh.read("adj_factor").adj_factor.tolist() == [109.169]
    fresh.engine.dispose()


def test_missing_values_empty_strings_and_exact_doubles_land_as_given(warehouse):
    basic = whole("daily_basic", pd.DataFrame({
        "ts_code": ["000001.SZ", "600000.SH"], "trade_date": ["20240102", "20240102"],
        "close": [0.1 + 0.2, 1e-300], "pe": [float("nan"), 123456789.12345679], "limit_status": [None, None]}))
    warehouse.replace_rows("daily_basic", basic, {"trade_date": ["20240102"]})
    landed = warehouse.read("daily_basic").sort_values("ts_code")
    assert landed.close.tolist() == [0.30000000000000004, 1e-300]
    assert pd.isna(landed.pe.iloc[0]) and landed.pe.iloc[1] == 123456789.12345679
    stocks = whole("stock_basic", pd.DataFrame({"ts_code": ["000001.SZ"], "name": [""], "area": [None],
                                                "list_date": ["19910403"], "delist_date": [None]}))
    warehouse.replace_rows("stock_basic", stocks)
    nulls = warehouse.query("SELECT name = '' AS empty_name, area IS NULL AS no_area, delist_date IS NULL AS listed "
                            "FROM stock_basic").iloc[0]
    assert bool(nulls.empty_name) and bool(nulls.no_area) and bool(nulls.listed)


def test_a_warehouse_made_before_the_trading_day_index_gains_it(warehouse):
    with warehouse.engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_daily_bars_trade_date"))
    fresh = Warehouse(warehouse.url)
    fresh.ensure_schema()
    with fresh.engine.connect() as conn:
        from sqlalchemy import inspect

        names = {i["name"] for i in inspect(conn).get_indexes("daily_bars")}
    fresh.engine.dispose()
    assert "ix_daily_bars_trade_date" in names


def test_sqlite_writes_reach_the_database_file_itself(tmp_path):
    """A write is copied from SQLite's write-ahead log into the database file once it has
    committed (outside the writers' lock), so a copy of warehouse.sqlite alone, the way people
    back it up, holds every row written before it."""
    import shutil
    import sqlite3

    wh = Warehouse(f"sqlite:///{tmp_path / 'warehouse.sqlite'}")
    for day in ("20240102", "20240103"):
        wh.replace_rows("daily_bars", bars(day, ["000001.SZ", "600000.SH"]), {"trade_date": [day]})
    shutil.copy(tmp_path / "warehouse.sqlite", tmp_path / "copy.sqlite")
    wh.engine.dispose()
    copy = sqlite3.connect(tmp_path / "copy.sqlite")
    assert copy.execute("SELECT COUNT(*) FROM daily_bars").fetchone() == (4,)
    copy.close()


def test_every_sqlite_connection_fsyncs_each_commit(tmp_path):
    """synchronous=FULL (2) or EXTRA (3): a commit is on disk before the asset reports the
    day materialized. NORMAL (1) leaves it in the OS cache until a checkpoint."""
    wh = Warehouse(f"sqlite:///{tmp_path / 'warehouse.sqlite'}")
    wh.replace_rows("daily_bars", bars("20240102", ["000001.SZ"]), {"trade_date": ["20240102"]})
    with wh.engine.connect() as first, wh.engine.connect() as second:
        levels = [conn.exec_driver_sql("PRAGMA synchronous").scalar() for conn in (first, second)]
    wh.engine.dispose()
    assert all(level in (2, 3) for level in levels), levels


def test_a_day_written_while_a_reader_is_open_is_in_the_database_and_its_log(tmp_path, caplog):
    """A reader holding an older snapshot stops the checkpoint short (and that is said at
    debug level); the committed rows are then in the write-ahead log, which the commit
    fsynced, so a copy of the two files as a power loss would leave them holds the day."""
    import logging
    import shutil
    import sqlite3

    caplog.set_level(logging.DEBUG, logger="zquant_orchestration.lib.warehouse")
    path = tmp_path / "warehouse.sqlite"
    wh = Warehouse(f"sqlite:///{path}")
    wh.replace_rows("daily_bars", bars("20240102", ["000001.SZ"]), {"trade_date": ["20240102"]})
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT COUNT(*) FROM daily_bars").fetchone() == (1,)
    wh.replace_rows("daily_bars", bars("20240103", ["000001.SZ", "600000.SH"]), {"trade_date": ["20240103"]})
    (tmp_path / "copy").mkdir()
    for suffix in ("", "-wal"):
        shutil.copy(f"{path}{suffix}", tmp_path / "copy" / f"warehouse.sqlite{suffix}")
    copy = sqlite3.connect(tmp_path / "copy" / "warehouse.sqlite")
    assert copy.execute("SELECT COUNT(*) FROM daily_bars").fetchone() == (3,)
    copy.close()
    reader.rollback()
    reader.close()
    wh.engine.dispose()
    assert any("checkpoint" in r.getMessage() and "left" in r.getMessage() for r in caplog.records), \
        "the checkpoint the reader stopped short is logged, not silently ignored"


def test_values_of_another_python_type_land_as_the_column_type(warehouse):
    """Tushare sends some codes as numbers and some flags as text; each lands as its column's
    type (Postgres is loaded in its binary COPY format, which sends every value typed)."""
    income = whole("income", pd.DataFrame({
        "ts_code": ["000001.SZ", "600000.SH"], "ann_date": ["19901219", None], "end_date": ["19901231", "20241231"],
        "report_type": [1, 2.0], "comp_type": ["2", None], "basic_eps": ["0.25", None], "update_flag": ["1", 0.0]}))
    warehouse.replace_rows("income", income, {"end_date": ["19901231", "20241231"]})
    landed = warehouse.read("income").sort_values("ts_code")
    assert landed.report_type.tolist() == ["1", "2"]
    assert landed.comp_type.iloc[0] == "2" and pd.isna(landed.comp_type.iloc[1])
    assert landed.ann_date.iloc[0] == date(1990, 12, 19) and pd.isna(landed.ann_date.iloc[1])
    assert landed.end_date.tolist() == [date(1990, 12, 31), date(2024, 12, 31)]
    assert landed.basic_eps.iloc[0] == 0.25 and pd.isna(landed.basic_eps.iloc[1])
    assert [int(v) for v in landed.update_flag] == [1, 0]
    names = whole("stock_basic", pd.DataFrame({"ts_code": ["000001.SZ"], "name": ["平安银行"],
                                               "list_date": ["19910403"]}))
    warehouse.replace_rows("stock_basic", names)
    assert warehouse.read("stock_basic").name.tolist() == ["平安银行"]


@pytest.mark.parametrize("column, value", [("limit_status", 1.5), ("limit_status", 70000), ("close", "n/a")])
def test_a_value_the_column_cannot_hold_fails_the_write_and_keeps_the_old_rows(warehouse, column, value):
    basic = whole("daily_basic", pd.DataFrame({"ts_code": ["000001.SZ"], "trade_date": ["20240102"],
                                               "close": [10.0], "limit_status": [1]}))
    warehouse.replace_rows("daily_basic", basic, {"trade_date": ["20240102"]})
    with pytest.raises(ValueError, match=f"daily_basic.{column} cannot hold a value .*nothing was written"):
        warehouse.replace_rows("daily_basic", basic.assign(**{column: [value]}), {"trade_date": ["20240102"]})
    landed = warehouse.read("daily_basic")
    assert landed.close.tolist() == [10.0] and landed.limit_status.tolist() == [1]


def test_a_bar_without_a_price_fails_the_ohlc_check(warehouse):
    """ohlc_sane: a NULL price is no sane bar (a comparison with NULL is neither true nor false)."""
    frame = bars("20240102", ["000001.SZ", "600000.SH"])
    frame.loc[1, "close"] = float("nan")
    warehouse.replace_rows("daily_bars", frame, {"trade_date": ["20240102"]})
    assert quality.ohlc_violations(warehouse, date(2024, 1, 2), date(2024, 1, 2)) == 1
