"""Declarative automation of the derived assets and the exports: Dagster's default automation
sensor starts STOPPED, so this one is ours and RUNNING, and the daemon evaluates the assets'
automation conditions (``daily_factors``: eager, once its lookback has landed; the exports:
eager, once the tables they export have the day). Script tasks have a
sensor each (defs/script_tasks/automation.py), so that one can be stopped without this."""

import dagster as dg

from zquant_orchestration.defs.shared.lazy import lazy_attributes
from zquant_orchestration.settings import get_settings


def automation_interval_seconds() -> int:
    """``ZQUANT_AUTOMATION_INTERVAL_SECONDS``: how often automation sensors evaluate their conditions."""
    return get_settings().automation_interval_seconds


def build_derived_automation_sensor() -> dg.AutomationConditionSensorDefinition:
    return dg.AutomationConditionSensorDefinition(
        "derived_automation_sensor",
        target=dg.AssetSelection.groups("derived", "exports"),
        default_status=dg.DefaultSensorStatus.RUNNING,
        # How soon a derived asset or an export follows its upstream (each tick costs a condition
        # evaluation over the targets' partitions).
        minimum_interval_seconds=automation_interval_seconds(),
        description="Materializes the derived assets and the exports when their automation conditions say so.",
    )


# The sensor as an attribute, for tests and tools that import it.
__getattr__ = lazy_attributes(__name__, {"derived_automation_sensor": build_derived_automation_sensor})
