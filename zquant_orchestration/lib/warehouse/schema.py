"""Schema upkeep: tables, columns, indexes and views the code expects, created where missing."""

from __future__ import annotations

from sqlalchemy import Engine, inspect, text

from .tables import TABLES, metadata
from .views import wanted_views


class SchemaUpkeep:
    """``ensure_schema``, once per instance. Needs ``engine``, ``dialect``, ``_schema_ready``
    and ``_sqlite_schema_lock`` (engine.WriterTurns) on the instance."""

    engine: Engine
    dialect: str
    _schema_ready: bool

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
            for view, (columns, sql) in wanted_views(self.dialect).items():
                if view in views and [c["name"] for c in existing.get_columns(view)] == columns:
                    continue
                conn.execute(text(f"DROP VIEW IF EXISTS {view}"))
                conn.execute(text(sql))
        self._schema_ready = True
