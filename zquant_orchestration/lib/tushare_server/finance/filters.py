"""What a statement query asks for and which rows answer it: parameter checks, Tushare's
filters, visibility at ``as_of`` and the row order of Tushare's replies."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

STATEMENT_APIS = ("income", "balancesheet", "cashflow", "fina_indicator")
DISCLOSURE_API = "disclosure_date"
VIP_SUFFIX = "_vip"
PERIOD_RE = re.compile(r"^\d{4}(0331|0630|0930|1231)$")
DATE_RE = re.compile(r"^\d{8}$")


def visible(frame: pd.DataFrame, as_of: str) -> pd.DataFrame:
    return frame[frame["ann_date"] <= as_of]


def base_api(api_name: str) -> str:
    api = api_name.removesuffix(VIP_SUFFIX)
    if api not in STATEMENT_APIS and api_name != DISCLOSURE_API:
        raise ValueError(f"unknown api {api_name!r}")
    return api


def clean_params(params: dict) -> dict[str, str]:
    """Params as non-empty strings, with date and period formats checked."""
    p = {k: str(v).strip() for k, v in (params or {}).items() if v is not None and str(v).strip() != ""}
    for key in ("ann_date", "start_date", "end_date", "pre_date", "actual_date"):
        if key in p and not DATE_RE.match(p[key]):
            raise ValueError(f"{key} must be YYYYMMDD, got {p[key]!r}")
    if "period" in p and not PERIOD_RE.match(p["period"]):
        raise ValueError(f"period must be a quarter end YYYYMMDD (0331/0630/0930/1231), got {p['period']!r}")
    return p


def apply_filters(frame: pd.DataFrame, p: dict, names: tuple[str, ...]) -> pd.DataFrame:
    """Tushare's filters. For statements start_date/end_date bound ann_date and period is end_date."""
    statement = "period" in names
    mask = np.ones(len(frame), dtype=bool)
    for name in names:
        if name not in p:
            continue
        if statement and name == "start_date":
            mask &= (frame["ann_date"] >= p[name]).to_numpy()
        elif statement and name == "end_date":
            mask &= (frame["ann_date"] <= p[name]).to_numpy()
        elif name == "period":
            mask &= (frame["end_date"] == p[name]).to_numpy()
        elif name in frame:
            mask &= (frame[name] == p[name]).to_numpy(dtype=bool, na_value=False)
    if "ts_code" in p:
        mask &= (frame["ts_code"] == p["ts_code"]).to_numpy()
    return frame[mask]


def newest_first(frame: pd.DataFrame) -> pd.DataFrame:
    """Newest first, as Tushare returns; a restatement's update (flag 1) before its original."""
    by = ["end_date", "ann_date", "ts_code"] + (["update_flag"] if "update_flag" in frame else [])
    ascending = [False, False, True, False][: len(by)]
    return frame.sort_values(by, ascending=ascending, kind="stable").reset_index(drop=True)


def tushare_order(code_rank: np.ndarray, period, ann, version) -> np.ndarray:
    """Row order of Tushare replies: end_date desc, ann_date desc, ts_code, the update first
    (``code_rank``: each row's stock's rank in ts_code order)."""
    return np.lexsort((-version, code_rank, -ann, -period))
