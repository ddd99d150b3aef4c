"""``FinanceSettings``: how financial statements are synced (env-configured in definitions.py).

- ``ZQUANT_FINANCE_MODE``: ``per_stock`` (default; any account: one call per stock per API,
  covering the run's periods) or ``vip`` (5,000 points: ``*_vip`` calls, the whole market per
  report period).
- ``ZQUANT_FINANCE_UNIVERSE``: comma-separated ts_codes to sync (default: every stock).
- ``ZQUANT_FINANCE_MAX_ATTEMPTS``: runs a failing stock gets before it is left failed (3).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

import dagster as dg
from pydantic import Field

from zquant_orchestration.lib.dates import to_date
from zquant_orchestration.settings import get_settings

MODES = ("per_stock", "vip")
SHANGHAI = ZoneInfo("Asia/Shanghai")


class FinanceSettings(dg.ConfigurableResource):
    mode: Literal["per_stock", "vip"] = Field(
        default="per_stock", description="per_stock: one call per stock and API; vip: *_vip calls per report period.")
    universe: list[str] = Field(default_factory=list, description="Only these ts_codes; empty: every stock.")
    max_stock_attempts: int = Field(default=3, ge=1, description="Runs a failing stock gets, then it stays failed.")
    restatement_lookback_quarters: int = Field(
        default=3, ge=0, description="An incremental run also re-reads this many earlier periods (restatements).")
    grace_days: int = Field(default=60, ge=0, description="Days after a filing deadline that late filers are tried.")
    today: str | None = Field(default=None, description="Override 'today' (YYYY-MM-DD) for replays and tests.")

    def current_day(self) -> date:
        if self.today:
            return to_date(self.today)
        return datetime.now(SHANGHAI).date()


def finance_settings_from_env() -> FinanceSettings:
    settings = get_settings()
    return FinanceSettings(mode=settings.finance_mode, universe=settings.finance_stocks,
                           max_stock_attempts=settings.finance_max_attempts)
