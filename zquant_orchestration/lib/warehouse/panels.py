"""Research reads: prices, factors, point-in-time fundamentals and tradable flags over a span
of trading days, as long pandas frames.

Every panel has one row per (trade_date, ts_code), sorted by trade_date then ts_code, with
``trade_date`` and ``ts_code`` first and then the fields asked for, in the order asked for.
Days are ``datetime64`` (midnight), codes text, prices and factors float64 (NaN where the
warehouse holds NULL). ``wide(frame, field)`` turns one field into a date x code panel.

Reads go through Arrow (columnar.py). Names that reach SQL are checked against the tables
first, days are parsed, and codes must look like codes: nothing a caller passes is SQL text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
from sqlalchemy import Engine

from zquant_orchestration.lib.dates import to_date

from .columnar import arrow_type, fetch_arrow
from .forward_adjust import qfq_panel, qfq_prices
from .tables import FINANCE_TABLES, TABLES
from .views import QFQ_COLUMNS, round2_sql_fast

KEYS = ("trade_date", "ts_code")
ADJUSTS = {None: "daily_bars", "hfq": "daily_hfq", "qfq": "daily_qfq"}
AS_OF = ("point_in_time",)
CODE = re.compile(r"^[0-9A-Za-z]{1,10}\.[A-Za-z]{2,4}$")


class Panels:
    """The research reads. Needs ``engine`` and ``ensure_schema`` on the instance."""

    engine: Engine

    def prices(self, start: date | str, end: date | str, adjust: str | None = "qfq",
               fields: Iterable[str] | None = None, ts_codes: Iterable[str] | None = None) -> pd.DataFrame:
        """Daily bars of every trading day in [start, end] (both included).

        ``adjust``: None for the bars as traded (``daily_bars``), ``"hfq"`` for backward-adjusted
        ones (``daily_hfq``), ``"qfq"`` for forward-adjusted ones: the numbers of the
        ``daily_qfq`` view, anchored at each stock's latest landed factor (lib/adjust.py), so
        a new factor moves them. ``fields``: any of the table's (view's) columns but the keys,
        default all of them; ``ts_codes``: default every stock. A day without its adj_factor
        has no qfq row, as in the view."""
        if adjust not in ADJUSTS:
            raise ValueError(f"adjust must be None, 'hfq' or 'qfq', not {adjust!r}")
        first, last = _span(start, end)
        codes = _codes(ts_codes)
        if adjust != "qfq":
            return self._stored(ADJUSTS[adjust], first, last, fields, codes)
        names = _fields("daily_qfq", fields, [c for c in QFQ_COLUMNS if c not in KEYS])
        schema = _schema([(n, pa.float64()) for n in names])
        if self.engine.dialect.name == "postgresql":
            self.ensure_schema()
            return qfq_panel(self.engine, names, first, last, _where(first, last, codes), codes)
        return self._read(_qfq_sql(self.engine.dialect.name, names, first, last, codes), schema)

    def factors(self, start: date | str, end: date | str, fields: Iterable[str] | None = None,
                ts_codes: Iterable[str] | None = None) -> pd.DataFrame:
        """``daily_factors`` (lib/factors.py defines each) of every trading day in [start, end]."""
        return self._stored("daily_factors", *_span(start, end), fields, _codes(ts_codes))

    def tradable(self, start: date | str, end: date | str, ts_codes: Iterable[str] | None = None) -> pd.DataFrame:
        """``daily_tradable`` (lib/tradable.py defines each flag) of every trading day in
        [start, end]; the flags are 0/1 integers."""
        return self._stored("daily_tradable", *_span(start, end), None, _codes(ts_codes))

    def fundamentals(self, table: str, fields: Iterable[str], start: date | str, end: date | str,
                     as_of: str = "point_in_time", ts_codes: Iterable[str] | None = None) -> pd.DataFrame:
        """A statement table's figures as they were known on each trading day in [start, end].

        For trading day d (the SSE calendar in ``trade_cal``) and a stock, the row is the
        version that the ``<table>_pit`` view says is current at d's close (known_from <= d <
        known_until, or no known_until) of the stock's latest report known by then: among
        the reports with a version known at d, the one with the greatest end_date. A version
        announced on d is known at d's close; a restatement replaces the figures from the day
        it is known; a later report period replaces the earlier one from the day its first
        version is known, whatever restatements of earlier periods come after. A stock has
        rows from the day its first report is known, on every trading day after (listed or
        not: join with ``prices`` for the days it traded). Consolidated reports
        (report_type 1) where the table has report types.

        Columns: trade_date, ts_code, end_date (the report period), known_from, then
        ``fields`` (any of the table's columns, e.g. ``["roe"]`` of fina_indicator, or
        ``ann_date`` and ``update_flag`` to see which version a row is)."""
        if table not in FINANCE_TABLES:
            raise ValueError(f"table must be one of {', '.join(FINANCE_TABLES)}, not {table!r}")
        if as_of not in AS_OF:
            raise ValueError(f"as_of must be one of {', '.join(map(repr, AS_OF))}, not {as_of!r}")
        if fields is None or isinstance(fields, str):
            raise ValueError(f"fields must be a list of {table}'s columns (e.g. ['roe'] of fina_indicator), "
                             f"not {fields!r}")
        first, last = _span(start, end)
        codes = _codes(ts_codes)
        fixed = ["ts_code", "end_date", "known_from"]
        names = [n for n in _fields(table, fields, _columns(table)) if n not in fixed]
        self.ensure_schema()
        days = self._trading_days(first, last)
        types = [("ts_code", pa.string()), ("end_date", pa.date32()), ("known_from", pa.date32())]
        types += [(n, arrow_type(TABLES[table].c[n].type)) for n in names] + [("answer_until", pa.date32())]
        intervals = fetch_arrow(self.engine, _answer_intervals_sql(table, fixed + names, first, last, codes),
                                _schema(types, keys=()))
        return _expand_over_days(intervals, days)

    # --- the shared read ------------------------------------------------------------------

    def _stored(self, table: str, first: date, last: date, fields, codes) -> pd.DataFrame:
        names = _fields(table, fields, [c for c in _columns(table) if c not in KEYS])
        schema = _schema([(n, arrow_type(TABLES[table].c[n].type)) for n in names])
        sql = (f"SELECT trade_date, ts_code, {', '.join(names)} FROM {table} "
               f"WHERE {_where(first, last, codes)}")
        return self._read(sql, schema)

    def _read(self, sql: str, schema: pa.Schema) -> pd.DataFrame:
        self.ensure_schema()
        return _to_pandas(_sorted(fetch_arrow(self.engine, sql, schema)))

    def _trading_days(self, first: date, last: date) -> np.ndarray:
        sql = (f"SELECT cal_date FROM trade_cal WHERE exchange = 'SSE' AND is_open = 1 "
               f"AND cal_date BETWEEN '{first.isoformat()}' AND '{last.isoformat()}' ORDER BY cal_date")
        days = fetch_arrow(self.engine, sql, pa.schema([("cal_date", pa.date32())]))["cal_date"]
        return days.to_numpy().astype("datetime64[D]")


def wide(frame: pd.DataFrame, field: str) -> pd.DataFrame:
    """One field of a panel as a frame of trade_date (rows) x ts_code (columns), NaN where a
    stock has no row that day."""
    if field not in frame.columns or field in KEYS:
        fields = ", ".join(c for c in frame.columns if c not in KEYS)
        raise ValueError(f"field must be one of the panel's columns {fields}, not {field!r}")
    return frame.pivot(index="trade_date", columns="ts_code", values=field)


# --- checks: one line each, naming what is accepted ------------------------------------------

def _span(start, end) -> tuple[date, date]:
    first, last = to_date(start), to_date(end)
    if first > last:
        raise ValueError(f"start {first.isoformat()} is after end {last.isoformat()}: give start <= end")
    return first, last


def _codes(ts_codes) -> list[str] | None:
    if ts_codes is None:
        return None
    codes = [ts_codes] if isinstance(ts_codes, str) else list(ts_codes)
    bad = [c for c in codes if not isinstance(c, str) or not CODE.match(c)]
    if bad:
        raise ValueError(f"ts_codes must be Tushare codes like '600519.SH', not {bad[0]!r}")
    return codes


def _columns(table: str) -> list[str]:
    return [c.name for c in TABLES[table].columns]


def _fields(table: str, fields, accepted: list[str]) -> list[str]:
    if fields is None:
        return list(accepted)
    names = [fields] if isinstance(fields, str) else list(fields)
    unknown = [n for n in names if n not in accepted]
    if unknown or not names:
        raise ValueError(f"{table} has no field {unknown[0] if unknown else '(none given)'!r}; "
                         f"fields are {', '.join(accepted)}")
    return list(dict.fromkeys(names))


def _schema(fields: list[tuple[str, pa.DataType]], keys=KEYS) -> pa.Schema:
    key_types = {"trade_date": pa.date32(), "ts_code": pa.string()}
    return pa.schema([(k, key_types[k]) for k in keys] + fields)


def _where(first: date, last: date, codes, alias: str = "") -> str:
    where = f"{alias}trade_date BETWEEN '{first.isoformat()}' AND '{last.isoformat()}'"
    if codes is not None:
        where += f" AND {alias}ts_code IN ({_in_list(codes)})"
    return where


def _in_list(codes: list[str]) -> str:
    return ", ".join(f"'{c}'" for c in codes) or "NULL"  # codes matched CODE: no quote inside


# --- the SQL --------------------------------------------------------------------------------

def _qfq_sql(dialect: str, names: list[str], first: date, last: date, codes) -> str:
    """The ``daily_qfq`` view's expressions (views.py) for the fields asked for, over the days
    asked for, rounded as the view rounds (``round2_sql_fast``: the same numbers). The view
    finds each row's anchor with a subquery per row; here the anchors are one join (each
    stock's factor on its latest factor day), which gives the same factor."""
    round2 = round2_sql_fast(dialect)
    prices = qfq_prices(names)
    inner = [f"{round2(f'b.{p} * f.adj_factor / l.adj_factor')} AS {p}" for p in prices]
    inner += ["b.vol", "b.amount", "f.adj_factor", "l.adj_factor AS anchor_factor"]
    outer = {"change": "close - pre_close", "pct_chg": round2("(close - pre_close) / pre_close * 100")}
    latest = "SELECT ts_code, MAX(trade_date) AS last_day FROM adj_factor"
    if codes is not None:
        latest += f" WHERE ts_code IN ({_in_list(codes)})"
    return (f"SELECT trade_date, ts_code, {', '.join(f'{outer.get(n, n)} AS {n}' for n in names)} FROM ("
            f"SELECT b.ts_code, b.trade_date, {', '.join(inner)} FROM daily_bars b "
            "JOIN adj_factor f ON f.ts_code = b.ts_code AND f.trade_date = b.trade_date "
            "JOIN (SELECT a.ts_code, a.adj_factor FROM adj_factor a "
            f"JOIN ({latest} GROUP BY ts_code) m ON a.ts_code = m.ts_code AND a.trade_date = m.last_day) l "
            f"ON l.ts_code = b.ts_code WHERE {_where(first, last, codes, 'b.')}) q")


