"""The README's run command on a fresh directory: no token, no database server.

`zquant-demo` lands the reference assets and a month of market data from the embedded
local server into SQLite, then starts `dagster dev`. Through the UI's GraphQL: the
partitions page shows trading days only, with the month materialized; the daemon runs the
schedules and sensors; a manual run with bad config is refused before it exists, and a
manual run for one stock over a range refetches just that stock.
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
from dataclasses import dataclass
from pathlib import Path

import pytest
from dagster import DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError
from sqlalchemy import create_engine, text

pytestmark = pytest.mark.slow  # the README demo in a `dagster dev` of its own

REPO = Path(__file__).resolve().parent.parent
PARTITIONS_QUERY = """{ assetNodes(assetKeys: [{path: ["daily_bars"]}]) {
  partitionKeysByDimension { partitionKeys }
  assetPartitionStatuses { ... on TimePartitionStatuses { ranges { startKey endKey status } } } } }"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", headers={"Content-Type": "application/json"},
                                     data=json.dumps({"query": query, "variables": variables or {}}).encode())
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """`zquant-demo --month 2024-01` in a fresh folder, until its `dagster dev` answers.

    The market schedule's cron is set to every minute so that the test sees the daemon tick
    it (README: ZQUANT_MARKET_CRON), and today is pinned to Saturday 2024-01-27 (ZQUANT_TODAY)
    so that each tick skips: on a real trading day every tick launched a run for a day the
    local server has no data for, and those runs and their retries crowded the queue the
    tests use (the suite took a minute longer on weekdays). The gap sensor looks back one
    day from there, to 2024-01-26, which the demo lands. The example workflow is loaded
    (ZQUANT_TASKS_FILE). The automation sensors tick every
    10 s instead of 30 (ZQUANT_AUTOMATION_INTERVAL_SECONDS), so that the script task's rerun
    is not a minute of waiting."""
    folder = tmp_path_factory.mktemp("demo")
    for name in ("dagster.yaml", "workspace.yaml"):
        shutil.copy(REPO / name, folder / name)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TUSHARE_", "ZQUANT_", "DAGSTER_HOME"))}
    env["ZQUANT_MARKET_CRON"] = "* * * * *"
    env["ZQUANT_TASKS_FILE"] = str(REPO / "examples" / "workflow" / "tasks.yaml")
    env["ZQUANT_GAP_LOOKBACK_DAYS"] = "1"
    env["ZQUANT_TODAY"] = "2024-01-27"
    env["ZQUANT_AUTOMATION_INTERVAL_SECONDS"] = "10"
    # The foundation only: the gap sensor would otherwise fetch the catalog's twelve datasets
    # for the looked-back day and the exports would follow, runs that crowd the queue these
    # tests wait on. The catalog has tests of its own (test_datasets*.py).
    env["ZQUANT_DATASETS"] = "none"
    port = free_port()
    # A file, not a pipe: nobody reads a pipe while the tests run, and a full one would
    # block `dagster dev` (and its daemon) on its next log line.
    log = folder / "demo.log"
    with open(log, "w") as out:
        process = subprocess.Popen([str(Path(sys.executable).with_name("zquant-demo")), "--month", "2024-01",
                                    "--port", str(port)], cwd=folder, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 400
        answer = None
        while answer is None:
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the UI never answered"
            try:
                answer = graphql(port, PARTITIONS_QUERY)
            except OSError:
                time.sleep(1)
        yield Demo(folder, port, answer)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


@dataclass
class Demo:
    folder: Path
    port: int
    first_answer: dict

    @property
    def warehouse_url(self) -> str:
        return f"sqlite:///{self.folder / '.zquant' / 'warehouse.sqlite'}"


def test_the_demo_lands_a_month_and_the_ui_shows_trading_days_only(demo):
    node = demo.first_answer["data"]["assetNodes"][0]
    keys = node["partitionKeysByDimension"][0]["partitionKeys"]
    assert keys[0] == "1990-12-19"
    assert "2024-02-09" not in keys and "2024-02-08" in keys
    assert all(time.strptime(k, "%Y-%m-%d").tm_wday < 5 for k in keys)
    ranges = node["assetPartitionStatuses"]["ranges"]
    assert ranges[0] == {"startKey": "2024-01-02", "endKey": "2024-01-31", "status": "MATERIALIZED"}
    # Anything else is the daemon's gap sensor filling the last trading days (it is on by default).
    recent = keys[keys.index(ranges[0]["endKey"]) + 1:][-31:]
    assert all(r["startKey"] in recent and r["endKey"] in recent for r in ranges[1:]), ranges

    engine = create_engine(demo.warehouse_url)
    with engine.connect() as conn:
        for table in ("daily_bars", "adj_factor", "daily_basic"):
            days = conn.execute(text(f"SELECT COUNT(DISTINCT trade_date) FROM {table} "
                                     "WHERE trade_date BETWEEN '2024-01-01' AND '2024-01-31'")).scalar()
            assert days == 22, table
        assert conn.execute(text("SELECT COUNT(*) FROM stock_basic")).scalar() > 5000
        assert conn.execute(text("SELECT COUNT(DISTINCT exchange) FROM trade_cal")).scalar() == 7
    engine.dispose()


def _client(demo) -> DagsterGraphQLClient:
    return DagsterGraphQLClient("127.0.0.1", port_number=demo.port)


def _runs_tagged(demo, value: str) -> list[dict]:
    query = """query($value: String!) { runsOrError(filter: {tags: [{key: "zquant/test", value: $value}]}) {
      ... on Runs { results { runId status } } } }"""
    return graphql(demo.port, query, {"value": value})["data"]["runsOrError"]["results"]


def test_graphql_refuses_a_manual_run_with_a_bad_stock_before_it_exists(demo):
    config = {"ops": {"daily_bars": {"config": {"stocks": ["600519.SH", "60O519.SH"]}}}}
    with pytest.raises(DagsterGraphQLClientError) as refused:
        _client(demo).submit_job_execution("market_data_job", run_config=config, tags={
            "dagster/partition": "2024-01-02", "zquant/test": "bad-stock"})
    kind, errors = refused.value.args
    assert kind == "RunConfigValidationInvalid"
    assert [e["message"] for e in errors] == [
        "Value at path root:ops:daily_bars:config:stocks[1] not in enum type StockCode got 60O519.SH"]
    assert _runs_tagged(demo, "bad-stock") == []


LAUNCH_ASSETS = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
RUN_LOG = """query($id: ID!) { logsForRun(runId: $id) { ... on EventConnection { events {
  ... on MessageEvent { message } } } } }"""
BREADTH = """{ assetNodes(assetKeys: [{path: ["market_breadth"]}]) {
  assetMaterializations(partitions: ["2024-01-05"]) { runId metadataEntries { label
    ... on IntMetadataEntry { intValue } } } } }"""
AUTOMATION_TICKS = """{ repositoriesOrError { ... on RepositoryConnection { nodes { sensors {
  name sensorState { status ticks(limit: 4) { status timestamp error { message } requestedAssetMaterializationCount
  skipReason } } } } } } }"""
RUNS_OF_DAY = """{ runsOrError(filter: {tags: [{key: "dagster/partition", value: "2024-01-05"}]}) {
  ... on Runs { results { runId status assetSelection { path } } } } }"""


def _launch(demo, assets: list[str], tags: dict, config: dict | None = None) -> str:
    params = {"selector": {"repositoryLocationName": "zquant_orchestration.definitions",
                           "repositoryName": "__repository__", "jobName": "__ASSET_JOB",
                           "assetSelection": [{"path": [a]} for a in assets]},
              "runConfigData": config or {},
              "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]}}
    answer = graphql(demo.port, LAUNCH_ASSETS, {"params": params})["data"]["launchRun"]
    assert answer["__typename"] == "LaunchRunSuccess", answer
    return answer["run"]["runId"]


def _wait(demo, run_id: str, seconds: float = 300) -> DagsterRunStatus:
    deadline = time.monotonic() + seconds
    while (status := _client(demo).get_run_status(run_id)) not in (
            DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED):
        assert time.monotonic() < deadline, f"run {run_id} still {status}"
        time.sleep(2)
    return status


def _wait_for_automation_tick_after(demo, sensor: str, moment: float) -> None:
    deadline = time.monotonic() + 120
    while True:
        sensors = graphql(demo.port, AUTOMATION_TICKS)["data"]["repositoriesOrError"]["nodes"][0]["sensors"]
        ticks = next(s for s in sensors if s["name"] == sensor)["sensorState"]["ticks"]
        if any(t["timestamp"] > moment and t["status"] != "STARTED" for t in ticks):
            return
        assert time.monotonic() < deadline, ticks
        time.sleep(2)


def test_a_script_task_runs_in_dagster_dev_with_logs_and_metadata_and_reruns_when_upstream_changes(demo):
    run_id = _launch(demo, ["market_breadth"], {"dagster/partition": "2024-01-05"})
    assert _wait(demo, run_id) == DagsterRunStatus.SUCCESS
    engine = create_engine(demo.warehouse_url)
    with engine.connect() as conn:
        up, down, total = conn.execute(text(
            "SELECT SUM(CASE WHEN pct_chg > 0 THEN 1 ELSE 0 END), SUM(CASE WHEN pct_chg < 0 THEN 1 ELSE 0 END), "
            "COUNT(*) FROM daily_bars WHERE trade_date = '2024-01-05'")).one()
    engine.dispose()
    # The script's log line and its metadata, as the UI shows them (run page, asset page).
    messages = [e.get("message") for e in graphql(demo.port, RUN_LOG, {"id": run_id})["data"]["logsForRun"]["events"]]
    assert f"2024-01-05: {up} up, {down} down of {total} stocks" in messages
    (materialization,) = graphql(demo.port, BREADTH)["data"]["assetNodes"][0]["assetMaterializations"]
    values = {e["label"]: e.get("intValue") for e in materialization["metadataEntries"]}
    assert (values["advancing"], values["declining"], values["stocks"]) == (up, down, total)

    # The upstream partition lands again: the task's automation sensor runs that day's task
    # again. First let the sensor see the task's own run in a tick of its own (every 10 s
    # here): a change of the task and of its upstream inside one tick counts as handled.
    _wait_for_automation_tick_after(demo, "market_breadth_automation", time.time())
    config = {"ops": {"daily_bars": {"config": {"force_refresh": True}}}}
    assert _wait(demo, _launch(demo, ["daily_bars"], {"dagster/partition": "2024-01-05"}, config)) == \
        DagsterRunStatus.SUCCESS
    deadline = time.monotonic() + 240
    while True:
        runs = graphql(demo.port, RUNS_OF_DAY)["data"]["runsOrError"]["results"]
        reruns = [r for r in runs if {"path": ["market_breadth"]} in (r["assetSelection"] or [])
                  and r["runId"] != run_id]
        if reruns and reruns[0]["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        assert time.monotonic() < deadline, json.dumps(graphql(demo.port, AUTOMATION_TICKS))
        time.sleep(3)
    assert reruns[0]["status"] == "SUCCESS"


def test_graphql_launches_a_manual_run_for_two_stocks_over_a_range(demo):
    engine = create_engine(demo.warehouse_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE daily_bars SET close = -1 WHERE ts_code IN ('600519.SH', '000002.SZ') "
                          "AND trade_date BETWEEN '2024-01-02' AND '2024-01-05'"))
    config = {"ops": {name: {"config": {"stocks": ["600519.SH"]}} for name in ("daily_bars", "adj_factor",
                                                                               "daily_basic")}}
    run_id = _client(demo).submit_job_execution("market_data_job", run_config=config, tags={
        "dagster/asset_partition_range_start": "2024-01-02", "dagster/asset_partition_range_end": "2024-01-05",
        "zquant/test": "two-stocks"})
    deadline = time.monotonic() + 300
    while (status := _client(demo).get_run_status(run_id)) not in (DagsterRunStatus.SUCCESS,
                                                                   DagsterRunStatus.FAILURE,
                                                                   DagsterRunStatus.CANCELED):
        assert time.monotonic() < deadline, f"run {run_id} still {status}"
        time.sleep(2)
    assert status == DagsterRunStatus.SUCCESS
    with engine.connect() as conn:
        spoiled = conn.execute(text("SELECT DISTINCT ts_code FROM daily_bars WHERE close = -1")).scalars().all()
        per_day = conn.execute(text("SELECT COUNT(*) FROM daily_bars WHERE ts_code = '600519.SH' "
                                    "AND trade_date BETWEEN '2024-01-02' AND '2024-01-05'")).scalar()
    engine.dispose()
    assert spoiled == ["000002.SZ"], "the named stock was refetched, the other left alone"
    assert per_day == 4


# Last in the file: by now the schedule (every minute) and the sensors have ticked, so the
# test rarely waits for the top of the next minute.
AUTOMATION_QUERY = """{
  instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } }
  repositoriesOrError { ... on RepositoryConnection { nodes {
    schedules { name scheduleState { status ticks(limit: 5) { status timestamp } } }
    sensors { name sensorState { status ticks(limit: 5) { status timestamp } } } } } } }"""


def test_dagster_dev_runs_the_schedules_and_sensors_with_the_daemon(demo):
    deadline = time.monotonic() + 240
    while True:
        data = graphql(demo.port, AUTOMATION_QUERY)["data"]
        daemons = {d["daemonType"]: d for d in data["instance"]["daemonHealth"]["allDaemonStatuses"]}
        repo = data["repositoriesOrError"]["nodes"][0]
        schedules = {s["name"]: s["scheduleState"] for s in repo["schedules"]}
        sensors = {s["name"]: s["sensorState"] for s in repo["sensors"]}
        watched = (schedules["market_after_close_schedule"], sensors["market_gap_sensor"],
                   sensors["run_notification_sensor"])
        ticked = all(_finished_ticks(state) for state in watched)
        if ticked and all(daemons[t]["healthy"] for t in ("SCHEDULER", "SENSOR", "QUEUED_RUN_COORDINATOR")):
            break
        assert time.monotonic() < deadline, json.dumps({"daemons": daemons, "schedules": schedules,
                                                        "sensors": sensors})[:3000]
        time.sleep(3)
    assert {n: s["status"] for n, s in schedules.items()} == {
        "market_after_close_schedule": "RUNNING", "reference_data_schedule": "RUNNING"}
    assert {n: s["status"] for n, s in sensors.items()} == {
        "market_gap_sensor": "RUNNING", "run_notification_sensor": "RUNNING", "finance_disclosure_sensor": "STOPPED",
        "derived_automation_sensor": "RUNNING",
        # The example workflow's tasks, each with a switch of its own (its manual task has none).
        "market_breadth_automation": "RUNNING", "top_momentum_automation": "RUNNING",
        "daily_report_automation": "RUNNING", "warehouse_freshness_automation": "RUNNING"}
    # The daemon evaluated each of them; none raised.
    for state in watched:
        assert {t["status"] for t in _finished_ticks(state)} <= {"SUCCESS", "SKIPPED"}, state


def _finished_ticks(state: dict) -> list[dict]:
    return [t for t in state["ticks"] if t["status"] != "STARTED"]
