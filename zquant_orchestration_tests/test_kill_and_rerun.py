"""A run killed with SIGKILL in the middle of a range, then re-run: the warehouse equals the truth.

This drives the real CLI (`dagster asset materialize --partition-range`) in its own
process group, as a user's terminal would, against the local server in this process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import dagster as dg
import pytest
from sqlalchemy import create_engine, text

from .cli_helpers import DAGSTER, cli_env
from .market_helpers import assert_same, materialize_reference, resources_for, truth_rows, warehouse_rows

pytestmark = pytest.mark.slow  # two runs of the `dagster` CLI, the first killed mid-range

FIRST, LAST = "2024-01-02", "2024-01-19"
DAYS = 14  # SSE open days in that range; the quota of 8 calls a minute stops the first run at 8


def materialize_cli(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [DAGSTER, "asset", "materialize", "-m", "zquant_orchestration.definitions",
         "--select", "daily_bars,adj_factor,daily_basic", "--partition-range", f"{FIRST}...{LAST}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, text=True,
    )


def days_landed(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT COUNT(DISTINCT trade_date) FROM daily_bars")).scalar() or 0
    except Exception:
        return 0  # the table does not exist yet
    finally:
        engine.dispose()


def test_sigkill_mid_range_then_rerun_leaves_exactly_the_truth(local_server, tmp_path):
    server = local_server()
    url = f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
    assert materialize_reference(resources_for(server, url), dg.DagsterInstance.ephemeral()).success

    # A tight quota makes the first run pause after its first calls, so the kill lands mid-range.
    first = materialize_cli(cli_env(tmp_path, server, url, TUSHARE_CALLS_PER_MINUTE="8"))
    deadline = time.monotonic() + 120
    while days_landed(url) < 3:
        assert first.poll() is None, first.stdout.read()
        assert time.monotonic() < deadline, "the first run never landed a day"
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    landed = days_landed(url)
    assert 3 <= landed < DAYS, "killed in the middle of the range"

    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as instance:
        assert not instance.get_materialized_partitions(dg.AssetKey("daily_bars")), \
            "a killed range run must not show partitions as materialized"

    second = materialize_cli(cli_env(tmp_path, server, url))
    output, _ = second.communicate(timeout=300)
    assert second.returncode == 0, output[-3000:]
    assert "RUN_SUCCESS" in output

    for table in ("daily_bars", "adj_factor", "daily_basic"):
        assert_same(warehouse_rows(url, table), truth_rows(server, table, FIRST, LAST))
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as instance:
        assert len(instance.get_materialized_partitions(dg.AssetKey("daily_bars"))) == DAYS
