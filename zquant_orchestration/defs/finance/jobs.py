"""The finance job: the four statements for a report period or a range of them."""

import dagster as dg

from .assets import FINANCE_ASSETS

finance_job = dg.define_asset_job(
    "finance_job", selection=list(FINANCE_ASSETS),
    description="Income, balance sheet, cash flow and indicators for a report period or a range of them.",
)
