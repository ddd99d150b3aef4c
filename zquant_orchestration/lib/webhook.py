"""POST JSON to a webhook, retrying transient failures; never raises (a notifier must not
take down the sensor that calls it).

A webhook URL is a secret: Slack and Feishu carry the token in its path, others in the
query. What is logged of it is its scheme, host and port, and an error of the HTTP library
(which quotes the URL it asked for) is logged only with the URL masked.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import requests

from .redact import origin_of, redact_request_error

log = logging.getLogger(__name__)


def post_json(url: str, payload: dict[str, Any], attempts: int = 3, backoff_seconds: float = 1.0,
              timeout_seconds: float = 5.0, logger: logging.Logger | Any = log) -> bool:
    """True once the receiver answered 2xx; False (logged) after ``attempts`` failures."""
    last = ""
    for attempt in range(1, attempts + 1):
        try:
            reply = requests.post(url, json=payload, timeout=timeout_seconds)
            if 200 <= reply.status_code < 300:
                return True
            last = f"HTTP {reply.status_code}"
            if 400 <= reply.status_code < 500 and reply.status_code != 429:
                break  # the receiver refuses this message; sending it again will not help
        except requests.RequestException as exc:
            last = f"{exc.__class__.__name__}: {redact_request_error(str(exc), url)}"
        if attempt < attempts:
            time.sleep(backoff_seconds * 2 ** (attempt - 1))
    logger.warning(f"webhook delivery to {origin_of(url)} failed after {attempt} attempts ({last}); message dropped")
    return False
