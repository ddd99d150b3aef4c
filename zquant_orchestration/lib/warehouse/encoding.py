"""Values on their way into the warehouse: a batch conformed to its table, each column
converted to what the driver sends (Arrow for Postgres' binary COPY, numpy for SQLite), and
partition values bound as their column's Python type. Conversions work per distinct value or
per column, never per row in Python, as batches hold ~100,000 rows."""

from __future__ import annotations

import io
from collections.abc import Iterable
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
from pgpq import ArrowToPostgresBinaryEncoder
from sqlalchemy import Date, Float, SmallInteger, String

from zquant_orchestration.lib.dates import iso_or_none, to_dates

COPY_ENCODE_ROWS = 10_000


def _conform(frame: pd.DataFrame, table, table_name: str) -> pd.DataFrame:
    """The table's columns in order, Tushare's YYYYMMDD strings as ISO dates, rows in the
    order of the primary key; other columns are left out. A frame without one of the table's
    columns is refused: a reply that lost a column would land NULLs that look like Tushare's.

    In key order each page of the primary-key index is visited once, in order, instead of
    once per row at random, which makes a batch of days into a big table much faster to
    insert (docs/benchmarks.md). Sorting here, into the one new frame, keeps a single copy of
    a batch alive while it is converted, rather than one more for a sorted copy."""
    missing = [c.name for c in table.columns if c.name not in frame.columns]
    if missing:
        raise ValueError(f"{table_name}: the rows to write lack the column(s) {', '.join(missing)}; nothing was "
                         "written (a writer passes every column of the table, NaN where a value is unknown)")
    columns = {}
    for column in table.columns:
        values = frame[column.name]
        if isinstance(column.type, Date):
            # A few distinct dates over many rows: convert each once.
            values = values.map({v: iso_or_none(v) for v in values.dropna().unique()})
        columns[column.name] = values
    conformed = pd.DataFrame(columns, index=frame.index)
    key = [c.name for c in table.primary_key.columns]
    if key and len(conformed) > 1:
        return conformed.sort_values(key, kind="stable", ignore_index=True)
    return conformed.reset_index(drop=True)


def _postgres_binary_copy(table, frame: pd.DataFrame) -> io.BytesIO:
    """``frame`` (the table's columns, in order) as the body of a binary COPY."""
    arrow = pa.table({c.name: _column_values(table, c, frame[c.name], "postgresql") for c in table.columns})
    encoder = ArrowToPostgresBinaryEncoder(arrow.schema)
    buffer = io.BytesIO()
    buffer.write(encoder.write_header())
    for batch in arrow.to_batches(max_chunksize=COPY_ENCODE_ROWS):  # not the batch's whole body twice
        buffer.write(encoder.write_batch(batch))
    buffer.write(encoder.finish())
    return buffer


def _column_values(table, column, values: pd.Series, dialect: str):
    """A column's values as the driver takes them, each of the column's SQL type: for Postgres
    an Arrow array (``_arrow_column``), for SQLite a numpy array. Both dialects check values the
    same way, so a value the column cannot hold (text in a number column, 1.5 or 70000 in a
    SMALLINT, a date that is no date) fails the write on each, before anything is sent;
    SQLite itself would store it as it came."""
    try:
        return _arrow_column(values, column.type) if dialect == "postgresql" else _sqlite_column(values, column.type)
    except (ValueError, TypeError, OverflowError) as exc:  # Arrow's errors are ValueError / TypeError
        first = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise ValueError(f"{table.name}.{column.name} cannot hold a value of this batch ({first}); "
                         "nothing was written") from None


def _sqlite_column(values: pd.Series, sql_type) -> np.ndarray:
    if isinstance(sql_type, Float):
        return pd.to_numeric(values).to_numpy(dtype="float64")  # NaN for missing: SQLite stores NULL
    # Everything else is converted once per distinct value, and each row refers to its one
    # Python object: a batch of days holds a few dates and ~5,300 codes over 100,000 rows, and
    # a Python string per row would multiply the batch's memory.
    codes, distinct = pd.factorize(values)
    distinct = pd.Series(distinct, dtype=object)
    if isinstance(sql_type, Date):
        _iso_days(distinct)  # refuses what is no date; SQLite keeps the ISO text
        objects = distinct.to_numpy()
    else:  # ints and None (Arrow's numpy would make them floats); text and None
        objects = np.array(_arrow_column(distinct, sql_type).to_pylist() + [None], dtype=object)[:-1]
    return np.append(objects, None)[codes]  # code -1 (missing) takes the last: None


def _arrow_column(values: pd.Series, sql_type) -> pa.Array:
    """The Arrow type whose binary form is the SQL type's: float8, int2, date, text (a
    varchar's binary form is text's). Missing values (None, NaN, NaT) become NULL."""
    if isinstance(sql_type, Date):
        return pa.array(_iso_days(values), type=pa.date32(), from_pandas=True)
    if isinstance(sql_type, Float):
        return pa.array(pd.to_numeric(values).to_numpy(dtype="float64"), type=pa.float64(), from_pandas=True)
    if isinstance(sql_type, SmallInteger):
        if values.isna().all():  # a column Tushare left empty: no conversion to make
            return pa.nulls(len(values), pa.int16())
        return pa.array(pd.to_numeric(values).to_numpy(), type=pa.int16(), from_pandas=True)
    if isinstance(sql_type, String):
        try:
            # Text as it is; numbers as Arrow writes them (1.0 as "1"): a code Tushare sends
            # as a number lands as the text it stands for.
            array = pa.array(values, from_pandas=True)
        except (pa.ArrowTypeError, pa.ArrowInvalid):  # a mix of types: each value as text
            array = pa.array(values.map(lambda v: None if _missing(v) else _text_of(v)), type=pa.large_string())
        # A column backed by Arrow comes as chunks, which may differ in their string type.
        chunks = array.chunks if isinstance(array, pa.ChunkedArray) else [array]
        return pa.concat_arrays([c.cast(pa.large_string()) for c in chunks] or [pa.array([], pa.large_string())])
    raise TypeError(f"no binary encoding for the SQL type {sql_type!r}")


def _iso_days(values: pd.Series) -> np.ndarray:
    """ISO dates (None for missing) as datetime64[D], NaT for missing; raises on what is no
    date. Each distinct value is parsed once: a batch holds a few dates over many rows."""
    codes, distinct = pd.factorize(values)
    parsed = pd.to_datetime(pd.Index(distinct, dtype=object), format="ISO8601").to_numpy().astype("datetime64[D]")
    days = np.append(parsed, np.datetime64("NaT", "D"))  # code -1 (missing) takes the last
    return days[codes]


def _text_of(value) -> str:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 1.0 as "1", the text Arrow writes for a column of whole floats
    return str(value)


def _missing(value) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and np.isnan(value))


def _sqlite_values(array: np.ndarray) -> list:
    """A column slice as the plain Python values sqlite3 binds, missing values as None."""
    values = array.tolist()
    if array.dtype.kind not in "fiub":  # numbers go as they are: SQLite stores a NaN as NULL
        for i in np.flatnonzero(pd.isna(array)):
            values[i] = None
    return values


def _bind_values(column, values: Iterable) -> list:
    """Partition values as the column's Python type (SQLAlchemy binds dates as date objects)."""
    if isinstance(column.type, Date):
        return to_dates(values)
    return list(values)


def _as_text(value) -> str:
    return value.isoformat() if isinstance(value, date) else value
