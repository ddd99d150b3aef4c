"""Atomic, idempotent, bulk writes: partitions replaced, statement versions staged and merged.

Postgres (production) loads with COPY inside the same transaction as the DELETE of the
partition; SQLite (the embedded default) uses one executemany of plain tuples. Either way a
partition is replaced in ONE transaction: readers and a crash see the old rows or the new
ones, never a mix or a duplicate.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import pandas as pd
from sqlalchemy import exists, select
from sqlalchemy.engine import Connection

from .encoding import _as_text, _bind_values, _column_values, _conform, _postgres_binary_copy, _sqlite_values
from .statements import lock_period
from .tables import TABLES, version_keys

SQLITE_INSERT_SLICE = 10_000


class Writes:
    """The warehouse's writes. Needs ``dialect``, ``ensure_schema`` (schema.SchemaUpkeep) and
    ``_write_transaction`` (engine.WriterTurns) on the instance."""

    dialect: str

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
            # parsing text, and pgpq encodes a batch from Arrow faster than Arrow's CSV writer
            # (docs/benchmarks.md). Each value is sent as its column's exact type
            # (``_arrow_column``): a value that does not fit fails the whole write.
            buffer = _postgres_binary_copy(TABLES[table_name], frame)
            del frame  # the buffer is all the function below needs

            def copy(conn: Connection) -> None:
                buffer.seek(0)
                cursor = conn.connection.driver_connection.cursor()
                cursor.copy_expert(f"COPY {table_name} ({quoted}) FROM STDIN WITH (FORMAT binary)", buffer)
            return copy
        # Plain Python values, a column at a time, a slice of rows at a time: the whole batch
        # as Python objects would swell the step's memory while it waits for the writer.
        # Numbers go as they are: SQLite stores a NaN as NULL itself, so only other columns
        # need their missing values made None.
        # The columns are taken as numpy arrays once: wide tables (a statement has ~100
        # columns) in small batches (one stock's reports) would otherwise spend most of their
        # insert in per-column pandas overhead.
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
