"""Declarative automation of the derived assets and the script tasks: Dagster's default
automation sensor starts STOPPED, so this one is ours and RUNNING, and the daemon evaluates
the assets' automation conditions (``daily_factors``: eager, once its lookback has landed;
script tasks: when an upstream partition changes, or at their cron)."""

import os

import dagster as dg


def _interval_seconds() -> int:
    raw = os.environ.get("ZQUANT_AUTOMATION_INTERVAL_SECONDS", "30")
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"ZQUANT_AUTOMATION_INTERVAL_SECONDS must be a whole number of seconds above 0, got {raw!r}")
    return int(raw)


derived_automation_sensor = dg.AutomationConditionSensorDefinition(
    "derived_automation_sensor",
    target=dg.AssetSelection.groups("derived", "script_tasks"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    # How soon a derived asset or task follows its upstream (each tick costs a condition
    # evaluation over the targets' partitions).
    minimum_interval_seconds=_interval_seconds(),
    description="Materializes derived assets and script tasks when their automation conditions say so.",
)
