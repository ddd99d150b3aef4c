"""Script tasks from YAML: every kind of mistake stops the load with file, task and field;
a task runs its script through Dagster Pipes (logs and metadata in the event log); it runs
again when an upstream partition changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.test_utils import create_run_for_test

from zquant_orchestration.defs.script_tasks.assets import build_task_assets
from zquant_orchestration.defs.script_tasks.automation import build_task_sensors
from zquant_orchestration.defs.script_tasks.spec import TaskFileError, load_task_file
from zquant_orchestration.defs.shared.partitions import SHANGHAI, trading_days
from zquant_orchestration.defs.warehouse.resources import WarehouseResource
from zquant_orchestration.lib.warehouse import Warehouse

from .market_helpers import MARKET_ASSETS, materialize_range, materialize_reference, resources_for

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "workflow" / "tasks.yaml"
KNOWN = {"daily_bars", "daily_factors", "stock_basic"}
DAGSTER = str(Path(sys.executable).with_name("dagster"))


def task_file(tmp_path, text: str) -> Path:
    (tmp_path / "ok.py").write_text("print('hi')\n")
    path = tmp_path / "tasks.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, message", [
    ("tasks:\n  a:\n    script: ok.py\n    cron: '0 25 * * *'\n",
     "task 'a': cron: '0 25 * * *' is not a cron expression of 5 fields (e.g. '0 20 * * 1-5')"),
    ("tasks:\n  a:\n    script: ok.py\n    deps: [daily_barz]\n",
     "task 'a': deps: 'daily_barz' is neither an asset of the code location nor a task of this file"),
    ("tasks:\n  a:\n    script: ok.py\n    deps: [b]\n  b:\n    script: ok.py\n    deps: [c]\n"
     "  c:\n    script: ok.py\n    deps: [a]\n",
     "task 'a': deps: a cycle a -> b -> c -> a; remove one of its deps"),
    ("tasks:\n  a:\n    script: missing.py\n",
     "task 'a': script: {dir}/missing.py does not exist; the path is relative to the task file"),
    ("tasks:\n  a:\n    script: ok.py\n    command: echo\n",
     "task 'a': script: give exactly one of 'script' (a Python file) or 'command'"),
    ("tasks:\n  a:\n    script: ok.py\n    dependencies: [daily_bars]\n",
     "task 'a': dependencies: unknown field; the fields are"),
    ("tasks:\n  a:\n    script: ok.py\n    on_failure: continue\n",
     "task 'a': on_failure: only 'stop' exists here"),
    ("tasks:\n  daily_bars:\n    script: ok.py\n",
     "task 'daily_bars': name: 'daily_bars' is already an asset of the code location; rename the task"),
    ("tasks:\n  a:\n    script: ok.py\n   deps: [x]\n", "not valid YAML at line 4"),
    ("jobs: []\n", "expected a mapping 'tasks:' of task names to tasks"),
    ("tasks:\n  日报:\n    script: ok.py\n",
     "task '日报': name: use ASCII letters, digits and _ only, not starting with a digit"),
    ("tasks:\n  a:\n    script: ok.py\n  b:\n    script: ok.py\n  a:\n    command: echo\n",
     "line 6: 'a' appears twice in one mapping (first at line 2); a task name or field may appear once"),
    ("tasks:\n  a:\n    script: ok.py\n    retries: 1\n    retries: 2\n",
     "line 5: 'retries' appears twice in one mapping (first at line 4)"),
    ("tasks:\n  a:\n    script: ok.py\n    env: [REPORT_DIR, TUSHARE_TOKEN]\n",
     "task 'a': env: TUSHARE_TOKEN is a secret of the deployment and never reaches a script; remove it"),
    ("tasks:\n  a:\n    script: ok.py\n    env: [DAGSTER_PG_PASSWORD]\n",
     "task 'a': env: DAGSTER_PG_PASSWORD is a secret"),
    ("tasks:\n  a:\n    script: ok.py\n    env: [ZQUANT_WEBHOOK_URL]\n",
     "task 'a': env: ZQUANT_WEBHOOK_URL is a secret"),
    ("tasks:\n  a:\n    script: ok.py\n    env: REPORT_DIR\n",
     "task 'a': env: expected a list of environment variable names"),
    ("tasks:\n  a:\n    script: ok.py\n    env: [REPORT-DIR]\n", "task 'a': env: 'REPORT-DIR' is not a variable name"),
    ("tasks:\n  a:\n    script: ok.py\n    cron: '0 20 * * *'\n    interval: 15m\n",
     "task 'a': cron, interval: give one trigger at most: cron, interval or manual: true (none of them: the task "
     "runs when its deps update)"),
    ("tasks:\n  a:\n    script: ok.py\n    interval: 1h\n    manual: true\n", "task 'a': interval, manual: give one"),
    ("tasks:\n  a:\n    script: ok.py\n    interval: 20s\n",
     "task 'a': interval: '20s' is shorter than 30s, the least an interval may be"),
    ("tasks:\n  a:\n    script: ok.py\n    interval: 15 minutes\n",
     "task 'a': interval: '15 minutes' is not a duration; write it like 90s, 15m, 2h or 1d"),
    ("tasks:\n  a:\n    script: ok.py\n    interval: 1.5h\n", "task 'a': interval: '1.5h' is not a duration"),
    ("tasks:\n  a:\n    script: ok.py\n    manual: maybe\n", "task 'a': manual: 'maybe' is not true or false"),
    ("tasks:\n  a:\n    script: ok.py\n    manual: true\n    enabled: false\n",
     "task 'a': enabled: a manual task has no automation to switch on or off; remove enabled"),
    ("tasks:\n  a:\n    script: ok.py\n    enabled: off-ish\n", "task 'a': enabled: 'off-ish' is not true or false"),
    ("tasks:\n  a:\n    script: ok.py\n    retries: 2\n    retry_delay: soon\n",
     "task 'a': retry_delay: 'soon' is not a duration"),
    ("tasks:\n  a:\n    script: ok.py\n    timeout: 0s\n", "task 'a': timeout: 0s would fail every run at once"),
    ("tasks:\n  a:\n    script: ok.py\n    params:\n      n: {type: integer, default: 5}\n",
     "task 'a': params: n: type 'integer' is not one of int, float, str, bool, date, ts_codes"),
    ("tasks:\n  a:\n    script: ok.py\n    params:\n      n: {type: int, default: '5'}\n",
     "task 'a': params: n: default '5' is not an int"),
    ("tasks:\n  a:\n    script: ok.py\n    params:\n      n: {type: int, default: true}\n",
     "task 'a': params: n: default True is not an int"),
    ("tasks:\n  a:\n    script: ok.py\n    params:\n      x: {type: float, default: high}\n",
     "task 'a': params: x: default 'high' is not a float"),
    ("tasks:\n  a:\n    script: ok.py\n    params:\n      v: {type: bool, default: 1}\n",
     "task 'a': params: v: default 1 is not a bool"),
    ("tasks:\n  a:\n    script: ok.py\n    params:\n      since: {type: date, default: 2024-13-01}\n",
     "task 'a': params: since: default '2024-13-01' is not a date; write it as YYYY-MM-DD"),
    ("tasks:\n  a:\n    script: ok.py\n    params:\n      s: {type: ts_codes, default: [600519.SS]}\n",
     "task 'a': params: s: default names '600519.SS', not a ts_code of the stock list"),
    ("tasks:\n  a:\n    script: ok.py\n    params:\n      s: {type: ts_codes, default: 600519.SH}\n",
     "task 'a': params: s: default '600519.SH' is not a list of ts_codes"),
    ("tasks:\n  a:\n    script: ok.py\n    params:\n      n: {type: int}\n",
     "task 'a': params: n: needs a default (runs launched by its automation use it)"),
    ("tasks:\n  a:\n    script: ok.py\n    params:\n      n: {type: int, default: 1, min: 0}\n",
     "task 'a': params: n: unknown field 'min'; a parameter has default, description, type"),
    ("tasks:\n  a:\n    script: ok.py\n    params: [n]\n", "task 'a': params: expected a mapping of names"),
])
def test_each_kind_of_mistake_is_one_line_naming_file_task_and_field(tmp_path, text, message):
    path = task_file(tmp_path, text)
    with pytest.raises(TaskFileError) as error:
        load_task_file(path, KNOWN)
    assert str(error.value).startswith(f"{path}: ")
    assert message.format(dir=tmp_path) in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.slow  # the `dagster` CLI in a process of its own
def test_a_bad_task_file_stops_the_code_location_from_loading(tmp_path):
    path = task_file(tmp_path, "tasks:\n  a:\n    script: ok.py\n    cron: 'every day'\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TUSHARE_", "ZQUANT_"))}
    done = subprocess.run([DAGSTER, "definitions", "validate", "-m", "zquant_orchestration.definitions"],
                          env={**env, "ZQUANT_TASKS_FILE": str(path)}, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert f"TaskFileError: {path}: task 'a': cron: 'every day' is not a cron expression" in done.stdout + done.stderr


def test_the_example_workflow_loads_in_dependency_order_with_each_trigger_kind():
    specs = load_task_file(EXAMPLE, KNOWN)
    assert [s.name for s in specs] == ["market_breadth", "top_momentum", "daily_report", "warehouse_freshness",
                                       "stock_report"]
    assert specs[2].deps == ("market_breadth", "top_momentum")
    assert [s.trigger for s in specs] == ["deps", "deps", "cron", "interval", "manual"]
    assert (specs[3].interval, specs[3].timeout, specs[2].retry_delay, specs[0].retry_delay) == (900, 120, 60, 10)
    assert {p.name: (p.type, p.default) for p in specs[4].params} == {
        "stocks": ("ts_codes", ("600519.SH", "000001.SZ")), "since": ("date", "2024-01-02"),
        "min_move": ("float", 5.0)}


def test_a_ts_codes_default_must_be_in_the_stock_list(tmp_path):
    path = task_file(tmp_path, "tasks:\n  a:\n    script: ok.py\n    params:\n      s: {type: ts_codes, "
                               "default: [999999.SH]}\n")
    with pytest.raises(TaskFileError, match="params: s: default names '999999.SH', not a ts_code of the stock list"):
        load_task_file(path, KNOWN, known_codes={"600519.SH"})


@pytest.fixture
def breadth(tmp_path, local_server, monkeypatch):
    """The example's market_breadth task over a warehouse holding three trading days."""
    server = local_server()
    url = f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
    monkeypatch.setenv("ZQUANT_WAREHOUSE_URL", url)
    resources = resources_for(server, url)
    upstream = {"daily_bars": MARKET_ASSETS[0], "daily_factors": dg.AssetSpec("daily_factors",
                                                                              partitions_def=trading_days)}
    specs = [s for s in load_task_file(EXAMPLE, set(upstream)) if s.name == "market_breadth"]
    (task,) = build_task_assets(specs, {"daily_bars": MARKET_ASSETS[0]})
    with dg.instance_for_test() as instance:
        materialize_reference(resources, instance)
        assert materialize_range(MARKET_ASSETS[:1], "2024-03-04", "2024-03-06", resources, instance).success
        yield task, url, {"pipes_subprocess_client": dg.PipesSubprocessClient(),
                          "warehouse": WarehouseResource(url=url)}, instance


