"""The SQL warehouse: schema upkeep and atomic, idempotent, bulk partition writes.

The only module that knows SQL dialects. Postgres (production) loads with COPY inside
the same transaction as the DELETE of the partition; SQLite (the embedded default) uses
one executemany of plain tuples. Either way a partition is replaced in ONE transaction:
readers and a crash see the old rows or the new ones, never a mix or a duplicate.
"""

from __future__ import annotations

import fcntl
import io
import logging
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from pgpq import ArrowToPostgresBinaryEncoder
from sqlalchemy import (
    Date,
    Engine,
    Float,
    SmallInteger,
    String,
    bindparam,
    create_engine,
    event,
    exists,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Connection

from ..redact import mask_engine_errors, redact_url
from .statements import lock_period, require_statement_table
from .tables import FINANCE_TABLES, TABLES, metadata, version_keys

DEFAULT_DATA_DIR = ".zquant"
SQLITE_INSERT_SLICE = 10_000
COPY_ENCODE_ROWS = 10_000
# Above this the write-ahead log is copied back before the next write (_write_transaction).
WAL_CHECKPOINT_BYTES = 256 * 1024 * 1024

log = logging.getLogger(__name__)


def default_url() -> str:
    """$ZQUANT_WAREHOUSE_URL, else a SQLite file at $ZQUANT_DATA_DIR/warehouse.sqlite (default ./.zquant)."""
    from zquant_orchestration.settings import get_settings

    return get_settings().default_warehouse_url()


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
        mask_engine_errors(self.engine, url)
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._schema_ready = False

    def __repr__(self) -> str:
        return f"Warehouse({redact_url(self.url)})"

    # --- schema ---------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create missing tables and views, add columns the code has gained since (additive changes)."""
        if self._schema_ready:
            return
        # Step processes start together: one at a time, or CREATE races CREATE ("table
        # already exists"). Postgres: an advisory lock in the transaction; SQLite: a lock
        # file beside the database (its DDL takes no lock until the first write).
        with self._sqlite_schema_lock(), self.engine.begin() as conn:
            if self.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(720129)"))
            metadata.create_all(conn)
            existing = inspect(conn)
            for table in TABLES.values():
                have = {c["name"] for c in existing.get_columns(table.name)}
                for column in table.columns:
                    if column.name not in have:
                        ddl = column.type.compile(dialect=self.engine.dialect)
                        conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {ddl}'))
                # create_all indexes only the tables it creates: a warehouse made by an
                # older version gains the newer indexes here (once; a big table takes seconds).
                indexed = {i["name"] for i in existing.get_indexes(table.name)}
                for index in table.indexes:
                    if index.name not in indexed:
                        index.create(conn)
            views = set(existing.get_view_names())
            wanted_views = {f"{name}_pit": ([c.name for c in TABLES[name].columns] + ["known_from", "known_until"],
                                            _pit_view_sql(name)) for name in FINANCE_TABLES}
            wanted_views["daily_qfq"] = (QFQ_COLUMNS, self._qfq_view_sql())
            for view, (columns, sql) in wanted_views.items():
                if view in views and [c["name"] for c in existing.get_columns(view)] == columns:
                    continue
                conn.execute(text(f"DROP VIEW IF EXISTS {view}"))
                conn.execute(text(sql))
        self._schema_ready = True

    def _sqlite_schema_lock(self):
        """Processes creating tables at once take turns (SQLite DDL races otherwise)."""
        return self._sqlite_file_lock("schema-lock")

    @contextmanager
    def _write_transaction(self) -> Iterator[Connection]:
        """A write transaction; on SQLite, in turn with other writers, and checkpointed after.

        SQLite copies committed pages from its write-ahead log into the database file in a
        checkpoint, which by default the committing writer runs inside its transaction's
        lock: a fifth of a batch's time, while every other writer waits. Here the writer
        checkpoints after it has released the lock, while the next writer appends to the
        log. The log starts over only when a writer finds it all copied back, which never
        happens while writers follow each other; so a writer that finds it above
        ``WAL_CHECKPOINT_BYTES`` finishes the copy first, holding the lock."""
        with self._sqlite_write_lock():
            if self.dialect == "sqlite" and self._wal_bytes() > WAL_CHECKPOINT_BYTES:
                self._checkpoint()
            with self.engine.begin() as conn:
                yield conn
        if self.dialect == "sqlite":
            self._checkpoint()

    def _wal_bytes(self) -> int:
        try:
            return os.path.getsize(f"{self.engine.url.database}-wal")
        except (OSError, TypeError):
            return 0

    def _checkpoint(self) -> None:
        """Copy what the write-ahead log holds into the database file (PASSIVE: no reader or
        writer waits for it, and pages a reader still needs stay in the log). One process at
        a time: SQLite refuses a checkpoint while another runs, instead of waiting for it.

        Durability does not depend on it: every commit has fsynced the log already
        (synchronous=FULL, _sqlite_pragmas), and pages left in the log are read from there
        and copied back by a later checkpoint. What it bounds is the log's size."""
        with self._sqlite_file_lock("checkpoint-lock"), self.engine.connect() as conn:
            busy, pages, copied = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        if busy or copied < pages:
            log.debug("SQLite checkpoint of %s left %d of %d pages in the log (busy=%d): a reader still needs "
                      "them; a later checkpoint copies them", self.engine.url.database, pages - copied,
                      pages, busy)

    def _sqlite_write_lock(self):
        """On SQLite, writers queue on a lock file instead of on SQLite's busy handler.

        A writer that finds the database locked sleeps and polls (up to 100 ms a time), so
        with several steps writing by turns the database sat idle between transactions; a
        process blocked in flock() wakes the moment the lock is released. A write that does
        not take it (schema changes) still waits on SQLite's own lock, as before."""
        return self._sqlite_file_lock("write-lock")

    @contextmanager
    def _sqlite_file_lock(self, suffix: str):
        """An exclusive flock on ``<database>.<suffix>``; nothing on other dialects. The
        kernel drops the lock of a killed process, so a crash never leaves it held."""
        database = self.engine.url.database if self.dialect == "sqlite" else None
        if not database or database == ":memory:":
            yield
            return
        with open(f"{database}.{suffix}", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _qfq_view_sql(self) -> str:
        # Postgres rounds NUMERIC only; SQLite rounds its REALs directly.
        if self.dialect == "postgresql":
            return _qfq_view_sql_for(lambda x: f"CAST(ROUND(CAST({x} AS NUMERIC), 2) AS DOUBLE PRECISION)")
        return _qfq_view_sql_for(lambda x: f"ROUND({x}, 2)")

    # --- writes ---------------------------------------------------------------------------

    def replace_rows(self, table_name: str, frame: pd.DataFrame, where: dict[str, Iterable] | None = None) -> int:
        """Delete the rows matching ``where`` (all rows when None) and insert ``frame``, atomically.

        ``where`` maps a column to the values that define the partition, e.g.
        ``{"trade_date": [date(2024, 1, 2)]}``. Every row of ``frame`` must fall inside it,
        so a retry of the same partition rewrites exactly what it wrote before.
        """
        self.ensure_schema()
        table = TABLES[table_name]
        frame = _conform(frame, table, table_name)
        deletes = []
        for column, values in (where or {}).items():
            values = _bind_values(table.c[column], values)
            outside = ~frame[column].isin([_as_text(v) for v in values])
            if outside.any():
                raise ValueError(
                    f"{table_name}: {int(outside.sum())} rows fall outside the partition being replaced "
                    f"({column} {frame.loc[outside, column].iloc[0]!r}); nothing was written"
                )
            deletes.append(table.c[column].in_(values))
        # Everything that takes CPU but no lock (sorting, converting to what the driver
        # sends) happens before the transaction: SQLite has one writer at a time, and the
        # three market steps of a run take turns at it.
        rows = len(frame)
        insert = self._prepared_insert(table_name, frame) if rows else None
        del frame  # what is inserted is held by `insert` now; the batch's copy can go meanwhile
        with self._write_transaction() as conn:
            conn.execute(table.delete().where(*deletes) if deletes else table.delete())
            if insert is not None:
                insert(conn)
        return rows

    def _prepared_insert(self, table_name: str, frame: pd.DataFrame):
        """A function that inserts ``frame`` (conformed: ``_conform``) on a connection, with the
        rows already converted, so that the function spends its time in the database only."""
        columns = [c.name for c in TABLES[table_name].columns]
        quoted = ", ".join(f'"{c}"' for c in columns)
        if self.dialect == "postgresql":
            # COPY in Postgres' binary format: the server stores each value as sent instead of
            # parsing text (a third less of its CPU for a year of daily_basic than CSV), and
            # pgpq encodes a batch from Arrow several times faster than Arrow's CSV writer
            # (docs/benchmarks.md). Each value is sent as its column's exact type
            # (``_arrow_column``): a value that does not fit fails the whole write.
            buffer = _postgres_binary_copy(TABLES[table_name], frame)
            del frame  # the buffer is all the function below needs

            def copy(conn: Connection) -> None:
                buffer.seek(0)
                cursor = conn.connection.driver_connection.cursor()
                cursor.copy_expert(f"COPY {table_name} ({quoted}) FROM STDIN WITH (FORMAT binary)", buffer)
            return copy
        # Plain Python values, a column at a time, a slice of rows at a time (the whole batch
        # as Python objects would add ~55 MB to the step while it waits for the writer).
        # Numbers go as they are: SQLite stores a NaN as NULL itself, so only other columns
        # need their missing values made None.
        # The columns as numpy arrays, taken once: wide tables (a statement has ~100 columns)
        # in small batches (one stock's reports) spent most of their insert in per-column
        # pandas overhead.
        marks = ", ".join("?" for _ in columns)
        arrays = [_column_values(TABLES[table_name], c, frame[c.name], "sqlite") for c in TABLES[table_name].columns]

        rows = len(frame)
        del frame  # not kept by the function below: the arrays are all it needs

        def insert(conn: Connection) -> None:
            cursor = conn.connection.driver_connection.cursor()
            for start in range(0, rows, SQLITE_INSERT_SLICE):
                values = [_sqlite_values(a[start:start + SQLITE_INSERT_SLICE]) for a in arrays]
                cursor.executemany(f"INSERT INTO {table_name} ({quoted}) VALUES ({marks})",
                                   zip(*values, strict=True))
        return insert

    # --- staged writes (financial statements) ----------------------------------------------

    def stage_rows(self, table_name: str, run_id: str, frame: pd.DataFrame) -> int:
        """Append rows to ``stage_<table>`` under ``run_id``; nothing readers see changes yet."""
        self.ensure_schema()
        stage = TABLES[f"stage_{table_name}"]
        frame = _conform(frame.assign(run_id=run_id), stage, table_name)
        if len(frame):
            insert = self._prepared_insert(stage.name, frame)
            with self._write_transaction() as conn:
                insert(conn)
        return len(frame)

    def merge_staged(self, table_name: str, run_id: str, period: date) -> tuple[int, int]:
        """Move the run's staged rows of one report period into the table, in ONE transaction.

        A staged row replaces the row with the same version key (``tables.version_keys``),
        so a re-run rewrites what it wrote before; every other row, earlier versions of
        restated reports above all, stays. Returns (rows landed, of which new versions).
        """
        self.ensure_schema()
        table, stage = TABLES[table_name], TABLES[f"stage_{table_name}"]
        columns = [c.name for c in table.columns]
        staged = (stage.c.run_id == run_id) & (stage.c.end_date == period)
        same_version = exists().where(staged, *[stage.c[k].is_not_distinct_from(table.c[k])
                                                for k in version_keys(table_name)])
        with self._write_transaction() as conn:
            lock_period(conn, table_name, period)
            replaced = conn.execute(table.delete().where(table.c.end_date == period, same_version)).rowcount
            landed = conn.execute(table.insert().from_select(
                columns, select(*[stage.c[c] for c in columns]).where(staged))).rowcount
            conn.execute(stage.delete().where(staged))
        return landed, landed - replaced

    def discard_staged(self, table_name: str, keep_run_ids: Iterable[str]) -> int:
        """Drop staged rows of runs that ended without merging them (killed, failed)."""
        self.ensure_schema()
        stage = TABLES[f"stage_{table_name}"]
        keep = list(keep_run_ids)
        delete = stage.delete().where(stage.c.run_id.not_in(keep)) if keep else stage.delete()
        with self._write_transaction() as conn:
            return conn.execute(delete).rowcount

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
        binds = [bindparam("as_of", date.fromisoformat(to_iso_date(as_of)), type_=Date)]
        if ts_codes is not None:
            sql += " AND ts_code IN :codes"
            binds.append(bindparam("codes", list(ts_codes), expanding=True))
        if periods is not None:
            sql += " AND end_date IN :periods"
            binds.append(bindparam("periods", [date.fromisoformat(to_iso_date(p)) for p in periods],
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

    def read_days(self, table_name: str, first: date, last: date) -> pd.DataFrame:
        """Rows with trade_date in [first, last] (dates as ``datetime.date``)."""
        self.ensure_schema()
        table = TABLES[table_name]
        query = select(table).where(table.c.trade_date.between(first, last))
        with self.engine.connect() as conn:
            result = conn.execute(query)
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))

    def days_with_rows(self, table_name: str, first: date, last: date, ts_code: str | None = None) -> set[str]:
        """The trade_dates (ISO) in [first, last] that hold at least one row (of ``ts_code``)."""
        self.ensure_schema()
        column = TABLES[table_name].c.trade_date
        query = select(column).distinct().where(column.between(first, last))
        if ts_code is not None:
            query = query.where(TABLES[table_name].c.ts_code == ts_code)
        with self.engine.connect() as conn:
            return {to_iso_date(d) for d in conn.execute(query).scalars()}

    def ping(self) -> dict[str, str | None]:
        """Connect and read without writing (health checks): the latest landed trading day per
        market table, None for a table that is empty or not created yet."""
        with self.engine.connect() as conn:
            present = set(inspect(conn).get_table_names())
            latest = {}
            for name in ("daily_bars", "adj_factor", "daily_basic"):
                column = TABLES[name].c.trade_date
                latest[name] = (to_iso_date(conn.execute(select(func.max(column))).scalar())
                                if name in present else None)
        return latest

    def scalar(self, sql: str, **params):
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def query(self, sql: str, **params) -> pd.DataFrame:
        with self.engine.connect() as conn:
            result = conn.execute(text(sql), params)
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


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
    SQLite itself would have stored it as it came."""
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
    # a Python string per row cost ~15 MB a batch.
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
            # Text as it is; numbers as Arrow writes them (1.0 as "1"), as COPY's CSV held them.
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
        return str(int(value))  # 1.0 as "1", as COPY's CSV held it before
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


def _conform(frame: pd.DataFrame, table, table_name: str) -> pd.DataFrame:
    """The table's columns in order, Tushare's YYYYMMDD strings as ISO dates, rows in the
    order of the primary key; other columns are left out. A frame without one of the table's
    columns is refused: a reply that lost a column would land NULLs that look like Tushare's.

    In key order each page of the primary-key index is visited once, in order, instead of
    once per row at random: a batch of days into a big table is several times faster
    (docs/benchmarks.md). Sorting here, into the one new frame, keeps a single copy of a
    batch alive while it is converted (it had been three: the caller's, this one, a sorted one)."""
    missing = [c.name for c in table.columns if c.name not in frame.columns]
    if missing:
        raise ValueError(f"{table_name}: the rows to write lack the column(s) {', '.join(missing)}; nothing was "
                         "written (a writer passes every column of the table, NaN where a value is unknown)")
    columns = {}
    for column in table.columns:
        values = frame[column.name]
        if isinstance(column.type, Date):
            # A few distinct dates over many rows: convert each once.
            values = values.map({v: to_iso_date(v) for v in values.dropna().unique()})
        columns[column.name] = values
    conformed = pd.DataFrame(columns, index=frame.index)
    key = [c.name for c in table.primary_key.columns]
    if key and len(conformed) > 1:
        return conformed.sort_values(key, kind="stable", ignore_index=True)
    return conformed.reset_index(drop=True)


QFQ_COLUMNS = ["ts_code", "trade_date", "open", "high", "low", "close", "pre_close", "change", "pct_chg",
               "vol", "amount", "adj_factor", "anchor_factor"]


def _qfq_view_sql_for(round2) -> str:
    """Forward-adjusted bars as ``pro_bar(adj='qfq')`` with the latest landed factor as anchor
    (lib/adjust.py). Computed when read, so a new factor rewrites nothing stored."""
    prices = ",\n".join(f"{round2(f'b.{c} * f.adj_factor / l.adj_factor')} AS {c}"
                        for c in ("open", "high", "low", "close", "pre_close"))
    return f"""CREATE VIEW daily_qfq AS
SELECT ts_code, trade_date, open, high, low, close, pre_close, close - pre_close AS change,
       {round2("(close - pre_close) / pre_close * 100")} AS pct_chg, vol, amount, adj_factor, anchor_factor
FROM (SELECT b.ts_code, b.trade_date,
{prices},
      b.vol, b.amount, f.adj_factor, l.adj_factor AS anchor_factor
      FROM daily_bars b
      JOIN adj_factor f ON f.ts_code = b.ts_code AND f.trade_date = b.trade_date
      JOIN adj_factor l ON l.ts_code = b.ts_code AND l.trade_date = (
           SELECT MAX(m.trade_date) FROM adj_factor m WHERE m.ts_code = b.ts_code)) q"""


def _pit_view_sql(table_name: str) -> str:
    """Each version with [known_from, known_until): known from the later of ann_date and
    f_ann_date (the conservative choice), superseded when the next version is known. On a tie
    the update (update_flag 1) supersedes the original. Plain SQL: SQLite and Postgres alike."""
    names = {c.name for c in TABLES[table_name].columns}
    known_from = ("CASE WHEN f_ann_date IS NOT NULL AND f_ann_date > ann_date THEN f_ann_date ELSE ann_date END"
                  if "f_ann_date" in names else "ann_date")
    report = ["ts_code", "end_date"] + [k for k in ("report_type",) if k in names]
    return (
        f"CREATE VIEW {table_name}_pit AS SELECT v.*, LEAD(v.known_from) OVER ("
        f"PARTITION BY {', '.join('v.' + k for k in report)} "
        "ORDER BY v.known_from, v.update_flag, v.ann_date) AS known_until "
        f"FROM (SELECT t.*, {known_from} AS known_from FROM {table_name} t) v"
    )


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
    # 16 KiB pages (the default is 4): a third fewer page writes and checkpoint syncs per
    # batch of days (docs/benchmarks.md). It takes effect only on a new database file,
    # before WAL is set; on an existing one SQLite ignores it.
    cursor.execute("PRAGMA page_size=16384")
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: each commit fsyncs the write-ahead log before it returns, so a day the asset
    # reports materialized survives a power loss. NORMAL syncs the log only at checkpoints,
    # and a checkpoint stops short while a reader holds old pages, so committed days could
    # vanish while Dagster shows them green. EXTRA adds only a directory sync after a
    # rollback journal is deleted; in WAL mode SQLite syncs the directory of a new log
    # itself, so EXTRA would cost the same and add nothing.
    cursor.execute("PRAGMA synchronous=FULL")
    # Writers checkpoint after their transaction, outside the write lock (_write_transaction),
    # not inside their commit; a log that grew while writers followed each other is cut back
    # to this size once it starts over.
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.execute(f"PRAGMA journal_size_limit={64 * 1024 * 1024}")
    # 64 MiB of page cache (the default is 2 MiB): a batch of days touches most pages of a
    # table's per-stock index, and with a small cache they are spilled and written twice.
    # Memory is taken only as pages are used.
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.close()
