"""The SQL of the warehouse's views: forward-adjusted bars (``daily_qfq``) and the
point-in-time views of the statement tables (``<table>_pit``). Views compute when read, so
nothing stored is rewritten when what they derive from changes."""

from __future__ import annotations

from .tables import FINANCE_TABLES, TABLES

QFQ_COLUMNS = ["ts_code", "trade_date", "open", "high", "low", "close", "pre_close", "change", "pct_chg",
               "vol", "amount", "adj_factor", "anchor_factor"]


def wanted_views(dialect: str) -> dict[str, tuple[list[str], str]]:
    """Each view's name -> (its columns in order, the CREATE VIEW that makes it)."""
    views = {f"{name}_pit": ([c.name for c in TABLES[name].columns] + ["known_from", "known_until"],
                             _pit_view_sql(name)) for name in FINANCE_TABLES}
    views["daily_qfq"] = (QFQ_COLUMNS, _qfq_view_sql(dialect))
    return views


def round2_sql(dialect: str):
    """The SQL that rounds an expression to 2 decimals in ``dialect``, as the views round:
    a read that computes what a view computes uses it, and so gets the view's numbers."""
    # Postgres rounds NUMERIC only; SQLite rounds its REALs directly.
    if dialect == "postgresql":
        return lambda x: f"CAST(ROUND(CAST({x} AS NUMERIC), 2) AS DOUBLE PRECISION)"
    return lambda x: f"ROUND({x}, 2)"


def round2_sql_fast(dialect: str):
    """``round2_sql``'s numbers for less work: on Postgres, rounding through NUMERIC costs
    more than the join that feeds it (7.1 s against 3.0 s over a year of the whole market).

    NUMERIC rounds the double's 15 significant digits half away from zero; x * 100 as a
    double differs from those digits times 100 by under 1e-6 while |x * 100| < 1e8. So
    unless x * 100 lies within 1e-6 of a half, both round to the same whole cent N, and
    N / 100 is the double nearest N / 100 either way (a division of exact numbers, and the
    parse of the decimal NUMERIC gives back). Near a half, or for larger values, NUMERIC
    decides. SQLite's ROUND is cheap already."""
    exact = round2_sql(dialect)
    if dialect != "postgresql":
        return exact

    def round2(x: str) -> str:
        cents = f"({x}) * 100"
        return (f"CASE WHEN ABS({cents}) < 1e8 AND ABS({cents} - FLOOR({cents}) - 0.5) > 1e-6 "
                f"THEN FLOOR({cents} + 0.5) / 100 ELSE {exact(x)} END")
    return round2


def _qfq_view_sql(dialect: str) -> str:
    return _qfq_view_sql_for(round2_sql(dialect))


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
