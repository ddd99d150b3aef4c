"""Closes and big moves of the stocks its params name, since the day they name (a manual task)."""

import os

from dagster_pipes import open_dagster_pipes
from sqlalchemy import bindparam, create_engine, text

with open_dagster_pipes() as pipes:
    stocks, since, min_move = pipes.get_extra("stocks"), pipes.get_extra("since"), pipes.get_extra("min_move")
    engine = create_engine(os.environ["ZQUANT_WAREHOUSE_URL"])
    query = text("SELECT ts_code, COUNT(*), SUM(CASE WHEN ABS(pct_chg) >= :move THEN 1 ELSE 0 END), MAX(close) "
                 "FROM daily_bars WHERE ts_code IN :stocks AND trade_date >= :since GROUP BY ts_code "
                 "ORDER BY ts_code").bindparams(bindparam("stocks", expanding=True))
    with engine.connect() as conn:
        rows = conn.execute(query, {"stocks": stocks, "since": since, "move": min_move}).all()
    engine.dispose()
    pipes.log.info(f"{len(rows)} of {len(stocks)} stocks have bars since {since}")
    table = "\n".join(["| ts_code | days | big moves | highest close |", "|---|---|---|---|",
                       *(f"| {code} | {days} | {moves} | {high} |" for code, days, moves, high in rows)])
    pipes.report_asset_materialization(metadata={
        "stocks": ", ".join(stocks), "since": since, "min_move": min_move,
        "report": {"raw_value": table, "type": "md"}})
