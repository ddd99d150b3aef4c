"""A switch per task: each scheduled task has its own sensor, ``<task>_automation``.

A task with ``cron`` or none (its deps trigger it) gets an automation condition sensor
that evaluates only that task's condition; an ``interval`` task gets a sensor that
requests a run every interval, whether or not its deps updated (as zquant's interval jobs
ran). A ``manual`` task has none: it runs only when launched. Starting or stopping one
(UI Automation page, ``dagster sensor start|stop``, GraphQL ``startSensor``/``stopSensor``)
leaves the other tasks and the derived assets alone; ``enabled: false`` makes STOPPED the
default state. Runs they launch carry ``dagster/max_runtime`` when the task has a
``timeout``, so run monitoring fails them past it even when the step cannot.
"""

from __future__ import annotations

import dagster as dg

from zquant_orchestration.defs.derived.sensors import automation_interval_seconds

from .spec import TaskSpec, duration_text

# A run of the task still on its way: an interval tick then waits for it rather than
# queueing a second one behind it.
NOT_FINISHED = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
                dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def sensor_name(spec: TaskSpec) -> str:
    return f"{spec.name}_automation"


def run_tags(spec: TaskSpec) -> dict[str, str]:
    return {"dagster/max_runtime": str(spec.timeout)} if spec.timeout else {}


def build_task_sensors(specs: list[TaskSpec], assets: dict[str, dg.AssetsDefinition]) -> list[dg.SensorDefinition]:
    sensors: list[dg.SensorDefinition] = []
    for spec in specs:
        status = dg.DefaultSensorStatus.RUNNING if spec.enabled else dg.DefaultSensorStatus.STOPPED
        if spec.trigger == "interval":
            sensors.append(_interval_sensor(spec, assets[spec.name], status))
        elif spec.trigger in ("cron", "deps"):
            when = (f"at cron '{spec.cron}' (Asia/Shanghai) once its deps updated" if spec.cron
                    else "when its deps update")
            sensors.append(dg.AutomationConditionSensorDefinition(
                sensor_name(spec), target=dg.AssetSelection.assets(assets[spec.name]), default_status=status,
                minimum_interval_seconds=automation_interval_seconds(), run_tags=run_tags(spec),
                description=f"Runs script task {spec.name} {when}."))
    return sensors


def _interval_sensor(spec: TaskSpec, asset: dg.AssetsDefinition, status: dg.DefaultSensorStatus) -> dg.SensorDefinition:
    every = duration_text(spec.interval)

    # asset_selection, not target: its runs are the asset job's with this asset selected, like
    # a launch from the asset's page, so both show on the asset and count as its runs.
    @dg.sensor(name=sensor_name(spec), asset_selection=[asset], minimum_interval_seconds=spec.interval,
               default_status=status,
               description=f"Runs script task {spec.name} every {every}, whether or not its deps updated.")
    def interval_sensor(context: dg.SensorEvaluationContext):
        running = [run for run in context.instance.get_runs(dg.RunsFilter(statuses=NOT_FINISHED))
                   if asset.key in (run.asset_selection or ())]
        if running:
            return dg.SkipReason(f"a run of {spec.name} ({running[0].run_id}) is not finished yet; the next tick "
                                 f"({every}) tries again")
        # A trading-day task runs for the latest day.
        partition = asset.partitions_def.get_last_partition_key() if asset.partitions_def else None
        return dg.RunRequest(partition_key=partition, tags=run_tags(spec))

    return interval_sensor
