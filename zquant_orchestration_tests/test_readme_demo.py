"""The README's run command on a fresh directory: no token, no database server.

`zquant-demo` lands the reference assets and a month of market data from the embedded
local server into SQLite, then starts `dagster dev`; the UI's GraphQL (what the
partitions page renders) shows trading days only, with the month materialized.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parent.parent
PARTITIONS_QUERY = """{ assetNodes(assetKeys: [{path: ["daily_bars"]}]) {
  partitionKeysByDimension { partitionKeys }
  assetPartitionStatuses { ... on TimePartitionStatuses { ranges { startKey endKey status } } } } }"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def test_the_demo_lands_a_month_and_the_ui_shows_trading_days_only(tmp_path):
    for name in ("dagster.yaml", "workspace.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TUSHARE_", "ZQUANT_", "DAGSTER_HOME"))}
    port = free_port()
    demo = subprocess.Popen([str(Path(sys.executable).with_name("zquant-demo")), "--month", "2024-01",
                             "--port", str(port)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 400
        answer = None
        while answer is None:
            assert demo.poll() is None, demo.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "the UI never answered"
            try:
                answer = graphql(port, PARTITIONS_QUERY)
            except OSError:
                time.sleep(1)
        node = answer["data"]["assetNodes"][0]
        keys = node["partitionKeysByDimension"][0]["partitionKeys"]
        assert keys[0] == "1990-12-19"
        assert "2024-02-09" not in keys and "2024-02-08" in keys
        assert all(time.strptime(k, "%Y-%m-%d").tm_wday < 5 for k in keys)
        ranges = node["assetPartitionStatuses"]["ranges"]
        assert ranges[0] == {"startKey": "2024-01-02", "endKey": "2024-01-31", "status": "MATERIALIZED"}
        # Anything else is the daemon's gap sensor filling the last 30 trading days (it is on by default).
        recent = keys[keys.index(ranges[0]["endKey"]) + 1:][-31:]
        assert all(r["startKey"] in recent and r["endKey"] in recent for r in ranges[1:]), ranges
    finally:
        os.killpg(demo.pid, signal.SIGTERM)
        try:
            demo.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)

    engine = create_engine(f"sqlite:///{tmp_path / '.zquant' / 'warehouse.sqlite'}")
    with engine.connect() as conn:
        for table in ("daily_bars", "adj_factor", "daily_basic"):
            days = conn.execute(text(f"SELECT COUNT(DISTINCT trade_date) FROM {table}")).scalar()
            assert days == 22, table
        assert conn.execute(text("SELECT COUNT(*) FROM stock_basic")).scalar() > 5000
        assert conn.execute(text("SELECT COUNT(DISTINCT exchange) FROM trade_cal")).scalar() == 7
    engine.dispose()
