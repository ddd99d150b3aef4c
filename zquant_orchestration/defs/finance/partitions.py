"""Report-period partitions: one per quarter end, keyed as Tushare writes periods (20240930).

Why report periods: ``*_vip`` APIs answer the whole market for one period, the disclosure
calendar is keyed by period, and a period is what a researcher asks for. Seventeen years
are ~68 partitions per statement, so a full history is a few hundred partition-runs at
most, and with ``BackfillPolicy.single_run()`` one run per statement (see assets.py).

The window of partition 20240930 runs from 2024-09-30 to the next quarter end;
``end_offset=1`` makes the current period exist while its reports come in.
``ZQUANT_FINANCE_START`` (default 2010-01-01) sets the first period: the first quarter end
on or after it.
"""

from __future__ import annotations

from datetime import date

import dagster as dg

from zquant_orchestration.defs.shared.lazy import lazy_attributes
from zquant_orchestration.lib.dates import COMPACT_FORMAT, to_date
from zquant_orchestration.lib.report_periods import period_key, quarter_end_on_or_after
from zquant_orchestration.settings import get_settings


def first_period(start: str | None = None) -> date:
    if not start:
        return quarter_end_on_or_after(get_settings().finance_start)
    try:
        day = to_date(start)
    except ValueError:
        raise ValueError(f"ZQUANT_FINANCE_START must be a date like 2010-01-01, got {start!r}") from None
    return quarter_end_on_or_after(day)


def build_report_period_partitions(start: date) -> dg.TimeWindowPartitionsDefinition:
    return dg.TimeWindowPartitionsDefinition(
        start=period_key(start),
        fmt=COMPACT_FORMAT,
        cron_schedule="0 0 L 3,6,9,12 *",  # L: the last day of the month
        timezone="Asia/Shanghai",
        end_offset=1,
    )


def report_period_partitions() -> dg.TimeWindowPartitionsDefinition:
    """The report periods from ``ZQUANT_FINANCE_START`` as the settings hold it now."""
    return build_report_period_partitions(first_period())


# ``report_periods`` as an attribute, for tests and tools that import it.
__getattr__ = lazy_attributes(__name__, {"report_periods": report_period_partitions})
