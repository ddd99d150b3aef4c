"""Manual market runs with typed config: a stock subset, the date range (the partition
range), force refresh; bad config refused at launch, naming the field, with no run made."""

from __future__ import annotations

import json
import subprocess
from datetime import date

import dagster as dg
import pytest

from zquant_orchestration.defs.market.assets import daily_bars
from zquant_orchestration.lib.tushare_server import LocalTushareServer
from zquant_orchestration.lib.warehouse import Warehouse

from .cli_helpers import DAGSTER, cli_env
from .market_helpers import (
    MARKET_ASSETS,
    ChangedReplies,
    assert_same,
    emptied,
    materialize_range,
    materialize_reference,
    resources_for,
    step_retries_at_once,
    truth_rows,
    warehouse_rows,
)
from .shared_landing import landed_copy

FIRST, LAST = "2024-03-04", "2024-03-08"
TABLES = ("daily_bars", "adj_factor", "daily_basic")


def config_for(**options) -> dict:
    return {"ops": {table: {"config": options} for table in TABLES}}


def data_calls(server, start: int) -> list[dict]:
    return [r for r in server.requests[start:] if r.get("api") in ("daily", "adj_factor", "daily_basic")]


def spoil(url: str, stocks: list[str]) -> None:
    """Wrong figures for some stocks, as a bad load or a Tushare correction would leave them."""
    wh = Warehouse(url)
    with wh.engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE daily_bars SET close = -1 WHERE ts_code IN ({', '.join('?' * len(stocks))})",
                             tuple(stocks))
        conn.exec_driver_sql(f"UPDATE adj_factor SET adj_factor = -1 WHERE ts_code IN "
                             f"({', '.join('?' * len(stocks))})", tuple(stocks))
    wh.engine.dispose()


def spoiled(url: str) -> set[str]:
    wh = Warehouse(url)
    codes = set(wh.query("SELECT DISTINCT ts_code FROM daily_bars WHERE close = -1").ts_code)
    wh.engine.dispose()
    return codes


def _land_the_week(folder, dataset) -> None:
    with LocalTushareServer(dataset=dataset) as server, dg.instance_for_test() as instance:
        resources = resources_for(server, f"sqlite:///{folder / 'warehouse.sqlite'}")
        materialize_reference(resources, instance)
        assert materialize_range(MARKET_ASSETS, FIRST, LAST, resources, instance).success


@pytest.fixture
def landed(tmp_path, tmp_path_factory, local_server, dataset):
    """A warehouse holding FIRST..LAST (the reference data and the market, landed by their
    assets once per session and copied here: the tests change it), a fresh server, resources
    and an instance. The assets decide what is landed from the warehouse's rows alone."""
    landed_copy(tmp_path_factory, "manual-runs-week", lambda folder: _land_the_week(folder, dataset), tmp_path)
    server = local_server()
    url = f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
    resources = resources_for(server, url)
    with dg.instance_for_test() as instance:
        yield server, url, resources, instance


@pytest.mark.slow  # one of the longest in-process tests
def test_a_rerun_skips_landed_days_and_force_refresh_refetches_them(landed):
    server, url, resources, instance = landed
    spoil(url, ["000001.SZ"])
    start = len(server.requests)
    result = materialize_range(MARKET_ASSETS, FIRST, "2024-03-11", resources, instance)
    assert [r["params"]["trade_date"] for r in data_calls(server, start)] == ["20240311"] * 3, \
        "only the day not landed yet was fetched"
    meta = result.asset_materializations_for_node("daily_bars")[0].metadata
    assert meta["days_already_landed"].value == 5 and meta["days_fetched"].value == 1
    assert spoiled(url) == {"000001.SZ"}, "landed days were left as they were"

    start = len(server.requests)
    assert materialize_range(MARKET_ASSETS, FIRST, "2024-03-11", resources, instance,
                             run_config=config_for(force_refresh=True)).success
    assert len(data_calls(server, start)) == 3 * 6
    assert spoiled(url) == set()
    for table in TABLES:
        assert_same(warehouse_rows(url, table), truth_rows(server, table, FIRST, "2024-03-11"))


