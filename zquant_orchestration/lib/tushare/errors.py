"""Failures of a Tushare call, each with a one-line message that names the cause and the fix.

None of these messages ever contains the token.
"""

from __future__ import annotations


class TushareError(RuntimeError):
    """Base class: the call did not return complete data. Nothing should be written."""


class TushareAuthError(TushareError):
    """The service rejected the token. Retrying cannot help."""


class TusharePermissionError(TushareError):
    """The account lacks the points for this API, or hit its daily cap. Retrying cannot help today."""


class TushareNoPointsError(TusharePermissionError):
    """The account lacks the points for this API. Retrying cannot help until it has them."""


class TushareUnavailableError(TushareError):
    """Transient faults (network, HTTP, garbage, server codes, rate limits) outlasted every retry."""


class TushareEmptyReplyError(TushareError):
    """The service answered with no rows where rows must exist (an open trading day, say)."""


class TushareRequestError(TushareError):
    """The service called the request itself wrong (unknown API, bad parameters)."""


class TushareQuotaStoreError(TushareError):
    """The database that holds the shared quota (ZQUANT_QUOTA_URL) cannot be used. Nothing was sent."""
