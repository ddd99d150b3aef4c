"""Script tasks' triggers, switches, params and timeouts, as a user meets them: through a
running `dagster dev` and its GraphQL API (what the UI calls), and the `dagster sensor` CLI.

One `dagster dev` for the file, on a task file with each trigger kind: `heartbeat` every 30 s,
`after_heartbeat` when heartbeat updates, `nightly` on a cron but switched off
(`enabled: false`), `by_hand` and `slow` manual. The market gap sensor is stopped before the
daemon starts and the schedules' crons never come round, so that the only runs are the
tasks'. Automation sensors tick every 5 s (ZQUANT_AUTOMATION_INTERVAL_SECONDS).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from dagster_graphql import DagsterGraphQLClient

from zquant_orchestration.ops.graphql_api import run_history

from .deployment import free_port

pytestmark = pytest.mark.slow  # the task file's automations in a `dagster dev` of its own

REPO = Path(__file__).resolve().parent.parent
DAGSTER = str(Path(sys.executable).with_name("dagster"))
MODULE = "zquant_orchestration.definitions"
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}

TASKS = """tasks:
  heartbeat:
    script: report.py
    interval: 30s
    timeout: 5m
  after_heartbeat:
    script: report.py
    deps: [heartbeat]
  nightly:
    script: report.py
    cron: "0 3 * * *"
    enabled: false
  by_hand:
    script: report.py
    manual: true
    params:
      top_n: {type: int, default: 20}
      ratio: {type: float, default: 0.5}
      label: {type: str, default: daily}
      verbose: {type: bool, default: false}
      since: {type: date, default: 2024-01-02}
      stocks: {type: ts_codes, default: ["600519.SH"]}
  slow:
    script: slow.py
    manual: true
    timeout: 6s
"""
REPORT = """import json
from dagster_pipes import open_dagster_pipes

with open_dagster_pipes() as pipes:
    pipes.report_asset_materialization(metadata={"params": json.dumps(pipes.extras, sort_keys=True)})
"""
SLOW = """import time
from dagster_pipes import open_dagster_pipes

with open_dagster_pipes() as pipes:
    pipes.log.info("sleeping")
    time.sleep(600)
"""


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", headers={"Content-Type": "application/json"},
                                     data=json.dumps({"query": query, "variables": variables or {}}).encode())
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.load(response)
    assert "errors" not in answer, answer
    return answer["data"]


@dataclass
class Dev:
    folder: Path
    port: int
    env: dict[str, str]

    def query(self, text: str, variables: dict | None = None) -> dict:
        return graphql(self.port, text, variables)

    def cli(self, *args: str) -> str:
        done = subprocess.run([DAGSTER, *args, "-m", MODULE], cwd=self.folder, env=self.env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout + done.stderr

    @property
    def client(self) -> DagsterGraphQLClient:
        return DagsterGraphQLClient("127.0.0.1", port_number=self.port)


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tasks")
    shutil.copy(REPO / "dagster.yaml", folder / "dagster.yaml")
    (folder / "tasks.yaml").write_text(TASKS)
    (folder / "report.py").write_text(REPORT)
    (folder / "slow.py").write_text(SLOW)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TUSHARE_", "ZQUANT_", "DAGSTER_HOME"))}
    env.update(DAGSTER_HOME=str(folder), ZQUANT_TASKS_FILE=str(folder / "tasks.yaml"),
               ZQUANT_WAREHOUSE_URL=f"sqlite:///{folder / 'warehouse.sqlite'}", ZQUANT_AUTOMATION_INTERVAL_SECONDS="5",
               ZQUANT_TODAY="2024-01-27", ZQUANT_MARKET_CRON="30 18 1 1 *", ZQUANT_REFERENCE_CRON="0 8 1 1 *")
    port = free_port()
    dev = Dev(folder, port, env)
    # The gap sensor would fill the last 30 trading days into the empty warehouse.
    dev.cli("sensor", "stop", "market_gap_sensor")
    with open(folder / "dev.log", "w") as out:
        process = subprocess.Popen([DAGSTER, "dev", "-m", MODULE, "-p", str(port)], cwd=folder, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while True:
            assert process.poll() is None, (folder / "dev.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the UI never answered"
            try:
                dev.query("{ version }")
                break
            except OSError:
                time.sleep(1)
        yield dev
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


SENSORS = """{ repositoriesOrError { ... on RepositoryConnection { nodes { sensors {
  name sensorState { id status ticks(limit: 10) { status timestamp error { message } } } } } } } }"""
RUNS = """{ runsOrError(limit: 1000) { ... on Runs { results {
  runId status creationTime endTime assetSelection { path } tags { key value } } } } }"""
LAUNCH = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
  ... on LaunchRunSuccess { run { runId } }
  ... on RunConfigValidationInvalid { errors { message } }
  ... on PythonError { message } } }"""