def test_a_task_runs_its_script_through_pipes_with_logs_and_metadata(breadth):
    task, url, resources, instance = breadth
    result = dg.materialize([task], resources=resources, instance=instance, partition_key="2024-03-05")
    assert result.success
    up, down, total = Warehouse(url).query(
        "SELECT SUM(CASE WHEN pct_chg > 0 THEN 1 ELSE 0 END) AS up, SUM(CASE WHEN pct_chg < 0 THEN 1 ELSE 0 END) "
        "AS down, COUNT(*) AS n FROM daily_bars WHERE trade_date = '2024-03-05'").iloc[0]
    metadata = result.asset_materializations_for_node("market_breadth")[0].metadata
    assert (metadata["advancing"].value, metadata["declining"].value, metadata["stocks"].value) == (up, down, total)
    messages = [e.user_message for e in instance.all_logs(result.run_id)]
    assert f"2024-03-05: {up} up, {down} down of {total} stocks" in messages


@pytest.mark.slow  # one of the longest in-process tests
def test_a_failing_script_fails_its_partition_with_the_scripts_error(breadth):
    task, _, resources, instance = breadth
    result = dg.materialize([task], resources=resources, instance=instance, partition_key="2024-03-07",
                            raise_on_error=False)
    assert not result.success
    assert instance.get_materialized_partitions(task.key) == set()
    # The script's own exception is in the run's event log (Pipes reports it), after one retry.
    errors = [str(e.dagster_event.event_specific_data) for e in instance.all_logs(result.run_id)
              if e.user_message == "[pipes] external process pipes closed with exception"]
    assert len(errors) == 2 and all("RuntimeError" in e and "no daily_bars rows for 2024-03-07: materialize "
                                    "daily_bars for it first" in e for e in errors), errors