@pytest.mark.slow  # one of the longest in-process tests
def test_a_stock_subset_refetches_only_those_stocks_one_call_each(landed):
    server, url, resources, instance = landed
    spoil(url, ["000001.SZ", "600519.SH", "000002.SZ"])
    start = len(server.requests)
    result = materialize_range(MARKET_ASSETS, FIRST, LAST, resources, instance,
                               run_config=config_for(stocks=["600519.SH", "000001.SZ"]))
    calls = data_calls(server, start)
    assert sorted((r["api"], r["params"]["ts_code"]) for r in calls) == sorted(
        (api, code) for api in ("daily", "adj_factor", "daily_basic") for code in ("000001.SZ", "600519.SH"))
    assert {(r["params"]["start_date"], r["params"]["end_date"]) for r in calls} == {("20240304", "20240308")}
    assert spoiled(url) == {"000002.SZ"}, "the two named stocks were repaired, the third left alone"
    meta = result.asset_materializations_for_node("daily_bars")[0].metadata
    assert meta["refreshed_stocks"].value == "000001.SZ, 600519.SH"
    assert meta["rows"].value == 10
    # Every other row is untouched and nothing was duplicated: repair the third and compare.
    materialize_range(MARKET_ASSETS, FIRST, LAST, resources, instance, run_config=config_for(stocks=["000002.SZ"]))
    for table in TABLES:
        assert_same(warehouse_rows(url, table), truth_rows(server, table, FIRST, LAST))


def test_a_stock_subset_over_days_not_landed_fails_and_writes_nothing(landed):
    server, url, resources, instance = landed
    start = len(server.requests)
    result = materialize_range(MARKET_ASSETS, LAST, "2024-03-12", resources, instance, raise_on_error=False,
                               run_config=config_for(stocks=["600519.SH"]))
    assert not result.success
    messages = [e.step_failure_data.error.message for e in result.get_step_failure_events()]
    assert any("stocks: daily_bars has not landed 2 of the run's days (2024-03-11, 2024-03-12) and a stock "
               "subset only repairs landed days; materialize those days without `stocks` first" in m
               for m in messages), messages
    assert data_calls(server, start) == []
    held = Warehouse(url).days_with_rows("daily_bars", date(2024, 3, 4), date(2024, 3, 12))
    assert held == {"2024-03-04", "2024-03-05", "2024-03-06", "2024-03-07", "2024-03-08"}, "nothing was written"


@pytest.mark.slow  # one of the longest in-process tests
def test_a_stock_subset_whose_reply_lacks_a_value_writes_nothing(landed, dataset, monkeypatch):
    """A repair whose reply leaves close empty would overwrite a good bar with NULL: the run
    fails on every attempt, naming the stock and the column, and the landed rows stay."""
    _, url, _, instance = landed
    step_retries_at_once(monkeypatch, daily_bars)
    before = warehouse_rows(url, "daily_bars")
    with ChangedReplies(emptied("daily", "close"), dataset=dataset) as server:
        result = materialize_range([daily_bars], FIRST, LAST, resources_for(server, url), instance,
                                   raise_on_error=False, run_config={"ops": {"daily_bars": {"config": {
                                       "stocks": ["600519.SH"]}}}})
    assert not result.success
    message = result.failure_data_for_node("daily_bars").error.to_string()
    assert "daily(ts_code=600519.SH) returned 1 row without close" in message
    assert_same(warehouse_rows(url, "daily_bars"), before)


@pytest.mark.slow  # the `dagster` CLI in a process of its own
@pytest.mark.parametrize("options, message", [
    ({"stocks": ["600519.SH", "60051.SH"]},
     "root:ops:daily_bars:config:stocks[1] not in enum type StockCode got 60051.SH"),
    ({"force_refresh": "yes"}, 'Invalid scalar at path root:ops:daily_bars:config:force_refresh. Value "yes" of type'),
    ({"stock": ["600519.SH"]}, 'Received unexpected config entry "stock" at path root:ops:daily_bars:config'),
])
def test_bad_config_from_the_cli_is_refused_before_a_run_exists(tmp_path, local_server, options, message):
    server = local_server()
    url = f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
    env = cli_env(tmp_path, server, url)
    config = {"ops": {"daily_bars": {"config": options}}}
    done = subprocess.run([DAGSTER, "asset", "materialize", "-m", "zquant_orchestration.definitions",
                           "--select", "daily_bars", "--partition", FIRST, "--config-json", json.dumps(config)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert message in done.stderr + done.stdout, (done.stderr + done.stdout)[-2000:]
    instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
    assert instance.get_runs_count() == 0, "no run was created"
    instance.dispose()
    assert not [r for r in server.requests if r.get("api")]