STEP_ERRORS = """query($id: ID!) { logsForRun(runId: $id) { ... on EventConnection { events {
  ... on ExecutionStepFailureEvent { error { message } } } } } }"""
MATERIALIZATIONS = """query($key: [AssetKeyInput!]) { assetNodes(assetKeys: $key) {
  assetMaterializations { runId metadataEntries { label ... on TextMetadataEntry { text } } } } }"""


def sensors(dev: Dev) -> dict[str, dict]:
    nodes = dev.query(SENSORS)["repositoriesOrError"]["nodes"][0]["sensors"]
    return {s["name"]: s["sensorState"] for s in nodes}


def runs_of(dev: Dev, task: str) -> list[dict]:
    """The runs that materialize ``task``, oldest first."""
    runs = dev.query(RUNS)["runsOrError"]["results"]
    return sorted((r for r in runs if {"path": [task]} in (r["assetSelection"] or [])),
                  key=lambda r: r["creationTime"])


def launch(dev: Dev, task: str, config: dict | None = None, tags: dict | None = None) -> dict:
    params = {"selector": {"repositoryLocationName": MODULE, "repositoryName": "__repository__",
                           "jobName": "__ASSET_JOB", "assetSelection": [{"path": [task]}]},
              "runConfigData": {"ops": {task: {"config": config}}} if config else {},
              "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]}}
    return dev.query(LAUNCH, {"params": params})["launchRun"]


def wait_for(condition, seconds: float, what: str, poll: float = 2):
    deadline = time.monotonic() + seconds
    while not (result := condition()):
        assert time.monotonic() < deadline, what
        time.sleep(poll)
    return result


def wait_run(dev: Dev, run_id: str) -> str:
    return wait_for(lambda: (s := dev.client.get_run_status(run_id).value) in FINISHED and s, 240,
                    f"run {run_id} never finished")


def ticks_after(dev: Dev, sensor: str, moment: float, count: int) -> None:
    """Wait until ``sensor`` has finished ``count`` ticks after ``moment``."""
    wait_for(lambda: len([t for t in sensors(dev)[sensor]["ticks"] if t["timestamp"] > moment
                          and t["status"] != "STARTED"]) >= count, 120, f"{sensor} did not tick {count} times")


def test_each_scheduled_task_is_an_automation_of_its_own_and_a_manual_task_has_none(dev):
    states = {name: state["status"] for name, state in sensors(dev).items()}
    assert {n: s for n, s in states.items() if n.endswith("_automation")} == {
        "heartbeat_automation": "RUNNING", "after_heartbeat_automation": "RUNNING",
        "nightly_automation": "STOPPED"}, "enabled: false sets the default state; manual tasks have no switch"
    assert states["derived_automation_sensor"] == "RUNNING"


def test_a_manual_task_never_runs_on_its_own_and_a_launch_with_params_reaches_the_script(dev):
    moment = time.time()
    for sensor in ("after_heartbeat_automation", "derived_automation_sensor"):
        ticks_after(dev, sensor, moment, 2)
    assert runs_of(dev, "by_hand") == [] and runs_of(dev, "slow") == []

    given = {"top_n": 5, "ratio": 0.25, "verbose": True, "since": "2024-03-01", "stocks": ["000001.SZ", "600519.SH"]}
    answer = launch(dev, "by_hand", given)
    assert answer["__typename"] == "LaunchRunSuccess", answer
    run_id = answer["run"]["runId"]
    assert wait_run(dev, run_id) == "SUCCESS"
    node = dev.query(MATERIALIZATIONS, {"key": [{"path": ["by_hand"]}]})["assetNodes"][0]
    (materialization,) = [m for m in node["assetMaterializations"] if m["runId"] == run_id]
    reported = {e["label"]: e.get("text") for e in materialization["metadataEntries"]}
    # What was not given is the default.
    assert json.loads(reported["params"]) == {**given, "label": "daily"}


def test_a_param_of_the_wrong_type_or_an_unknown_one_is_refused_before_any_run_exists(dev):
    before = runs_of(dev, "by_hand")
    answer = launch(dev, "by_hand", {"top_n": "five", "colour": "red"})
    assert answer["__typename"] == "RunConfigValidationInvalid"
    messages = " | ".join(e["message"] for e in answer["errors"])
    assert 'Invalid scalar at path root:ops:by_hand:config:top_n. Value "five"' in messages
    assert 'Received unexpected config entry "colour" at path root:ops:by_hand:config' in messages
    answer = launch(dev, "by_hand", {"stocks": ["60O519.SH"]})
    assert answer["__typename"] == "RunConfigValidationInvalid"
    (error,) = answer["errors"]
    assert "root:ops:by_hand:config:stocks[0] not in enum type StockCode got 60O519.SH" in error["message"]
    assert runs_of(dev, "by_hand") == before


def test_a_task_past_its_timeout_fails_naming_it(dev):
    # No run retry from the daemon (dagster.yaml's run_retries would run it once more).
    answer = launch(dev, "slow", tags={"dagster/max_retries": "0"})
    assert answer["__typename"] == "LaunchRunSuccess", answer
    run_id = answer["run"]["runId"]
    assert wait_run(dev, run_id) == "FAILURE"
    events = dev.query(STEP_ERRORS, {"id": run_id})["logsForRun"]["events"]
    errors = [e["error"]["message"] for e in events if e.get("error")]
    # The timeout is the run's: on a busy machine it may pass before the script even started.
    assert len(errors) == 1 and "task 'slow': timeout: the run went past its timeout of 6s; " in errors[0], errors


def test_a_stopped_task_can_still_be_launched_by_hand(dev):
    assert sensors(dev)["nightly_automation"]["status"] == "STOPPED"
    answer = launch(dev, "nightly")
    assert answer["__typename"] == "LaunchRunSuccess", answer
    assert wait_run(dev, answer["run"]["runId"]) == "SUCCESS"


def test_stopping_one_tasks_automation_leaves_the_other_tasks_and_daily_factors_running(dev):
    # Running, after_heartbeat follows each heartbeat.
    wait_for(lambda: any(r["status"] == "SUCCESS" for r in runs_of(dev, "after_heartbeat")), 180,
             "after_heartbeat never followed heartbeat")
    state = sensors(dev)["after_heartbeat_automation"]
    assert dev.query("mutation($id: String!) { stopSensor(id: $id) { __typename } }",
                     {"id": state["id"]})["stopSensor"]["__typename"] == "StopSensorMutationResult"
    stopped = time.time()
    # A tick under way when the switch flipped may still finish; two more and none can be.
    ticks_after(dev, "derived_automation_sensor", stopped, 2)
    followers = {r["runId"] for r in runs_of(dev, "after_heartbeat")}
    # heartbeat runs on, and after a run of it the derived assets' sensor ticks on too.
    fresh = wait_for(lambda: [r for r in runs_of(dev, "heartbeat") if r["creationTime"] > stopped + 1
                              and r["status"] == "SUCCESS"], 120, "heartbeat stopped running too")
    ticks_after(dev, "derived_automation_sensor", fresh[0]["endTime"], 2)
    states = {name: state["status"] for name, state in sensors(dev).items()}
    assert (states["after_heartbeat_automation"], states["heartbeat_automation"],
            states["derived_automation_sensor"]) == ("STOPPED", "RUNNING", "RUNNING")
    assert {r["runId"] for r in runs_of(dev, "after_heartbeat")} == followers, "a stopped task does not run"

    # The CLI switches it back on (and off), as the UI's toggle does.
    assert "Started sensor after_heartbeat_automation" in dev.cli("sensor", "start", "after_heartbeat_automation")
    assert sensors(dev)["after_heartbeat_automation"]["status"] == "RUNNING"


def test_an_interval_task_of_30_s_runs_at_least_twice_in_90_s(dev):
    runs = [r for page in run_history(dev.client, tags={"dagster/sensor_name": "heartbeat_automation"})
            for r in page]
    first = min(r["creationTime"] for r in runs)
    wait_for(lambda: len([r for page in run_history(dev.client, tags={"dagster/sensor_name": "heartbeat_automation"},
                                                    statuses=["SUCCESS"])
                          for r in page if r["creationTime"] <= first + 90]) >= 2, first + 150 - time.time(),
             "heartbeat ran fewer than twice in 90 s")
    tags = {t["key"]: t["value"] for t in runs[0]["tags"]}
    assert tags["dagster/max_runtime"] == "300", "its runs carry the timeout for run monitoring"
