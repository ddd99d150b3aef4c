"""Real fixture rows (data/fundamentals/*.csv) laid over the synthetic statements.

They replace the synthetic rows of their API for the (ts_code, end_date) pairs they
cover. What those files contain, and how it is used:
- column subsets only (income 6, balancesheet 6, cashflow 5, fina_indicator 12
  columns); no f_ann_date, report_type, comp_type, end_type or update_flag;
- 4 stocks (000977.SZ 002050.SZ 002472.SZ 601899.SH), periods 20250630..20260331,
  newest first; they look like the first 4 rows per stock of a Tushare reply, so
  repeated rows push older periods out and the covered periods differ per API;
- repeated rows (restated reports) share ts_code, end_date AND ann_date; in income and
  balancesheet they are identical, in cashflow the second copy lacks free_cashflow;
  fina_indicator has none;
- ann_date agrees across the four files for every (ts_code, end_date).
So within a repeated group the first row (file order, newest first) gets update_flag 1
and the others 0; a single row gets 0. Figures not in the file stay empty, report_type
and comp_type are '1', end_type follows the period and f_ann_date = ann_date. The real
ann_date also becomes the announcement date of that (stock, period) in the APIs the
files do not cover and in disclosure_date, and such pairs get no synthetic restatement.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pandas as pd

from .model import annual_level
from .quarters import ymd_to_days


def pair_key(sidx: np.ndarray, period: np.ndarray) -> np.ndarray:
    """One int64 per (stock position, YYYYMMDD period) pair."""
    return np.asarray(sidx, dtype=np.int64) * 100_000_000 + np.asarray(period, dtype=np.int64)


def lookup(sorted_keys: np.ndarray, values: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(found, value) per key in a sorted key array; value is meaningless where not found."""
    if not len(sorted_keys):
        return np.zeros(len(keys), dtype=bool), np.zeros(len(keys), dtype=values.dtype)
    pos = np.searchsorted(sorted_keys, keys).clip(0, len(sorted_keys) - 1)
    return sorted_keys[pos] == keys, values[pos]


def load_real(data_dir: pathlib.Path, api: str, index: dict[str, int],
              schema: list[tuple[str, str]]) -> tuple[pd.DataFrame, np.ndarray]:
    """The real rows of one API in full ``schema``, and their (stock, period) keys; rows of
    stocks not in ``index`` (ts_code -> stock position) are left out."""
    raw = pd.read_csv(data_dir / "fundamentals" / f"{api}.csv", dtype={
        "ts_code": str, "ann_date": str, "end_date": str})
    raw = raw[raw["ts_code"].isin(index)].reset_index(drop=True)
    group = raw.groupby(["ts_code", "end_date"], sort=False)
    # Repeated rows: the first (newest first, as Tushare lists them) is the update.
    flag = ((group.cumcount() == 0) & (group["ts_code"].transform("size") > 1)).astype(np.int64)
    filled = {
        "f_ann_date": raw["ann_date"], "report_type": "1", "comp_type": "1",
        "end_type": (raw["end_date"].astype(np.int64) // 100 % 100 // 3).astype(str),
        "update_flag": flag.astype(str) if dict(schema).get("update_flag") == "str" else flag,
    }
    columns = {}
    for col, typ in schema:
        if col in raw:
            columns[col] = raw[col]
        elif col in filled:
            columns[col] = filled[col]
        else:
            columns[col] = np.full(len(raw), np.nan if typ == "float" else None)
    frame = pd.DataFrame(columns)
    keys = pair_key(np.array([index[c] for c in raw["ts_code"]], dtype=np.int64),
                    raw["end_date"].astype(np.int64).to_numpy())
    return frame, keys


def fit_real_stocks(real: dict, index: dict[str, int], sk: np.ndarray, params: dict) -> None:
    """Fit the traits (``params``, changed in place) of the real fixture stocks to their latest
    real annual report, so their synthetic history joins the real rows without a jump in scale."""
    latest = {api: frame[frame["end_date"].str.endswith("1231")].drop_duplicates("ts_code")
              .set_index("ts_code") for api, (frame, _keys) in real.items()}
    p = params
    for code, row in latest["income"].iterrows():
        i = index[code]
        year = np.array([int(row["end_date"][:4])])
        trend = annual_level(sk[i:i + 1], year, {k: v[i:i + 1] for k, v in p.items()})
        revenue, n_income = row["revenue"], row["n_income"]
        p["level"][i] *= revenue / trend[0]
        p["margin"][i] = np.clip(n_income / revenue / (1 - p["tax"][i] * (n_income > 0)), -0.15, 0.6)
        if code in latest["balancesheet"].index:
            balance = latest["balancesheet"].loc[code]
            p["assets"][i] = balance["total_assets"] / revenue
            p["debt"][i] = balance["total_liab"] / balance["total_assets"]
        if code in latest["fina_indicator"].index:
            eps = latest["fina_indicator"].loc[code, "eps"]
            p["shares"][i] = np.round(n_income * (1 - p["minority"][i]) / eps)


def real_announcements(real: dict) -> tuple[np.ndarray, np.ndarray]:
    """Sorted keys and announcement days of every (stock, period) some real file covers."""
    announced: dict[int, int] = {}
    for frame, keys in real.values():
        for key, ann in zip(keys.tolist(), frame["ann_date"].astype(int).tolist(), strict=True):
            announced[key] = min(ann, announced.get(key, ann))
    keys = np.array(sorted(announced), dtype=np.int64)
    return keys, ymd_to_days([announced[k] for k in keys.tolist()]).astype(np.int64)

