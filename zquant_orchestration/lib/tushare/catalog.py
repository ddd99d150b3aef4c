"""Tushare's output columns per API (``schema_columns.json``, from zhangbc97/tushare-integration, MIT).

Several APIs (the financial statements above all) return only a default subset of their
columns unless ``fields`` names them; syncing with the full list keeps every column.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

CATALOG_PATH = Path(__file__).with_name("schema_columns.json")


@cache
def _catalog() -> dict[str, list[tuple[str, str]]]:
    raw = json.loads(CATALOG_PATH.read_text(encoding="utf-8"))
    return {api: [(name, typ) for name, typ in columns] for api, columns in raw.items()}


def api_columns(api_name: str) -> list[tuple[str, str]]:
    """(column, type) pairs of an API; type is one of str, date, float, int. ``*_vip`` shares its base's."""
    base = api_name.removesuffix("_vip")
    try:
        return list(_catalog()[base])
    except KeyError:
        raise KeyError(f"no column list for Tushare API {api_name!r}") from None


def api_fields(api_name: str) -> list[str]:
    return [name for name, _ in api_columns(api_name)]
