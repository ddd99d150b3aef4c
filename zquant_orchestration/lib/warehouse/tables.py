"""Warehouse tables: named after their assets, Tushare's column names, real types, primary keys."""

from __future__ import annotations

from sqlalchemy import Column, Date, Float, Index, MetaData, SmallInteger, String, Table

from zquant_orchestration.lib.datasets import DECLARATIONS, DatasetSpec
from zquant_orchestration.lib.tushare.catalog import api_columns

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

# Backward-adjusted (hfq) bars, derived from daily_bars and adj_factor (lib/adjust.py); the
# forward-adjusted ones are the view daily_qfq (views.py), never stored.
daily_hfq = Table(
    "daily_hfq", metadata,
    Column("ts_code", String(12), primary_key=True),
    Column("trade_date", Date, primary_key=True),
    *_doubles("open", "high", "low", "close", "pre_close", "change", "pct_chg", "vol", "amount", "adj_factor"),
)

# lib/factors.py defines each column.
daily_factors = Table(
    "daily_factors", metadata,
    Column("ts_code", String(12), primary_key=True),
    Column("trade_date", Date, primary_key=True),
    *_doubles("mom_20", "mom_60", "vol_20", "turnover_20", "ep_ttm", "bp", "sp_ttm", "dv_ttm", "log_mv"),
)

# What a backtest may fill per stock and day (lib/tradable.py defines each column).
daily_tradable = Table(
    "daily_tradable", metadata,
    Column("ts_code", String(12), primary_key=True),
    Column("trade_date", Date, primary_key=True),
    *[Column(name, SmallInteger, nullable=False)
      for name in ("is_st", "is_suspended", "traded", "at_up_limit", "at_down_limit")],
    Column("listed_days", DOUBLE),
    *_doubles("close", "up_limit", "down_limit"),
)

# --- financial statements ----------------------------------------------------------------
# Every version Tushare returns is a row: a restated report adds a row (its own ann_date /
# f_ann_date / update_flag), it never replaces the original. So there is no primary key
# on (ts_code, end_date); a version is identified by VERSION_KEYS instead.

FINANCE_TABLES = ("income", "balancesheet", "cashflow", "fina_indicator")
VERSION_KEYS = ("ts_code", "end_date", "report_type", "comp_type", "ann_date", "f_ann_date", "update_flag")
_SQL_TYPES = {"float": lambda: DOUBLE, "date": lambda: Date, "str": lambda: String(20), "int": lambda: SmallInteger}


def _finance_columns(api: str) -> list[Column]:
    # update_flag is an int in three APIs and a str in fina_indicator: one type here.
    return [Column(name, SmallInteger if name == "update_flag" else _SQL_TYPES[typ]())
            for name, typ in api_columns(api)]


def version_keys(table_name: str) -> list[str]:
    names = {c.name for c in TABLES[table_name].columns}
    return [k for k in VERSION_KEYS if k in names]


for _api in FINANCE_TABLES:
    Table(_api, metadata, *_finance_columns(_api),
          Index(f"ix_{_api}_period_stock", "end_date", "ts_code"),
          Index(f"ix_{_api}_stock_ann", "ts_code", "ann_date"))
    # A run lands its rows here first, then moves each report period into the table in
    # one transaction: memory stays bounded and each partition still changes atomically.
    Table(f"stage_{_api}", metadata, Column("run_id", String(64), nullable=False), *_finance_columns(_api),
          Index(f"ix_stage_{_api}_run_period", "run_id", "end_date"))

# --- the catalog's datasets ---------------------------------------------------------------
# Each optional dataset's table is its API's documented columns (whole numbers as doubles:
# moneyflow's volumes outgrow a small integer, and a double holds every one exactly), with
# the declaration's keys as primary key and an index on the day a partition selects.
_CATALOG_TYPES = {"str": String, "date": Date, "float": lambda: DOUBLE, "number": lambda: DOUBLE, "int": lambda: DOUBLE}

def dataset_table(spec: DatasetSpec) -> Table:
    """The table of a catalog dataset, made (and added to TABLES) the first time it is asked for."""
    if spec.name in metadata.tables:
        return metadata.tables[spec.name]
    table = Table(spec.name, metadata, *[Column(name, _CATALOG_TYPES[typ](), primary_key=name in spec.keys)
                                          for name, typ in spec.columns])
    if spec.date_column and spec.date_column != table.primary_key.columns[0].name:
        Index(f"ix_{spec.name}_{spec.date_column}", table.c[spec.date_column])
    if "TABLES" in globals():
        TABLES[spec.name] = table
    return table


for _spec in DECLARATIONS:
    if not _spec.core:
        dataset_table(_spec)

# Every trading-day table is written and read a day at a time (DELETE + INSERT of one
# trade_date, range checks): without this index each day's DELETE scans the whole table,
# and each day of a sync takes longer than the one before (docs/benchmarks.md).
TRADING_DAY_TABLES = ("daily_bars", "adj_factor", "daily_basic", "daily_hfq", "daily_factors", "daily_tradable")
for _name in TRADING_DAY_TABLES:
    Index(f"ix_{_name}_trade_date", metadata.tables[_name].c.trade_date)

TABLES: dict[str, Table] = {t.name: t for t in metadata.sorted_tables}


def day_columns(table_name: str) -> set[str]:
    """The columns of a table that hold days."""
    return {c.name for c in TABLES[table_name].columns if isinstance(c.type, Date)}
