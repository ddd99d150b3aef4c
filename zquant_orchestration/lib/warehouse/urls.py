"""Where the warehouse is: the URL a deployment names, and the driver each URL is opened with."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DATA_DIR = ".zquant"


def default_url() -> str:
    """$ZQUANT_WAREHOUSE_URL, else a SQLite file at $ZQUANT_DATA_DIR/warehouse.sqlite (default ./.zquant)."""
    url = os.environ.get("ZQUANT_WAREHOUSE_URL")
    if url:
        return url
    folder = Path(os.environ.get("ZQUANT_DATA_DIR", DEFAULT_DATA_DIR)).resolve()
    return f"sqlite:///{folder / 'warehouse.sqlite'}"


def normalize_url(url: str) -> str:
    """postgresql://... uses psycopg2, the driver we ship (SQLAlchemy 2.1 would pick psycopg 3)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    return url
