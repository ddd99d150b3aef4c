"""Forward-adjusted (qfq) panels on Postgres, computed beside the read rather than inside it.

Why: inside the server, a qfq read joins every bar to its day's factor and to its stock's
anchor and rounds through NUMERIC; over ten years of the market that took 27x the time of
reading the same values from Parquet (docs/benchmarks.md, "Research reads"), most of it the
join. Here the server only scans, the bars on one connection and the factors on another at
the same time, each as one query the planner may answer with a sequential scan; the rows
stream in batches that are reduced at once to integer keys (day, stock) and doubles; numpy
joins, scales, rounds and sorts them. The anchors (each stock's factor on its latest factor
day) come from the primary key's index, a few thousand lookups.

The numbers are the ``daily_qfq`` view's, the same doubles: numpy does the view's arithmetic
in the view's order (``close * adj_factor / anchor``, then ``round2_postgres``, which is
``views.round2_sql_fast`` in numpy). test_read_api.py compares them row for row.

Both connections read one snapshot (``pg_export_snapshot``), so a day landed while the panel
is read is in all of its parts or in none, as it would be in one query.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Engine

from .columnar import adbc_connection, fetch_arrow_from

PRICES = ("open", "high", "low", "close", "pre_close")
PASSED_THROUGH = ("vol", "amount")
# A row's key is (days since the panel's first day) << RANK_BITS | its stock's rank: one int32
# that sorts as (trade_date, ts_code) does, in two radix passes of 16 bits.
RANK_BITS = 16
RANKS = 1 << RANK_BITS
DAYS = 1 << (31 - RANK_BITS)  # 89 years


def qfq_panel(engine: Engine, names: list[str], first: date, last: date, where: str,
              codes: list[str] | None) -> pd.DataFrame:
    """``daily_qfq``'s ``names`` over [first, last] (``where`` filters a table to them, and
    to ``codes`` if given), sorted by trade_date then ts_code, typed as panels.py types."""
    prices = qfq_prices(names)
    raw = prices + [n for n in PASSED_THROUGH if n in names]
    with _snapshot_connections(engine, 2) as (bars_conn, factors_conn):
        stocks, anchors = _anchors(bars_conn, codes)
        if len(stocks) > RANKS or (last - first).days >= DAYS:
            raise ValueError(f"a qfq panel reads at most {RANKS} stocks over {DAYS} days at once, "
                             f"not {len(stocks)} over {(last - first).days}: ask for fewer")
        with ThreadPoolExecutor(2) as pool:
            factors = pool.submit(_keyed, factors_conn, "adj_factor", ["adj_factor"], where, first, stocks)
            bars = pool.submit(_keyed, bars_conn, "daily_bars", raw, where, first, stocks)
            factor_keys, factor_values = factors.result()
            keys, values = bars.result()
    # The view's inner joins: a bar with its day's factor, and so with its stock's anchor.
    # Arrays are dropped as soon as they are used: a panel is most of the memory it needs.
    factor_keys, order = _sort(factor_keys)
    factor = factor_values.pop("adj_factor")[order]
    keys, order = _sort(keys)
    at = np.searchsorted(factor_keys, keys)
    np.minimum(at, max(len(factor_keys) - 1, 0), out=at)
    matched = factor_keys[at] == keys if len(factor_keys) else np.zeros(len(keys), bool)
    del factor_keys
    factor = factor[at]
    del at
    if not matched.all():
        keys, order, factor = keys[matched], order[matched], factor[matched]
    del matched
    ranks = keys & (RANKS - 1)
    anchor = anchors[ranks]
    columns: dict[str, np.ndarray] = {"adj_factor": factor, "anchor_factor": anchor}
    for p in prices:
        columns[p] = round2_postgres(values.pop(p)[order] * factor / anchor)
    if "change" in names:
        columns["change"] = columns["close"] - columns["pre_close"]
    if "pct_chg" in names:
        with np.errstate(divide="ignore", invalid="ignore"):
            columns["pct_chg"] = round2_postgres((columns["close"] - columns["pre_close"]) / columns["pre_close"] * 100)
    for n in PASSED_THROUGH:
        if n in names:
            columns[n] = values.pop(n)[order]
    del order, values, factor, anchor
    columns = {n: columns[n] for n in names}
    days = (keys >> RANK_BITS).astype(np.int64)
    del keys
    days += (first - date(1970, 1, 1)).days
    days *= 86_400_000  # days to milliseconds, in place: the panel's datetime64[ms]
    frame = {"trade_date": days.view("datetime64[ms]")}
    del days
    frame["ts_code"] = pa.table({"ts_code": pc.take(stocks, ranks)}).to_pandas(self_destruct=True)["ts_code"]
    del ranks
    frame.update(columns)
    del columns
    return pd.DataFrame(frame, copy=False)


def qfq_prices(names: list[str]) -> list[str]:
    """The prices a qfq panel of ``names`` adjusts: those asked for, and close and pre_close
    when change or pct_chg is asked for (the view derives both from the rounded two)."""
    derived = {"change", "pct_chg"} & set(names)
    return [p for p in PRICES if p in names or (p in ("close", "pre_close") and derived)]


def round2_postgres(values: np.ndarray) -> np.ndarray:
    """Postgres's ``ROUND(CAST(x AS NUMERIC), 2)`` of doubles, as ``views.round2_sql_fast`` has
    the server compute it: ``floor(x * 100 + 0.5) / 100`` unless x * 100 lies within 1e-6 of
    a half or beyond 1e8; there, x's 15 significant digits (what the cast to NUMERIC keeps)
    rounded half away from zero. NaN stays NaN."""
    cents = values * 100
    with np.errstate(invalid="ignore"):
        fast = (np.abs(cents) < 1e8) & (np.abs(cents - np.floor(cents) - 0.5) > 1e-6)
    out = np.floor(cents + 0.5) / 100
    for i in np.flatnonzero(~fast & np.isfinite(values)):
        exact = Decimal(format(float(values[i]), ".15g")).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        out[i] = float(exact)
    return out


# --- the reads ------------------------------------------------------------------------------

def _anchors(conn, codes: list[str] | None) -> tuple[pa.Array, np.ndarray]:
    """The stocks with factors (or the codes asked for), sorted as the panel sorts codes, and
    each one's factor on its latest factor day (NaN for none): one index lookup a stock, over
    a walk of the primary key's distinct codes."""
    if codes is None:
        stocks = ("WITH RECURSIVE codes(ts_code) AS (SELECT MIN(ts_code) FROM adj_factor UNION ALL "
                  "SELECT (SELECT MIN(a.ts_code) FROM adj_factor a WHERE a.ts_code > codes.ts_code) "
                  "FROM codes WHERE codes.ts_code IS NOT NULL) SELECT ts_code FROM codes WHERE ts_code IS NOT NULL")
    else:
        values = ", ".join(f"('{c}')" for c in dict.fromkeys(codes))  # panels.py checked each code
        stocks = f"SELECT ts_code FROM (VALUES {values}) v(ts_code)"
    found = fetch_arrow_from(conn, (
        "SELECT s.ts_code, (SELECT a.adj_factor FROM adj_factor a WHERE a.ts_code = s.ts_code "
        f"ORDER BY a.trade_date DESC LIMIT 1) AS anchor FROM ({stocks}) s"))
    found = found.take(pc.sort_indices(found, [("ts_code", "ascending")]))
    return found["ts_code"].combine_chunks(), _floats(found["anchor"])


