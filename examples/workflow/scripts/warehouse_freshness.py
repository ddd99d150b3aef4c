"""The latest trading day in daily_bars; an interval task, so it runs whether or not anything landed."""

import os

from dagster_pipes import open_dagster_pipes
from sqlalchemy import create_engine, inspect, text

with open_dagster_pipes() as pipes:
    engine = create_engine(os.environ["ZQUANT_WAREHOUSE_URL"])
    with engine.connect() as conn:
        latest = (conn.execute(text("SELECT CAST(MAX(trade_date) AS TEXT) FROM daily_bars")).scalar()
                  if inspect(conn).has_table("daily_bars") else None)
    engine.dispose()
    pipes.log.info(f"latest trading day in daily_bars: {latest or 'none yet'}")
    pipes.report_asset_materialization(metadata={"latest_day": latest or "none"})
