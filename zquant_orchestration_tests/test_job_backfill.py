"""`dagster job backfill` over the market job, as the README shows it."""

from __future__ import annotations

import subprocess
import time

import dagster as dg
import pytest

from .cli_helpers import DAGSTER, cli_env
from .market_helpers import assert_same, truth_rows, warehouse_rows

pytestmark = pytest.mark.slow  # a backfill through the `dagster` CLI


def test_job_backfill_lands_each_trading_day_of_the_range(local_server, tmp_path):
    server = local_server()
    url = f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
    env = cli_env(tmp_path, server, url)
    # Dagster 1.13 queues runs by default for the daemon of `dagster dev`; here the CLI
    # launches them itself, so the test needs no daemon.
    (tmp_path / "dagster_home" / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\nrun_coordinator:\n  module: dagster._core.run_coordinator\n"
        "  class: DefaultRunCoordinator\n")
    _backfill_and_wait(env, tmp_path)
    for table in ("daily_bars", "adj_factor", "daily_basic"):
        assert_same(warehouse_rows(url, table), truth_rows(server, table, "2024-02-08", "2024-02-19"))


def _backfill_and_wait(env: dict, tmp_path) -> None:
    launched = subprocess.run(
        [DAGSTER, "job", "backfill", "-m", "zquant_orchestration.definitions", "-j", "market_data_job",
         "--from", "2024-02-08", "--to", "2024-02-19", "--noprompt"],
        env=env, capture_output=True, text=True, timeout=300)  # a guard against a hang, not a timing
    assert launched.returncode == 0, launched.stdout + launched.stderr

    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as instance:
        deadline = time.monotonic() + 300
        while True:
            runs = instance.get_runs()
            if runs and all(r.is_finished for r in runs):
                break
            assert time.monotonic() < deadline, [r.status for r in runs]
            time.sleep(1)
        # 2024-02-08..19 spans the Spring Festival: 2 trading days, one run each.
        assert sorted(r.tags["dagster/partition"] for r in runs) == ["2024-02-08", "2024-02-19"]
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
