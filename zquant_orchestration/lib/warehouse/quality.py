"""Data-quality queries behind the asset checks, over a range of trading days."""

from __future__ import annotations

from datetime import date

from sqlalchemy import text

from zquant_orchestration.lib.dates import to_date

from .warehouse import Warehouse


def _between(warehouse: Warehouse, sql: str, start: date, end: date) -> list:
    with warehouse.engine.connect() as conn:
        return list(conn.execute(text(sql), {"start": start, "end": end}))


def duplicate_keys(warehouse: Warehouse, table: str, start: date, end: date,
                   keys: tuple[str, ...] = ("ts_code", "trade_date"), day_column: str = "trade_date") -> int:
    columns = ", ".join(keys)
    rows = _between(warehouse, f"""
        SELECT COUNT(*) FROM (
            SELECT {columns} FROM {table} WHERE {day_column} BETWEEN :start AND :end
            GROUP BY {columns} HAVING COUNT(*) > 1) AS dup""", start, end)
    return int(rows[0][0])


def ohlc_violations(warehouse: Warehouse, start: date, end: date) -> int:
    """Bars whose prices are out of order, or missing: a NULL price is no sane bar either."""
    rows = _between(warehouse, """
        SELECT COUNT(*) FROM daily_bars WHERE trade_date BETWEEN :start AND :end
        AND NOT COALESCE(low <= open AND low <= close AND open <= high AND close <= high AND low > 0, FALSE)""",
                    start, end)
    return int(rows[0][0])


def rows_against_universe(warehouse: Warehouse, table: str, start: date, end: date) -> list[tuple[date, int, int]]:
    """(day, rows landed, stocks listed that day per stock_basic) for each day with rows."""
    rows = _between(warehouse, f"""
        SELECT t.trade_date, COUNT(*),
               (SELECT COUNT(*) FROM stock_basic s WHERE s.list_date <= t.trade_date
                AND (s.delist_date IS NULL OR s.delist_date > t.trade_date))
        FROM {table} t WHERE t.trade_date BETWEEN :start AND :end GROUP BY t.trade_date
        ORDER BY t.trade_date""", start, end)
    return [(to_date(r[0]), int(r[1]), int(r[2])) for r in rows]


def missing_coverage(warehouse: Warehouse, table: str, of_table: str, start: date, end: date) -> tuple[int, int]:
    """(rows of ``of_table`` without a row in ``table``, rows of ``of_table``) in the range."""
    rows = _between(warehouse, f"""
        SELECT COUNT(*), SUM(CASE WHEN a.ts_code IS NULL THEN 1 ELSE 0 END)
        FROM {of_table} b LEFT JOIN {table} a ON a.ts_code = b.ts_code AND a.trade_date = b.trade_date
        WHERE b.trade_date BETWEEN :start AND :end""", start, end)
    total, missing = rows[0]
    return int(missing or 0), int(total or 0)

