"""Where the warehouse is: the URL a deployment names, and the driver each URL is opened with."""

from __future__ import annotations

from zquant_orchestration.settings import get_settings


def default_url() -> str:
    """$ZQUANT_WAREHOUSE_URL, else a SQLite file at $ZQUANT_DATA_DIR/warehouse.sqlite (default ./.zquant)."""
    return get_settings().default_warehouse_url()


def normalize_url(url: str) -> str:
    """postgresql://... uses psycopg2, the driver we ship (SQLAlchemy 2.1 would pick psycopg 3)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    return url