@pytest.mark.slow  # one of the longest in-process tests
def test_a_task_runs_again_when_its_upstream_partition_changes(breadth):
    task, _, resources, instance = breadth
    defs = dg.Definitions(assets=[task, dg.AssetSpec("daily_bars", partitions_def=trading_days)], resources=resources)
    evening = datetime(2024, 3, 8, 20, 0, tzinfo=SHANGHAI)
    cursor = None

    def requested():
        nonlocal cursor
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=evening,
                                                   asset_selection=dg.AssetSelection.assets(task), cursor=cursor)
        cursor = result.cursor
        return set(result.get_requested_partitions(task.key))

    requested()  # the first evaluation learns the state
    assert dg.materialize([task], resources=resources, instance=instance, partition_key="2024-03-05").success
    assert requested() == set()
    instance.report_runless_asset_event(dg.AssetMaterialization("daily_bars", partition="2024-03-05"))
    assert requested() == {"2024-03-05"}, "daily_bars of 2024-03-05 changed: that partition of the task re-runs"
    assert requested() == set(), "once"


def test_the_examples_interval_and_manual_tasks_report_on_the_warehouse(breadth):
    _, url, resources, instance = breadth
    specs = [s for s in load_task_file(EXAMPLE, KNOWN) if s.name in ("warehouse_freshness", "stock_report")]
    freshness, report = build_task_assets(specs, {})
    assert dg.materialize([freshness], resources=resources, instance=instance).success
    assert instance.get_latest_materialization_event(freshness.key).asset_materialization.metadata[
        "latest_day"].value == "2024-03-06"
    config = {"ops": {"stock_report": {"config": {"stocks": ["600519.SH", "000001.SZ"], "since": "2024-03-05",
                                                  "min_move": 0.0}}}}
    assert dg.materialize([report], resources=resources, instance=instance, run_config=config).success
    metadata = instance.get_latest_materialization_event(report.key).asset_materialization.metadata
    assert (metadata["stocks"].value, metadata["since"].value) == ("600519.SH, 000001.SZ", "2024-03-05")
    assert "| 000001.SZ | 2 | 2 |" in metadata["report"].value and "| 600519.SH | 2 | 2 |" in metadata["report"].value


