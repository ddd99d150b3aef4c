"""``FinanceBook``: the statements of a stock universe, answered query by query.

Nothing is materialised eagerly: rows are built on demand for the (stock, period) pairs a
query needs and the assembled frames are kept in small LRU caches. ``as_of`` only
filters (a row exists once its ann_date <= as_of); it never changes a figure, so moving
it forward reveals new reports and restatements without rewriting old ones.
"""

from __future__ import annotations

import pathlib
import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import pandas as pd

from ...tushare.catalog import api_columns
from ..hashing import stable_seed
from .disclosure import DISCLOSURE_LOOKAHEAD_DAYS, Schedule, disclosure_frame, schedule, visible_disclosure
from .filters import (
    DATE_RE,
    DISCLOSURE_API,
    STATEMENT_APIS,
    VIP_SUFFIX,
    apply_filters,
    base_api,
    clean_params,
    newest_first,
    tushare_order,
    visible,
)
from .fixtures import fit_real_stocks, load_real, lookup, pair_key, real_announcements
from .model import Rows, expense_shares, figures, generic_block, stock_params
from .quarters import (
    days_to_str,
    quarter_end_on_or_after,
    quarter_end_on_or_before,
    quarter_ends,
    shift_ymd,
    ymd_to_days,
)

_FAR_FUTURE = 99991231


class _Lru:
    """A bounded, thread-safe cache of built frames (the server answers from several threads).

    Builders are pure, so eviction is safe and two threads building the same key at once
    merely waste work; building outside the lock keeps other keys' queries flowing.
    """

    def __init__(self, maxsize: int):
        self._items: OrderedDict = OrderedDict()
        self._maxsize = maxsize
        self._lock = threading.Lock()

    def get(self, key, build: Callable[[], pd.DataFrame]) -> pd.DataFrame:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = build()
        with self._lock:
            self._items[key] = value
            if len(self._items) > self._maxsize:
                self._items.popitem(last=False)
        return value


