"""Declarative automation of the derived assets: Dagster's default automation sensor starts
STOPPED, so this one is ours and RUNNING, and the daemon evaluates the assets' automation
conditions (``daily_factors``: eager, once its lookback has landed). Script tasks have a
sensor each (defs/script_tasks/automation.py), so that one can be stopped without this."""

import os

import dagster as dg


def automation_interval_seconds() -> int:
    """``ZQUANT_AUTOMATION_INTERVAL_SECONDS``: how often automation sensors evaluate their conditions."""
    raw = os.environ.get("ZQUANT_AUTOMATION_INTERVAL_SECONDS", "30")
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"ZQUANT_AUTOMATION_INTERVAL_SECONDS must be a whole number of seconds above 0, got {raw!r}")
    return int(raw)


derived_automation_sensor = dg.AutomationConditionSensorDefinition(
    "derived_automation_sensor",
    target=dg.AssetSelection.groups("derived"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    # How soon a derived asset follows its upstream (each tick costs a condition
    # evaluation over the targets' partitions).
    minimum_interval_seconds=automation_interval_seconds(),
    description="Materializes the derived assets when their automation conditions say so.",
)
