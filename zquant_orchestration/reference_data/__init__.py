"""Reference data the product ships: Tushare's SSE trading calendar and stock list.

The code location builds its trading-day partitions and the ts_codes run config may name
from these files until the warehouse holds fresher ones; the local Tushare server serves
them as ``trade_cal`` and ``stock_basic``. SOURCES.md says where they come from.
"""

from pathlib import Path

FOLDER = Path(__file__).parent
SSE_CALENDAR = FOLDER / "trade_cal_SSE.csv"  # every calendar day 19901219..20261231
STOCK_LIST = FOLDER / "stock_basic.csv"  # the listed stocks on 2025-12-06
