"""Tushare's output columns per API (``schema_columns.json``).

Each entry is ``[name, type, default_display]``. Names and types come from
zhangbc97/tushare-integration (MIT); ``default_display`` is the 默认显示 Y/N column of
Tushare's documentation (https://tushare.pro/document/2?doc_id=N): trade_cal 26,
stock_basic 25, daily 27, adj_factor 28, daily_basic 32, income 33, balancesheet 36,
cashflow 44, fina_indicator 79, disclosure_date 162; a ``*_vip`` variant is documented
on its base API's page. Pages without that column (adj_factor, older daily) return
every column.

With ``fields`` empty, Tushare returns only the default-display columns, in the order
the page lists them. The entries keep the order the warehouse tables were created in;
``_documented_order`` gives the page's order where the two differ.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

CATALOG_PATH = Path(__file__).with_name("schema_columns.json")


@cache
def _raw() -> dict:
    return json.loads(CATALOG_PATH.read_text(encoding="utf-8"))


@cache
def _catalog() -> dict[str, list[tuple[str, str, bool]]]:
    return {api: [(name, typ, bool(shown)) for name, typ, shown in columns]
            for api, columns in _raw().items() if not api.startswith("_")}


def _entries(api_name: str) -> list[tuple[str, str, bool]]:
    try:
        return _catalog()[api_name.removesuffix("_vip")]
    except KeyError:
        raise KeyError(f"no column list for Tushare API {api_name!r}") from None


def api_columns(api_name: str) -> list[tuple[str, str]]:
    """(column, type) pairs of an API; type is one of str, date, float, int. ``*_vip`` shares its base's."""
    return [(name, typ) for name, typ, _ in _entries(api_name)]


def api_fields(api_name: str) -> list[str]:
    return [name for name, _, _ in _entries(api_name)]


def known_fields(api_name: str) -> list[str]:
    """Every column of an API the catalog knows, or [] for one it does not."""
    try:
        return api_fields(api_name)
    except KeyError:
        return []


def default_fields(api_name: str) -> list[str]:
    """The columns Tushare returns when a call names no ``fields``, in its documented order."""
    shown = {name for name, _, flag in _entries(api_name) if flag}
    order = _raw().get("_documented_order", {}).get(api_name.removesuffix("_vip")) or api_fields(api_name)
    return [name for name in order if name in shown]
