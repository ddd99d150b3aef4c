"""Warehouse tables: named after their assets, Tushare's column names, real types, primary keys."""

from __future__ import annotations

from sqlalchemy import Column, Date, Float, MetaData, SmallInteger, String, Table

metadata = MetaData()

# Float(53) is DOUBLE PRECISION on Postgres and REAL (8-byte) on SQLite.
DOUBLE = Float(precision=53)


def _doubles(*names: str) -> list[Column]:
    return [Column(name, DOUBLE) for name in names]


trade_cal = Table(
    "trade_cal", metadata,
    Column("exchange", String(8), primary_key=True),
    Column("cal_date", Date, primary_key=True),
    Column("is_open", SmallInteger, nullable=False),
    Column("pretrade_date", Date),
)

stock_basic = Table(
    "stock_basic", metadata,
    Column("ts_code", String(12), primary_key=True),
    *[Column(name, String(200)) for name in (
        "symbol", "name", "area", "industry", "fullname", "enname", "cnspell", "market", "exchange",
        "curr_type", "list_status")],
    Column("list_date", Date),
    Column("delist_date", Date),
    Column("is_hs", String(2)),
    Column("act_name", String(200)),
    Column("act_ent_type", String(100)),
)

daily_bars = Table(
    "daily_bars", metadata,
    Column("ts_code", String(12), primary_key=True),
    Column("trade_date", Date, primary_key=True),
    *_doubles("open", "high", "low", "close", "pre_close", "change", "pct_chg", "vol", "amount"),
)

adj_factor = Table(
    "adj_factor", metadata,
    Column("ts_code", String(12), primary_key=True),
    Column("trade_date", Date, primary_key=True),
    Column("adj_factor", DOUBLE),
)

daily_basic = Table(
    "daily_basic", metadata,
    Column("ts_code", String(12), primary_key=True),
    Column("trade_date", Date, primary_key=True),
    *_doubles("close", "turnover_rate", "turnover_rate_f", "volume_ratio", "pe", "pe_ttm", "pb", "ps", "ps_ttm",
              "dv_ratio", "dv_ttm", "total_share", "float_share", "free_share", "total_mv", "circ_mv"),
    Column("limit_status", SmallInteger),
)

TABLES: dict[str, Table] = {t.name: t for t in metadata.sorted_tables}
