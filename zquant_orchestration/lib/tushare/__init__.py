"""The Tushare layer: the only code that knows Tushare's wire protocol."""

from .client import CallStats, RetryPolicy, TushareClient, summarize
from .errors import (
    TushareAuthError,
    TushareEmptyReplyError,
    TushareError,
    TushareNoPointsError,
    TusharePermissionError,
    TushareQuotaStoreError,
    TushareRequestError,
    TushareUnavailableError,
)

__all__ = [
    "CallStats",
    "RetryPolicy",
    "TushareAuthError",
    "TushareClient",
    "TushareEmptyReplyError",
    "TushareError",
    "TushareNoPointsError",
    "TusharePermissionError",
    "TushareQuotaStoreError",
    "TushareRequestError",
    "TushareUnavailableError",
    "summarize",
]
