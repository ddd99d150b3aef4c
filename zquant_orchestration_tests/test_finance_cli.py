"""The README's finance commands, through the real `dagster` CLI: a range run over a sample
universe (ZQUANT_FINANCE_UNIVERSE), then one period for one stock with --config-json."""

from __future__ import annotations

import json
import subprocess

import dagster as dg
import pytest

from zquant_orchestration.lib.warehouse import Warehouse

from .cli_helpers import DAGSTER, cli_env
from .finance_helpers import assert_finance_equal
from .market_helpers import materialize_reference, resources_for

pytestmark = pytest.mark.slow  # the README's finance commands through the `dagster` CLI

UNIVERSE = ["000001.SZ", "600519.SH", "300750.SZ"]
STATEMENTS = "income,balancesheet,cashflow,fina_indicator"


def dagster_cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([DAGSTER, "asset", "materialize", "-m", "zquant_orchestration.definitions", *args],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return done.stdout + done.stderr


def test_readme_finance_commands_land_the_source_rows(tmp_path, dataset, local_server):
    server = local_server()
    url = f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
    assert materialize_reference(resources_for(server, url), dg.DagsterInstance.ephemeral()).success
    env = cli_env(tmp_path, server, url, ZQUANT_FINANCE_UNIVERSE=",".join(UNIVERSE))

    output = dagster_cli(env, "--select", STATEMENTS, "--partition-range", "20230331...20240930")
    assert "RUN_SUCCESS" in output
    assert_finance_equal(url, dataset, "20230331", "20240930", UNIVERSE)
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as instance:
        assert len(instance.get_materialized_partitions(dg.AssetKey("income"))) == 7

    # One period for one stock outside the universe, as the README's second command does.
    Warehouse(url).engine.dispose()
    config = {"ops": {"income": {"config": {"stocks": ["000002.SZ"]}}}}
    dagster_cli(env, "--select", "income", "--partition", "20240930", "--config-json", json.dumps(config))
    landed = Warehouse(url).query("SELECT DISTINCT ts_code FROM income WHERE end_date = '2024-09-30'")
    assert set(landed.ts_code) == {*UNIVERSE, "000002.SZ"}