ENV_REPORT = """import os
from dagster_pipes import open_dagster_pipes

with open_dagster_pipes() as pipes:
    pipes.report_asset_materialization(metadata={"names": " ".join(sorted(os.environ)),
                                                 "report_dir": os.environ.get("REPORT_DIR", "unset")})
"""
SECRETS = {"DAGSTER_PG_PASSWORD": "pg-secret", "ZQUANT_WEBHOOK_URL": "https://hooks.example/T0/B0/hook-secret",
           "TUSHARE_TOKEN": "tushare-secret", "AWS_SECRET_ACCESS_KEY": "cloud-secret"}


def _environment_seen(tmp_path, monkeypatch, env_field: str = "") -> dict[str, str]:
    for name, value in {**SECRETS, "REPORT_DIR": "/srv/reports",
                        "ZQUANT_WAREHOUSE_URL": f"sqlite:///{tmp_path / 'w.sqlite'}"}.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "env_report.py").write_text(ENV_REPORT)
    (tmp_path / "tasks.yaml").write_text(f"tasks:\n  env_report:\n    script: env_report.py\n{env_field}")
    (task,) = build_task_assets(load_task_file(tmp_path / "tasks.yaml", KNOWN), {})
    with dg.instance_for_test() as instance:
        result = dg.materialize([task], instance=instance,
                                resources={"pipes_subprocess_client": dg.PipesSubprocessClient()})
        assert result.success
        warnings = [e.user_message for e in instance.all_logs(result.run_id) if e.level == 30]
    metadata = result.asset_materializations_for_node("env_report")[0].metadata
    return {"names": set(metadata["names"].value.split()), "report_dir": metadata["report_dir"].value,
            "warnings": warnings}


