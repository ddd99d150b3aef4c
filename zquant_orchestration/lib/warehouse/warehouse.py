"""The SQL warehouse: schema upkeep and atomic, idempotent, bulk partition writes.

The only module that knows SQL dialects. Postgres (production) loads with COPY inside
the same transaction as the DELETE of the partition; SQLite (the embedded default) uses
one executemany of plain tuples. Either way a partition is replaced in ONE transaction:
readers and a crash see the old rows or the new ones, never a mix or a duplicate.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable
from datetime import date
from pathlib import Path

import pandas as pd
from sqlalchemy import Date, Engine, create_engine, event, inspect, select, text
from sqlalchemy.engine import Connection

from .tables import TABLES, metadata

DEFAULT_DATA_DIR = ".zquant"


def default_url() -> str:
    """$ZQUANT_WAREHOUSE_URL, else a SQLite file at $ZQUANT_DATA_DIR/warehouse.sqlite (default ./.zquant)."""
    url = os.environ.get("ZQUANT_WAREHOUSE_URL")
    if url:
        return url
    folder = Path(os.environ.get("ZQUANT_DATA_DIR", DEFAULT_DATA_DIR)).resolve()
    return f"sqlite:///{folder / 'warehouse.sqlite'}"


def normalize_url(url: str) -> str:
    """postgresql://... uses psycopg2, the driver we ship (SQLAlchemy 2.1 would pick psycopg 3)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    return url


class Warehouse:
    def __init__(self, url: str):
        self.url = normalize_url(url)
        if self.url.startswith("sqlite:///"):
            Path(self.url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(self.url, **_engine_options(self.url))
        self.dialect = self.engine.dialect.name
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._schema_ready = False

    def __repr__(self) -> str:
        return f"Warehouse({self.engine.url.render_as_string(hide_password=True)})"

    # --- schema ---------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create missing tables and add columns the code has gained since (additive changes)."""
        if self._schema_ready:
            return
        metadata.create_all(self.engine)
        existing = inspect(self.engine)
        with self.engine.begin() as conn:
            for table in TABLES.values():
                have = {c["name"] for c in existing.get_columns(table.name)}
                for column in table.columns:
                    if column.name not in have:
                        ddl = column.type.compile(dialect=self.engine.dialect)
                        conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {ddl}'))
        self._schema_ready = True

    # --- writes ---------------------------------------------------------------------------

    def replace_rows(self, table_name: str, frame: pd.DataFrame, where: dict[str, Iterable] | None = None) -> int:
        """Delete the rows matching ``where`` (all rows when None) and insert ``frame``, atomically.

        ``where`` maps a column to the values that define the partition, e.g.
        ``{"trade_date": [date(2024, 1, 2)]}``. Every row of ``frame`` must fall inside it,
        so a retry of the same partition rewrites exactly what it wrote before.
        """
        self.ensure_schema()
        table = TABLES[table_name]
        columns = [c.name for c in table.columns]
        frame = _conform(frame, table)
        with self.engine.begin() as conn:
            delete = table.delete()
            for column, values in (where or {}).items():
                values = _bind_values(table.c[column], values)
                outside = ~frame[column].isin([_as_text(v) for v in values])
                if outside.any():
                    raise ValueError(
                        f"{table_name}: {int(outside.sum())} rows fall outside the partition being replaced "
                        f"({column} {frame.loc[outside, column].iloc[0]!r}); nothing was written"
                    )
                delete = delete.where(table.c[column].in_(values))
            conn.execute(delete)
            if len(frame):
                self._bulk_insert(conn, table_name, columns, frame)
        return len(frame)

    def _bulk_insert(self, conn: Connection, table_name: str, columns: list[str], frame: pd.DataFrame) -> None:
        quoted = ", ".join(f'"{c}"' for c in columns)
        if self.dialect == "postgresql":
            buffer = io.StringIO()
            frame.to_csv(buffer, index=False, header=False, na_rep="\\N", quoting=csv.QUOTE_MINIMAL)
            buffer.seek(0)
            cursor = conn.connection.driver_connection.cursor()
            cursor.copy_expert(f"COPY {table_name} ({quoted}) FROM STDIN WITH (FORMAT csv, NULL '\\N')", buffer)
            return
        rows = list(frame.astype(object).where(frame.notna(), None).itertuples(index=False, name=None))
        marks = ", ".join("?" for _ in columns)
        conn.exec_driver_sql(f"INSERT INTO {table_name} ({quoted}) VALUES ({marks})", rows)

    # --- reads ----------------------------------------------------------------------------

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

    def scalar(self, sql: str, **params):
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def query(self, sql: str, **params) -> pd.DataFrame:
        with self.engine.connect() as conn:
            result = conn.execute(text(sql), params)
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def _conform(frame: pd.DataFrame, table) -> pd.DataFrame:
    """The table's columns in order; Tushare's YYYYMMDD strings as ISO dates."""
    out = pd.DataFrame(index=frame.index)
    for column in table.columns:
        values = frame[column.name] if column.name in frame.columns else pd.Series(None, index=frame.index)
        if isinstance(column.type, Date):
            values = values.map(to_iso_date)
        out[column.name] = values
    return out.reset_index(drop=True)


def _bind_values(column, values: Iterable) -> list:
    """Partition values as the column's Python type (SQLAlchemy binds dates as date objects)."""
    if isinstance(column.type, Date):
        return [date.fromisoformat(to_iso_date(v)) for v in values]
    return list(values)


def _as_text(value) -> str:
    return value.isoformat() if isinstance(value, date) else value


def to_iso_date(value) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return None
    if isinstance(value, date):
        return value.isoformat()
    text_value = str(value)
    if len(text_value) == 8 and text_value.isdigit():
        return f"{text_value[:4]}-{text_value[4:6]}-{text_value[6:]}"
    return text_value[:10]


def _engine_options(url: str) -> dict:
    if url.startswith("sqlite"):
        # Several run processes may write at once: wait for the lock instead of failing.
        return {"connect_args": {"timeout": 120}}
    return {"pool_pre_ping": True}


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
