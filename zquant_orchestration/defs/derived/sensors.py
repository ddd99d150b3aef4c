"""Declarative automation of the derived assets and the script tasks: Dagster's default
automation sensor starts STOPPED, so this one is ours and RUNNING, and the daemon evaluates
the assets' automation conditions (``daily_factors``: eager, once its lookback has landed;
script tasks: when an upstream partition changes, or at their cron)."""

import dagster as dg

derived_automation_sensor = dg.AutomationConditionSensorDefinition(
    "derived_automation_sensor",
    target=dg.AssetSelection.groups("derived", "script_tasks"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Materializes derived assets and script tasks when their automation conditions say so.",
)
