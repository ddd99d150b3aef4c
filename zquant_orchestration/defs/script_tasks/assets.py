"""Users' script tasks (spec.py) as assets run through Dagster Pipes.

A task's script runs in a subprocess (``PipesSubprocessClient``); what it logs and the
metadata it reports through ``dagster_pipes`` land in the run's event log, shown in the UI
like any asset's. A task is partitioned by trading day when any of its deps is (the
script reads ``context.partition_key``). Without a trigger it runs again when one of its
upstream partitions changes; with ``cron`` at that time once its deps have updated; with
``interval`` or ``manual`` it has no automation condition (automation.py: its own sensor,
or none). Its ``params`` are the asset's run config and reach the script as Pipes extras
(params.py); its ``timeout`` is kept by the step (run.py).

The script gets an allow-list environment (launch.py): locale, PATH, HOME, TZ, TMPDIR,
what Pipes needs, ``ZQUANT_WAREHOUSE_URL`` and the variables its task names in ``env:``;
never a secret of the deployment.
"""


import sys
from pathlib import Path
from typing import NamedTuple

import dagster as dg

from zquant_orchestration.defs.shared.partitions import trading_day_partitions
from zquant_orchestration.defs.shared.stock_codes import stock_code_enum
from zquant_orchestration.lib.warehouse import default_url
from zquant_orchestration.settings import get_settings, is_set

from . import launch
from .automation import build_task_sensors, sensor_name
from .params import config_schema, script_values
from .run import run_script
from .spec import TaskSpec, duration_text, load_task_file

LAUNCHER = Path(launch.__file__)

# The latest day as soon as its deps land (eager), and any older partition whose upstream
# partition is materialized again, without backfilling all of history on the first tick.
RERUN_WHEN_UPSTREAM_CHANGES = dg.AutomationCondition.eager() | (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_missing()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("upstream partition changed")


def tasks_file() -> Path | None:
    """``$ZQUANT_TASKS_FILE``, else ``./tasks.yaml`` when there is one, else no tasks."""
    configured = get_settings().tasks_file
    if configured is not None:
        return configured
    return Path("tasks.yaml") if Path("tasks.yaml").is_file() else None


def script_env() -> dict[str, str]:
    """The warehouse the script reads (resolved, so the SQLite default reaches it too)."""
    return {launch.WAREHOUSE: default_url()}


def launched(spec: TaskSpec) -> list[str]:
    """The task's command behind the launcher that strips the environment (-I: the
    launcher itself ignores PYTHON* variables and the user's site-packages)."""
    return [sys.executable, "-I", str(LAUNCHER), "--", *spec.command]


def build_task_assets(specs: list[TaskSpec], upstream: dict[str, dg.AssetsDefinition],
                      trading_days: dg.PartitionsDefinition | None = None) -> list[dg.AssetsDefinition]:
    """The tasks' assets; a task is partitioned by ``trading_days`` (default: this process's)
    when any of its deps is."""
    trading_days = trading_days or trading_day_partitions()
    built: dict[str, dg.AssetsDefinition] = {}
    for spec in specs:  # dependency order: a task's upstream tasks are built first
        built[spec.name] = _task_asset(spec, {**upstream, **built}, trading_days)
    return list(built.values())


def _task_asset(spec: TaskSpec, known: dict[str, dg.AssetsDefinition],
                trading_days: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    partitions = {name: known[name].partitions_def for name in spec.deps}
    by_day = any(p == trading_days for p in partitions.values())
    deps = [dg.AssetDep(name, partition_mapping=None if p is None or p == trading_days else dg.AllPartitionMapping())
            for name, p in partitions.items()]
    # Each retry after the task's retry_delay, as the task file says (no backoff, no jitter).
    retry = dg.RetryPolicy(max_retries=spec.retries, delay=spec.retry_delay) if spec.retries else None
    condition = {"cron": dg.AutomationCondition.on_cron(spec.cron, "Asia/Shanghai") if spec.cron else None,
                 "deps": RERUN_WHEN_UPSTREAM_CHANGES}.get(spec.trigger)

    @dg.asset(name=spec.name, description=spec.description or f"Script task: {' '.join(spec.command)}",
              group_name="script_tasks", kinds={"python"}, deps=deps,
              partitions_def=trading_days if by_day else None, retry_policy=retry, automation_condition=condition,
              config_schema=config_schema(spec.params), metadata=_metadata(spec))
    def task(context: dg.AssetExecutionContext, pipes_subprocess_client: dg.PipesSubprocessClient):
        unset = [name for name in spec.env if not is_set(name)]
        if unset:
            context.log.warning(f"task '{spec.name}': env: {', '.join(unset)} not set in the code location's "
                                "environment; the script runs without")
        extras = script_values(spec.name, spec.params, context.op_config or {})
        return run_script(pipes_subprocess_client, context, spec, launched(spec), script_env(),
                          extras).get_materialize_result()

    return task


def _metadata(spec: TaskSpec) -> dict[str, str]:
    """What the asset's page shows of the task file."""
    trigger = {"cron": f"cron '{spec.cron}' (Asia/Shanghai)", "interval": f"every {duration_text(spec.interval or 0)}",
               "manual": "manual: only when launched", "deps": "when its deps update"}[spec.trigger]
    switch = {} if spec.manual else {"automation": f"{sensor_name(spec)} ({'on' if spec.enabled else 'off'} "
                                                   "by default)"}
    limit = {"timeout": duration_text(spec.timeout)} if spec.timeout else {}
    return {"command": " ".join(spec.command), "working_directory": str(spec.cwd), "trigger": trigger, **switch,
            **limit}


class ScriptTasks(NamedTuple):
    assets: list[dg.AssetsDefinition]
    sensors: list[dg.SensorDefinition]


def load_script_tasks(upstream: list[dg.AssetsDefinition],
                      trading_days: dg.PartitionsDefinition | None = None) -> ScriptTasks:
    """The task file's assets and their sensors; a bad file raises TaskFileError and stops the load."""
    path = tasks_file()
    if path is None:
        return ScriptTasks([], [])
    by_name = {key.to_user_string(): a for a in upstream for key in a.keys}
    specs = load_task_file(path, set(by_name), known_codes={code.value for code in stock_code_enum()})
    assets = build_task_assets(specs, by_name, trading_days)
    return ScriptTasks(assets, build_task_sensors(specs, {a.key.to_user_string(): a for a in assets}))
