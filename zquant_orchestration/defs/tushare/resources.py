"""``TushareResource``: the one door to Tushare for every asset.

Settings come from the environment so that the token never enters run config or the UI:

- ``TUSHARE_TOKEN``: the account's token (read through ``dg.EnvVar``, shown by name only).
- ``TUSHARE_HTTP_URL``: endpoint; requests go to ``{TUSHARE_HTTP_URL}/{api_name}``.
- ``TUSHARE_CALLS_PER_MINUTE``: per-API quota (default 200), kept by a call log that every
  process on the host shares (``lib/tushare/rate_limit.py``; folder ``ZQUANT_QUOTA_DIR``),
  or every process on every host, in the PostgreSQL database ``ZQUANT_QUOTA_URL``.
- ``TUSHARE_RATE_WINDOW_SECONDS``: the quota's window (60 at Tushare; tests shorten it).

With neither a token nor a URL, the resource starts the project's local
Tushare-compatible server inside the run process (synthetic market + real fixtures),
so everything works offline with nothing set up.
"""

from __future__ import annotations

import logging
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field, PrivateAttr

from zquant_orchestration.lib.tushare import CallStats, RetryPolicy, TushareClient, summarize
from zquant_orchestration.lib.tushare.protocol import TUSHARE_HTTP_URL
from zquant_orchestration.settings import get_settings

DEFAULT_CALLS_PER_MINUTE = 200

log = logging.getLogger(__name__)


class TushareResource(dg.ConfigurableResource):
    """Rate-limited, paging, retrying Tushare Pro client (see lib/tushare)."""

    token: str | None = Field(
        default=None, description="Pass dg.EnvVar('TUSHARE_TOKEN'), never a literal: a literal shows in the UI."
    )
    http_url: str | None = Field(default=None, description="Default: $TUSHARE_HTTP_URL, else Tushare's own.")
    calls_per_minute: int | None = Field(default=None, description="Default: $TUSHARE_CALLS_PER_MINUTE, else 200.")
    api_calls_per_minute: dict[str, int] = Field(default_factory=dict, description="Per-API quota overrides.")
    rate_window_seconds: float | None = Field(
        default=None, description="Default: $TUSHARE_RATE_WINDOW_SECONDS, else 60 (Tushare counts calls per 60 s).")
    timeout_seconds: float = 30.0
    max_attempts: int = Field(default=8, description="Tries per page for transient faults.")
    backoff_seconds: float = Field(default=1.0, description="First retry delay; doubles, with jitter.")
    backoff_max_seconds: float = 60.0
    row_limits: dict[str, int] = Field(default_factory=dict, description="Per-call row limit overrides.")

    _client: TushareClient | None = PrivateAttr(default=None)
    _embedded: Any = PrivateAttr(default=None)

    # --- lifecycle ------------------------------------------------------------------------

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._ensure_client(context.log if context else None)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._embedded is not None:
            self._embedded.stop()
            self._embedded = None
        self._client = None

    def _ensure_client(self, logger=None) -> TushareClient:
        if self._client is not None:
            return self._client
        logger = logger or log
        http_url = self.http_url or get_settings().tushare_http_url
        token = self.token
        if not token and not http_url:
            from zquant_orchestration.lib.tushare_server import LOCAL_TOKEN, LocalTushareServer

            self._embedded = LocalTushareServer(port=0).start()
            http_url, token = self._embedded.url, LOCAL_TOKEN
            logger.info(
                f"TUSHARE_TOKEN is not set: using the embedded local Tushare-compatible server at {http_url} "
                "(synthetic market, real fixtures). Set TUSHARE_TOKEN for the real service."
            )
        elif not token:
            from zquant_orchestration.lib.tushare_server import LOCAL_TOKEN

            token = LOCAL_TOKEN  # a local server at TUSHARE_HTTP_URL; a real one will say the token is wrong
        self._client = TushareClient(
            http_url=http_url or TUSHARE_HTTP_URL,
            token=token,
            calls_per_minute=self._calls_per_minute(),
            api_calls_per_minute=self.api_calls_per_minute,
            window_seconds=self._rate_window_seconds(),
            timeout_seconds=self.timeout_seconds,
            retry=RetryPolicy(self.max_attempts, self.backoff_seconds, self.backoff_max_seconds),
            row_limits=self.row_limits,
        )
        return self._client

    def _calls_per_minute(self) -> int:
        if self.calls_per_minute:
            return self.calls_per_minute
        return get_settings().tushare_calls_per_minute

    def _rate_window_seconds(self) -> float:
        if self.rate_window_seconds:
            return self.rate_window_seconds
        return get_settings().tushare_rate_window_seconds

    # --- what assets call -------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return self._ensure_client().http_url

    def query(
        self,
        api_name: str,
        params: dict[str, Any] | None = None,
        fields: str | list[str] | None = None,
        require_rows: bool = False,
        expect_rows: bool | None = None,
    ) -> pd.DataFrame:
        """Every row of one call (all pages), or a ``TushareError``; see ``TushareClient.query``."""
        return self._ensure_client().query(api_name, params, fields, require_rows, expect_rows)

    def quota_usage(self, api_name: str) -> tuple[int, int]:
        """(calls of ``api_name`` in the quota's window on this host, the limit in force)."""
        return self._ensure_client().quota_usage(api_name)

    def stats_mark(self) -> int:
        return self._ensure_client().stats_mark()

    def stats_since(self, mark: int = 0) -> list[CallStats]:
        return self._ensure_client().stats_since(mark)

    def metadata_since(self, mark: int = 0) -> dict[str, Any]:
        """Call counters since ``mark``, ready for ``MaterializeResult(metadata=...)``."""
        return summarize(self.stats_since(mark))


def tushare_resource_from_env() -> TushareResource:
    """The resource as the code location configures it: the token only through EnvVar."""
    return TushareResource(token=dg.EnvVar("TUSHARE_TOKEN") if get_settings().has_token else None)
