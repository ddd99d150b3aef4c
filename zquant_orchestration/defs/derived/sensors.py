"""Declarative automation of the derived assets: Dagster's default automation sensor
starts STOPPED, so this one is ours and RUNNING, and the daemon evaluates the assets'
automation conditions (``daily_factors``: eager, once its lookback has landed)."""

import dagster as dg

derived_automation_sensor = dg.AutomationConditionSensorDefinition(
    "derived_automation_sensor",
    target=dg.AssetSelection.groups("derived"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Materializes derived assets when their automation conditions say so.",
)
