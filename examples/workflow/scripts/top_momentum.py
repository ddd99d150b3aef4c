"""The top_n (a param, default 20) stocks with the highest 20-day momentum on one trading day."""

import os

from dagster_pipes import open_dagster_pipes
from sqlalchemy import create_engine, text

with open_dagster_pipes() as pipes:
    day = pipes.partition_key
    engine = create_engine(os.environ["ZQUANT_WAREHOUSE_URL"])
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT ts_code, mom_20 FROM daily_factors WHERE trade_date = :day AND mom_20 IS NOT NULL "
            "ORDER BY mom_20 DESC LIMIT :n"), {"day": day, "n": pipes.get_extra("top_n")}).all()
    engine.dispose()
    pipes.log.info(f"{day}: top momentum {rows[0][0] if rows else 'none'}")
    table = "\n".join(["| ts_code | mom_20 |", "|---|---|", *(f"| {c} | {m:.2%} |" for c, m in rows)])
    pipes.report_asset_materialization(metadata={"stocks": len(rows), "top": {"raw_value": table, "type": "md"}})