class FinanceBook:
    """Financial statements of a stock universe, as Tushare Pro would return them at ``as_of``.

    ``stocks``: ts_code, list_date, delist_date (YYYYMMDD or empty; the real date even if
    after as_of), list_status. ``query`` returns every matching row with all schema columns,
    newest first; the server selects fields and pages.
    """

    def __init__(self, stocks: pd.DataFrame, data_dir: pathlib.Path, as_of: str,
                 start_period: str = "20000331"):
        data_dir = pathlib.Path(data_dir)
        self._schema: dict[str, list[tuple[str, str]]] = {
            api: api_columns(api) for api in (*STATEMENT_APIS, DISCLOSURE_API)
        }
        self._codes = stocks["ts_code"].astype(str).to_numpy(dtype=object)
        self._index = {code: i for i, code in enumerate(self._codes)}
        self._code_rank = np.argsort(np.argsort(self._codes, kind="stable"), kind="stable")
        self._sk = np.array([stable_seed(c) for c in self._codes], dtype=np.uint64)
        list_date = stocks["list_date"].astype("int64").to_numpy()
        self._first = quarter_end_on_or_after(np.maximum(list_date, int(start_period)))
        self._delist = np.array([_delist_ymd(v) for v in stocks["delist_date"]], dtype=np.int64)
        self._delist_days = ymd_to_days(self._delist)
        self._last = quarter_end_on_or_before(self._delist)
        self._params = stock_params(self._sk)
        self._expense_split = expense_shares(self._sk)
        self._real = {api: load_real(data_dir, api, self._index, self._schema[api]) for api in STATEMENT_APIS}
        self._real_ann = real_announcements(self._real)
        fit_real_stocks(self._real, self._index, self._sk, self._params)
        self._period_cache = _Lru(16)
        self._stock_cache = _Lru(256)
        self.set_as_of(as_of)

    # -- public interface ----------------------------------------------------

    def set_as_of(self, as_of: str) -> None:
        if not DATE_RE.match(str(as_of)):
            raise ValueError(f"as_of must be YYYYMMDD, got {as_of!r}")
        self.as_of = str(as_of)

    def query(self, api_name: str, params: dict) -> pd.DataFrame:
        api = base_api(api_name)
        p = clean_params(params)
        as_of = self.as_of  # read once: the server may move it while a query runs
        if api == DISCLOSURE_API:
            return self._query_disclosure(p, as_of)
        vip = api_name.endswith(VIP_SUFFIX)
        if not vip and "ts_code" not in p:
            raise ValueError(f"{api_name} needs ts_code (one stock per call); "
                             f"use {api_name}_vip with period for the whole market")
        frame = visible(self._statement_candidates(api_name, api, p, as_of), as_of)
        filters = ("ann_date", "start_date", "end_date", "period", "report_type", "comp_type")
        return apply_filters(frame, p, filters).reset_index(drop=True)

    def truth(self, api_name: str, start: str, end: str, ts_codes=None) -> pd.DataFrame:
        """Every row visible at ``as_of`` whose report period lies in [start, end], newest first;
        with ``ts_codes``, of those stocks only (built for them alone: a test's sample of a
        few dozen stocks need not build the whole market)."""
        api, as_of = base_api(api_name), self.as_of
        periods = quarter_ends(int(start), int(end))[::-1]
        if api == DISCLOSURE_API:
            frames = [visible_disclosure(self._disclosure_period(int(x)), as_of) for x in periods]
        elif ts_codes is not None:
            return visible(self._stocks_frame(api, ts_codes, periods), as_of).reset_index(drop=True)
        else:
            frames = [visible(self._period_frame(api, int(x)), as_of) for x in periods]
        frame = _concat(frames, self._empty(api))
        if ts_codes is not None:
            frame = frame[frame.ts_code.isin(list(ts_codes))].reset_index(drop=True)
        return frame

    # -- statements ------------------------------------------------------------

    def _statement_candidates(self, api_name: str, api: str, p: dict, as_of: str) -> pd.DataFrame:
        """Rows that may match: one stock's history, one period, or the periods an ann date allows."""
        if "ts_code" in p:
            sidx = self._stock_index(p["ts_code"])
            if sidx is None:
                return self._empty(api)
            bound = int(quarter_end_on_or_before(int(as_of)))
            return self._stock_cache.get((api, sidx, bound), lambda: self._stock_frame(api, sidx, bound))
        if "period" in p:
            return self._period_frame(api, int(p["period"]))
        if "ann_date" in p:
            first, last = p["ann_date"], p["ann_date"]
        elif "start_date" in p:
            first, last = p["start_date"], p.get("end_date", as_of)
        else:
            raise ValueError(f"{api_name} needs period (whole market for one report period), "
                             "ts_code, ann_date or start_date")
        # Reports come out <= 4 months after their period, corrections <= 10 months after that.
        periods = quarter_ends(shift_ymd(first, -430), min(int(last), int(as_of)))[::-1]
        return _concat([self._period_frame(api, int(x)) for x in periods], self._empty(api))

    def _stock_frame(self, api: str, sidx: int, bound: int) -> pd.DataFrame:
        periods = quarter_ends(int(self._first[sidx]), min(int(self._last[sidx]), bound))
        return self._pairs_frame(api, np.full(len(periods), sidx, dtype=np.int64), periods)

    def _stocks_frame(self, api: str, ts_codes, periods: np.ndarray) -> pd.DataFrame:
        """The reports of these stocks in these periods (those listed then), in one build."""
        sidx = np.array(sorted({i for i in map(self._stock_index, ts_codes) if i is not None}), dtype=np.int64)
        pairs_sidx, pairs_period = np.repeat(sidx, len(periods)), np.tile(periods.astype(np.int64), len(sidx))
        listed = (self._first[pairs_sidx] <= pairs_period) & (self._last[pairs_sidx] >= pairs_period)
        if not listed.any():
            return self._empty(api)
        return self._pairs_frame(api, pairs_sidx[listed], pairs_period[listed])

    def _period_frame(self, api: str, period: int) -> pd.DataFrame:
        def build() -> pd.DataFrame:
            sidx = np.nonzero((self._first <= period) & (self._last >= period))[0]
            return self._pairs_frame(api, sidx, np.full(len(sidx), period, dtype=np.int64))

        return self._period_cache.get((api, period), build)

    def _pairs_frame(self, api: str, sidx: np.ndarray, period: np.ndarray) -> pd.DataFrame:
        """All versions of the reports of these (stock, period) pairs, real rows where we have them."""
        sched = self._schedule(sidx, period)
        real_frame, real_keys = self._real[api]
        keys = pair_key(sidx, period)
        synthetic = sched.valid & ~np.isin(keys, real_keys)
        corrected = synthetic & sched.restated
        sidx = np.concatenate([sidx[synthetic], sidx[corrected]])
        period = np.concatenate([period[synthetic], period[corrected]])
        version = np.repeat(np.array([0, 1]), [synthetic.sum(), corrected.sum()])
        ann = np.concatenate([sched.ann0[synthetic], sched.ann1[corrected]])
        order = tushare_order(self._code_rank[sidx], period, ann, version)
        sidx, period, version, ann = sidx[order], period[order], version[order], ann[order]
        rows = Rows(sidx=sidx, sk=self._sk[sidx], period=period, version=version, ann=ann)
        frame = self._assemble(api, rows)
        real = real_frame[np.isin(real_keys, keys[sched.valid])]
        return newest_first(pd.concat([frame, real], ignore_index=True)) if len(real) else frame

    def _schedule(self, sidx: np.ndarray, period: np.ndarray) -> Schedule:
        is_real, real_ann = lookup(*self._real_ann, pair_key(sidx, period))
        return schedule(self._sk[sidx], period, is_real, real_ann, self._delist_days[sidx])

    def _assemble(self, api: str, rows: Rows) -> pd.DataFrame:
        """One float block (non-key columns generic, key columns overwritten), then the other columns."""
        statements = figures(rows, self._params, self._expense_split)
        revenue, assets = statements["income"]["revenue"], statements["balancesheet"]["total_assets"]
        scale = {"income": revenue, "balancesheet": assets, "cashflow": revenue, "fina_indicator": None}[api]
        float_columns = [c for c, t in self._schema[api] if t == "float"]
        block = generic_block(api, float_columns, rows, scale)
        for j, col in enumerate(float_columns):
            if col in statements[api]:
                block[:, j] = statements[api][col]
        frame = pd.DataFrame(block, columns=float_columns)
        ids = self._id_columns(api, rows)
        for position, (col, typ) in enumerate(self._schema[api]):
            if typ != "float":
                frame.insert(position, col, ids[col])
        return frame

    def _id_columns(self, api: str, rows: Rows) -> dict[str, np.ndarray]:
        """Identity columns; update_flag typed as the schema says (int, but str in fina_indicator)."""
        ann = days_to_str(rows.ann)
        flag_is_str = dict(self._schema[api]).get("update_flag") == "str"
        return {
            "ts_code": self._codes[rows.sidx],
            "ann_date": ann,
            "f_ann_date": ann,
            "end_date": rows.period.astype(str).astype(object),
            "report_type": np.full(len(rows.sidx), "1", dtype=object),
            "comp_type": np.full(len(rows.sidx), "1", dtype=object),
            "end_type": rows.quarter.astype(str).astype(object),
            "update_flag": rows.version.astype(str).astype(object) if flag_is_str else rows.version,
        }

    # -- disclosure_date ---------------------------------------------------------

    def _query_disclosure(self, p: dict, as_of: str) -> pd.DataFrame:
        bound = shift_ymd(as_of, DISCLOSURE_LOOKAHEAD_DAYS)
        if "ts_code" in p:
            sidx = self._stock_index(p["ts_code"])
            if sidx is None:
                return self._empty(DISCLOSURE_API)
            last = int(quarter_end_on_or_before(bound))
            frame = self._stock_cache.get((DISCLOSURE_API, sidx, last),
                                          lambda: self._disclosure_stock(sidx, last))
        elif "end_date" in p:
            frame = self._disclosure_period(int(p["end_date"]))
        else:
            dates = [p[k] for k in ("pre_date", "ann_date", "actual_date") if k in p]
            if not dates:
                raise ValueError("disclosure_date needs end_date (report period) or ts_code")
            # All dates of a schedule lie within ~4 months either side of its period end.
            periods = quarter_ends(shift_ymd(min(dates), -130), shift_ymd(max(dates), 130))[::-1]
            frame = _concat([self._disclosure_period(int(x)) for x in periods], self._empty(DISCLOSURE_API))
        frame = visible_disclosure(frame, as_of)
        filters = ("end_date", "pre_date", "ann_date", "actual_date")
        return apply_filters(frame, p, filters).reset_index(drop=True)

    def _disclosure_stock(self, sidx: int, last: int) -> pd.DataFrame:
        periods = quarter_ends(int(self._first[sidx]), min(int(self._last[sidx]), last))
        return self._disclosure_pairs(np.full(len(periods), sidx, dtype=np.int64), periods)

    def _disclosure_period(self, period: int) -> pd.DataFrame:
        def build() -> pd.DataFrame:
            sidx = np.nonzero((self._first <= period) & (self._last >= period))[0]
            return self._disclosure_pairs(sidx, np.full(len(sidx), period, dtype=np.int64))

        return self._period_cache.get((DISCLOSURE_API, period), build)

    def _disclosure_pairs(self, sidx: np.ndarray, period: np.ndarray) -> pd.DataFrame:
        sched = self._schedule(sidx, period)
        sidx, period, actual = sidx[sched.valid], period[sched.valid], sched.ann0[sched.valid]
        return disclosure_frame(self._codes[sidx], self._code_rank[sidx], self._sk[sidx], period, actual)

    # -- small helpers -----------------------------------------------------------

    def _stock_index(self, ts_code: str) -> int | None:
        if "," in ts_code:
            raise ValueError(f"one ts_code per call, got {ts_code!r}")
        return self._index.get(ts_code)

    def _empty(self, api: str) -> pd.DataFrame:
        return pd.DataFrame({c: pd.Series(dtype=_empty_dtype(t)) for c, t in self._schema[api]})


def _delist_ymd(value) -> int:
    text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value).strip()
    return int(text) if DATE_RE.match(text) else _FAR_FUTURE


def _concat(frames: list[pd.DataFrame], empty: pd.DataFrame) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else empty


def _empty_dtype(typ: str):
    return {"float": np.float64, "int": np.int64}.get(typ, object)