def _answer_intervals_sql(table: str, names: list[str], first: date, last: date, codes) -> str:
    """Each version of ``table``'s pit view with the days it is the answer: from its
    known_from until the earlier of its known_until and the day a later report period is
    first known (answer_until, NULL for open). A later period's first version is the
    earliest known_from among the versions of the periods after it (the window over
    end_date groups before this one); versions whose interval is empty are left out."""
    where = [f"known_from <= '{last.isoformat()}'"]
    if "report_type" in _columns(table):
        where.append("report_type = '1'")
    if codes is not None:
        where.append(f"ts_code IN ({_in_list(codes)})")
    cut = ("MIN(known_from) OVER (PARTITION BY ts_code ORDER BY end_date DESC "
           "GROUPS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)")
    until = ("CASE WHEN cut IS NULL THEN known_until WHEN known_until IS NULL OR cut < known_until "
             "THEN cut ELSE known_until END")
    return (f"SELECT {', '.join(names)}, answer_until FROM (SELECT {', '.join(names)}, {until} AS answer_until "
            f"FROM (SELECT {', '.join(names)}, known_until, {cut} AS cut FROM {table}_pit "
            f"WHERE {' AND '.join(where)}) v) w "
            f"WHERE answer_until IS NULL OR (answer_until > known_from AND answer_until > '{first.isoformat()}')")


