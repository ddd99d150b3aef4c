"""What the sensors and checks read from Dagster's runs: the partition tags and the in-progress statuses."""

from collections.abc import Callable, Mapping
from datetime import date

import dagster as dg

from zquant_orchestration.lib.dates import to_date

RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
PARTITION = "dagster/partition"
# A run in any of these may still write: never request the same work beside it.
IN_PROGRESS = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
               dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def run_day_range(tags: Mapping[str, str], last_day: Callable[[], str]) -> tuple[date, date]:
    """The days (YYYY-MM-DD keys) a run covers, from the tags Dagster puts on partitioned runs;
    a run without them covers ``last_day()``."""
    if RANGE_START in tags:
        return to_date(tags[RANGE_START]), to_date(tags[RANGE_END])
    day = to_date(tags[PARTITION] if PARTITION in tags else last_day())
    return day, day
