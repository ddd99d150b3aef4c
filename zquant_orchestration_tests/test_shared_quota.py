"""Two overlapping range runs in separate processes share ONE per-API quota through the
Dagster pools of the shipped dagster.yaml: the server's log never shows a window over
the quota, and the warehouse equals the source. The quota is kept in the host's files, or
in PostgreSQL (ZQUANT_QUOTA_URL) with each run given a quota folder of its own, as runs
on two hosts would have."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import dagster as dg
import pytest

from .cli_helpers import DAGSTER, cli_env
from .dialects import postgres_url
from .market_helpers import assert_same, materialize_reference, resources_for, truth_rows, warehouse_rows
from .tushare_helpers import max_calls_in_window

pytestmark = pytest.mark.slow  # overlapping `dagster` CLI runs sharing one quota

REPO = Path(__file__).resolve().parents[1]
QUOTA, WINDOW = 4, 4.0  # Tushare's 60 s window, scaled down so the test takes seconds
RANGES = (("2024-03-01", "2024-03-12"), ("2024-03-07", "2024-03-19"))


@pytest.mark.parametrize("quota_store", ["files", "postgres"])
def test_overlapping_range_runs_never_exceed_the_per_api_quota(tmp_path, local_server, quota_store):
    url = f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
    assert materialize_reference(resources_for(local_server(), url), dg.DagsterInstance.ephemeral()).success
    server = local_server(calls_per_minute=QUOTA, window_seconds=WINDOW)
    start = len(server.requests)

    env = cli_env(tmp_path, server, url, TUSHARE_CALLS_PER_MINUTE=str(QUOTA), TUSHARE_RATE_WINDOW_SECONDS=str(WINDOW))
    shutil.copy(REPO / "dagster.yaml", Path(env["DAGSTER_HOME"]) / "dagster.yaml")
    # Create the instance's storage once, as `dagster dev` would, before two CLIs start at once.
    dg.DagsterInstance.from_config(env["DAGSTER_HOME"]).dispose()
    envs = [env, env]
    if quota_store == "postgres":
        quota_url = postgres_url(tmp_path)
        envs = [dict(env, ZQUANT_QUOTA_URL=quota_url, ZQUANT_QUOTA_DIR=str(tmp_path / f"host-{i}")) for i in (1, 2)]
    runs = [subprocess.Popen([DAGSTER, "asset", "materialize", "-m", "zquant_orchestration.definitions",
                              "--select", "daily_bars,adj_factor,daily_basic", "--partition-range", f"{a}...{b}"],
                             env=run_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for (a, b), run_env in zip(RANGES, envs, strict=True)]
    for run in runs:
        output, _ = run.communicate(timeout=400)
        assert run.returncode == 0, output[-3000:]

    calls = server.requests[start:]
    for api in ("daily", "adj_factor", "daily_basic"):
        times = [r["t"] for r in calls if r.get("api") == api]
        assert len(times) > 2 * QUOTA, "enough calls that the quota binds"
        assert max_calls_in_window(times, WINDOW) <= QUOTA, f"{api}: over the quota in some window"
    assert not [r for r in calls if r.get("code") == 40203], "no call was turned away for the rate limit"
    # Different APIs ran side by side: their calls interleave in time.
    daily = [r["t"] for r in calls if r.get("api") == "daily"]
    basic = [r["t"] for r in calls if r.get("api") == "daily_basic"]
    assert min(basic) < max(daily) and min(daily) < max(basic)
    for table in ("daily_bars", "adj_factor", "daily_basic"):
        assert_same(warehouse_rows(url, table), truth_rows(server, table, RANGES[0][0], RANGES[1][1]))