def test_a_script_gets_no_secret_of_the_deployment(tmp_path, monkeypatch):
    seen = _environment_seen(tmp_path, monkeypatch)
    assert not seen["names"] & set(SECRETS), seen["names"]
    assert {"PATH", "HOME", "ZQUANT_WAREHOUSE_URL", "DAGSTER_PIPES_CONTEXT", "DAGSTER_PIPES_MESSAGES"} <= seen["names"]
    assert seen["report_dir"] == "unset", "a variable no task names stays out too"


def test_a_script_gets_the_variables_its_task_names_in_env(tmp_path, monkeypatch):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    seen = _environment_seen(tmp_path, monkeypatch, "    env: [REPORT_DIR, NOT_SET_ANYWHERE]\n")
    assert seen["report_dir"] == "/srv/reports"
    assert not seen["names"] & set(SECRETS)
    assert ("task 'env_report': env: NOT_SET_ANYWHERE not set in the code location's environment; the script "
            "runs without") in seen["warnings"]


PARAMS_REPORT = """import json, os, time
from dagster_pipes import open_dagster_pipes

with open_dagster_pipes() as pipes:
    with open("pid", "w") as out:
        out.write(str(os.getpid()))
    pipes.report_asset_materialization(metadata={"params": json.dumps(pipes.extras, sort_keys=True)})
    time.sleep(pipes.get_extra("sleep"))
"""
PARAMS_TASK = """tasks:
  p:
    script: p.py
    manual: true
    timeout: 2s
    retries: 2
    retry_delay: 1s
    params:
      sleep: {type: int, default: 0}
      ratio: {type: float, default: 1}
      label: {type: str, default: daily}
      verbose: {type: bool, default: false}
      since: {type: date, default: 2024-01-02}
      stocks: {type: ts_codes, default: ['600519.SH']}
"""


@pytest.fixture
def params_task(tmp_path):
    (tmp_path / "p.py").write_text(PARAMS_REPORT)
    (tmp_path / "tasks.yaml").write_text(PARAMS_TASK)
    (task,) = build_task_assets(load_task_file(tmp_path / "tasks.yaml", KNOWN), {})
    with dg.instance_for_test() as instance:
        def run(config: dict) -> dg.ExecuteInProcessResult:
            return dg.materialize([task], instance=instance, run_config={"ops": {"p": {"config": config}}},
                                  resources={"pipes_subprocess_client": dg.PipesSubprocessClient()},
                                  raise_on_error=False)
        yield run, tmp_path, instance


def _step_errors(result: dg.ExecuteInProcessResult) -> list[str]:
    return [e.event_specific_data.error.message for e in result.all_events if e.is_step_failure]


