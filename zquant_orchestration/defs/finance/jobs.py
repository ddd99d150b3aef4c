"""The finance job: the four statements for a report period or a range of them."""

import dagster as dg

from zquant_orchestration.lib.warehouse.tables import FINANCE_TABLES

finance_job = dg.define_asset_job(
    # By key: the statement assets are built with the definitions.
    "finance_job", selection=list(FINANCE_TABLES),
    description="Income, balance sheet, cash flow and indicators for a report period or a range of them.",
)