def _keyed(conn, table: str, columns: list[str], where: str, first: date,
           stocks: pa.Array) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``table``'s rows as keys (see RANK_BITS) and doubles (NaN for NULL), a batch at a time as
    they stream in, so the text of the codes is never held whole. Rows of stocks without
    factors are left out: they have no forward-adjusted prices."""
    offset = np.int32((first - date(1970, 1, 1)).days)
    keys: list[np.ndarray] = []
    values: dict[str, list[np.ndarray]] = {c: [] for c in columns}
    with conn.cursor() as cursor:
        cursor.execute(f"SELECT trade_date, ts_code, {', '.join(columns)} FROM {table} WHERE {where}")
        for batch in cursor.fetch_record_batch():
            rank = pc.index_in(batch.column("ts_code"), stocks)
            inside = np.flatnonzero(pc.is_valid(rank).to_numpy(zero_copy_only=False))
            day = batch.column("trade_date").cast(pa.int32()).to_numpy()[inside] - offset
            keys.append((day << RANK_BITS) | rank.to_numpy(zero_copy_only=False)[inside].astype(np.int32))
            for c in columns:
                values[c].append(_floats(batch.column(c))[inside])
    return _joined(keys, np.int32), {c: _joined(v, float) for c, v in values.items()}


def _sort(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keys sorted, and the order that sorts them: two stable radix passes over their 16-bit
    halves (numpy sorts 16-bit integers by radix), not a comparison sort."""
    low = np.argsort((keys & (RANKS - 1)).astype(np.uint16), kind="stable")
    high = (keys[low] >> RANK_BITS).astype(np.uint16)
    order = low[np.argsort(high, kind="stable")]
    del low, high
    return keys[order], order


def _joined(parts: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(parts) if parts else np.empty(0, dtype)


def _floats(column) -> np.ndarray:
    """A float column as doubles, NULL as NaN."""
    return pc.fill_null(column.cast(pa.float64()), np.nan).to_numpy()


@contextmanager
def _snapshot_connections(engine: Engine, count: int) -> Iterator[list]:
    """``count`` ADBC connections in one repeatable-read snapshot, exported by the first."""
    with ExitStack() as stack:
        connections = [stack.enter_context(adbc_connection(engine)) for _ in range(count)]
        for i, conn in enumerate(connections):
            with conn.cursor() as cursor:
                cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                if i == 0:
                    cursor.execute("SELECT pg_export_snapshot()")
                    snapshot = cursor.fetchone()[0]
                else:
                    cursor.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
        try:
            yield connections
        finally:
            for conn in reversed(connections):
                with conn.cursor() as cursor:
                    cursor.execute("ROLLBACK")