def test_params_reach_the_script_as_pipes_extras_with_the_defaults_for_the_rest(params_task):
    run, _, _ = params_task
    result = run({"stocks": ["000001.SZ", "600519.SH"], "ratio": 2.5, "since": "2024-03-01"})
    assert result.success
    metadata = result.asset_materializations_for_node("p")[0].metadata
    assert json.loads(metadata["params"].value) == {"sleep": 0, "ratio": 2.5, "label": "daily", "verbose": False,
                                                    "since": "2024-03-01", "stocks": ["000001.SZ", "600519.SH"]}


def test_a_date_param_that_is_not_a_date_fails_the_step_before_the_script_starts(params_task):
    run, folder, _ = params_task
    result = run({"since": "2024-13-01"})
    assert not result.success
    assert _step_errors(result) == ["dagster._core.definitions.events.Failure: task 'p': params: since: '2024-13-01' "
                                    "is not a date; launch again with YYYY-MM-DD\n"], "once: a bad param is not retried"
    assert not (folder / "pid").exists()


def test_a_wrong_type_or_unknown_param_is_refused_before_the_run_exists(params_task):
    run, _, instance = params_task
    with pytest.raises(dg.DagsterInvalidConfigError) as refused:
        run({"sleep": "1", "colour": "red"})
    assert 'Received unexpected config entry "colour" at path root:ops:p:config' in str(refused.value)
    assert 'Invalid scalar at path root:ops:p:config:sleep. Value "1"' in str(refused.value)
    assert instance.get_runs() == []


def test_a_script_past_the_timeout_is_stopped_and_the_step_fails_naming_it_without_a_retry(params_task):
    run, folder, _ = params_task
    result = run({"sleep": 600})
    assert not result.success
    assert _step_errors(result) == ["dagster._core.definitions.events.Failure: task 'p': timeout: the run went past "
                                    "its timeout of 2s; the script was stopped\n"]
    with pytest.raises(ProcessLookupError):
        os.kill(int((folder / "pid").read_text()), 0)


def test_each_scheduled_task_gets_a_sensor_of_its_own(tmp_path):
    path = task_file(tmp_path, "tasks:\n  d:\n    script: ok.py\n    deps: [b]\n    timeout: 30m\n"
                               "  c:\n    script: ok.py\n    cron: '0 20 * * 1-5'\n    enabled: false\n"
                               "  b:\n    script: ok.py\n    interval: 90s\n    timeout: 1h\n    retries: 3\n"
                               "    retry_delay: 1m\n  m:\n    script: ok.py\n    manual: true\n")
    specs = load_task_file(path, KNOWN)
    assets = {a.key.to_user_string(): a for a in build_task_assets(specs, {})}
    sensors = {s.name: s for s in build_task_sensors(specs, assets)}
    assert {n: s.default_status.value for n, s in sensors.items()} == {
        "d_automation": "RUNNING", "c_automation": "STOPPED", "b_automation": "RUNNING"}
    assert sensors["b_automation"].minimum_interval_seconds == 90
    assert sensors["d_automation"].run_tags == {"dagster/max_runtime": "1800"}
    assert assets["b"].op.retry_policy == dg.RetryPolicy(max_retries=3, delay=60)
    assert assets["m"].automation_conditions_by_key == {} and assets["b"].automation_conditions_by_key == {}

    with dg.instance_for_test() as instance:
        defs = dg.Definitions(assets=list(assets.values()), sensors=list(sensors.values()),
                              resources={"pipes_subprocess_client": dg.PipesSubprocessClient()})

        def tick():
            return sensors["b_automation"].evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))

        (request,) = tick().run_requests
        assert request.asset_selection == [assets["b"].key] and request.tags["dagster/max_runtime"] == "3600"
        create_run_for_test(instance, job_name="__ASSET_JOB", status=dg.DagsterRunStatus.STARTED,
                            asset_selection={assets["b"].key})
        skipped = tick()
        assert skipped.run_requests == [] and "a run of b (" in skipped.skip_message
