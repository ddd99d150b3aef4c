"""Reads: tables and days as DataFrames, point-in-time statements, health pings, plain SQL."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import pandas as pd
import pyarrow as pa
from sqlalchemy import Date, Engine, Float, Integer, String, bindparam, func, inspect, select, text

from zquant_orchestration.lib.dates import iso_or_none, to_date, to_dates

from .encoding import _bind_values
from .statements import require_statement_table
from .tables import TABLES


class Reads:
    """The warehouse's reads. Needs ``engine`` and ``ensure_schema`` (schema.SchemaUpkeep)
    on the instance."""

    engine: Engine

    def read(self, table_name: str, where: dict[str, Iterable] | None = None) -> pd.DataFrame:
        """Rows of a table as a DataFrame (dates as ``datetime.date``), optionally filtered."""
        self.ensure_schema()
        table = TABLES[table_name]
        query = select(table)
        for column, values in (where or {}).items():
            query = query.where(table.c[column].in_(_bind_values(table.c[column], values)))
        with self.engine.connect() as conn:
            result = conn.execute(query)
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))

    def point_in_time(self, table_name: str, as_of: date | str, ts_codes: Iterable[str] | None = None,
                      periods: Iterable[date | str] | None = None) -> pd.DataFrame:
        """What we knew at the end of day ``as_of``: per stock, period (and report type) the
        latest version announced on or before it, never one announced later (no look-ahead).

        Reads the ``<table>_pit`` view, which gives each version the interval
        [known_from, known_until) in which it was the newest known one.
        """
        require_statement_table(table_name)
        self.ensure_schema()
        sql = f"SELECT * FROM {table_name}_pit WHERE known_from <= :as_of " \
              "AND (known_until IS NULL OR known_until > :as_of)"
        binds = [bindparam("as_of", to_date(as_of), type_=Date)]
        if ts_codes is not None:
            sql += " AND ts_code IN :codes"
            binds.append(bindparam("codes", list(ts_codes), expanding=True))
        if periods is not None:
            sql += " AND end_date IN :periods"
            binds.append(bindparam("periods", to_dates(periods),
                                   expanding=True, type_=Date))
        with self.engine.connect() as conn:
            result = conn.execute(text(sql + " ORDER BY ts_code, end_date").bindparams(*binds))
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))

    def stocks_with_rows(self, table_name: str, column: str, value) -> set[str]:
        """The ts_codes that have at least one row with ``column`` = ``value``."""
        self.ensure_schema()
        table = TABLES[table_name]
        query = select(table.c.ts_code).distinct().where(table.c[column] == _bind_values(table.c[column], [value])[0])
        with self.engine.connect() as conn:
            return set(conn.execute(query).scalars())

    def read_days(self, table_name: str, first: date, last: date, column: str = "trade_date") -> pd.DataFrame:
        """Rows with ``column`` (a day) in [first, last] (dates as ``datetime.date``)."""
        self.ensure_schema()
        table = TABLES[table_name]
        query = select(table).where(table.c[column].between(first, last))
        with self.engine.connect() as conn:
            result = conn.execute(query)
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))

    def read_days_arrow(self, table_name: str, first: date, last: date) -> pa.Table:
        """Rows with ``trade_date`` in [first, last] as an Arrow table sorted by (trade_date,
        ts_code), typed by the table's declaration rather than by the values a read happens to
        hold (arrow_schema): files of different months then share one schema."""
        self.ensure_schema()
        table = TABLES[table_name]
        schema = arrow_schema(table_name)
        query = select(table).where(table.c.trade_date.between(to_date(first), to_date(last)))
        with self.engine.connect() as conn:
            rows = conn.execute(query).fetchall()
        columns = list(zip(*rows, strict=True)) if rows else [()] * len(schema)
        arrow = pa.table([pa.array(values, type=field.type) for values, field in zip(columns, schema, strict=True)],
                         schema=schema)
        # Sorted here, not by ORDER BY: a Postgres collation may order text otherwise than bytes.
        return arrow.sort_by([("trade_date", "ascending"), ("ts_code", "ascending")])

    def days_with_rows(self, table_name: str, first: date, last: date, ts_code: str | None = None,
                       column: str = "trade_date", **equal: str) -> set[str]:
        """The days (ISO) of ``column`` in [first, last] that hold at least one row (of
        ``ts_code``, and of rows whose columns equal ``equal``)."""
        self.ensure_schema()
        table = TABLES[table_name]
        day = table.c[column]
        query = select(day).distinct().where(day.between(first, last))
        if ts_code is not None:
            equal["ts_code"] = ts_code
        for name, value in equal.items():
            query = query.where(table.c[name] == value)
        with self.engine.connect() as conn:
            return {iso_or_none(d) for d in conn.execute(query).scalars()}

    def ping(self) -> dict[str, str | None]:
        """Connect and read without writing (health checks): the latest landed trading day per
        market table, None for a table that is empty or not created yet."""
        with self.engine.connect() as conn:
            present = set(inspect(conn).get_table_names())
            latest = {}
            for name in ("daily_bars", "adj_factor", "daily_basic"):
                column = TABLES[name].c.trade_date
                latest[name] = (iso_or_none(conn.execute(select(func.max(column))).scalar())
                                if name in present else None)
        return latest

    def scalar(self, sql: str, **params):
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def query(self, sql: str, **params) -> pd.DataFrame:
        with self.engine.connect() as conn:
            result = conn.execute(text(sql), params)
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def arrow_schema(table_name: str) -> pa.Schema:
    """A table's columns as Arrow types: days as date32, numbers (whole ones too) as float64,
    text as strings; NULL is null."""
    def arrow_type(sql_type):
        if isinstance(sql_type, Date):
            return pa.date32()
        if isinstance(sql_type, Float | Integer):
            return pa.float64()
        if isinstance(sql_type, String):
            return pa.string()
        raise TypeError(f"{table_name}: no Arrow type for {sql_type!r}")
    return pa.schema([pa.field(c.name, arrow_type(c.type)) for c in TABLES[table_name].columns])