# --- Arrow to the frame ---------------------------------------------------------------------

def _expand_over_days(intervals: pa.Table, days: np.ndarray) -> pd.DataFrame:
    """A row per trading day of each interval [known_from, answer_until) in ``days``."""
    known = intervals["known_from"].to_numpy().astype("datetime64[D]")
    until = intervals["answer_until"].to_numpy(zero_copy_only=False).astype("datetime64[D]")
    lo = np.searchsorted(days, known, side="left")
    hi = np.where(np.isnat(until), len(days), np.searchsorted(days, until, side="left"))
    counts = np.maximum(hi - lo, 0)
    rows = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    day_index = np.repeat(lo - starts, counts) + np.arange(int(counts.sum()))
    expanded = intervals.drop_columns(["answer_until"]).take(pa.array(rows, pa.int64()))
    expanded = expanded.add_column(0, "trade_date", pa.array(days[day_index], pa.date32()))
    return _to_pandas(_sorted(expanded.select(["trade_date", "ts_code", *expanded.column_names[2:]])))


def _sorted(table: pa.Table) -> pa.Table:
    return table.sort_by([("trade_date", "ascending"), ("ts_code", "ascending")])


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    # self_destruct frees each Arrow column once converted: the table and the frame are not
    # both held whole.
    return table.to_pandas(date_as_object=False, self_destruct=True, split_blocks=True)
