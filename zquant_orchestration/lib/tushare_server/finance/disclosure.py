"""When reports are announced, and the ``disclosure_date`` rows that schedule them.

Each (stock, period) report is announced on a weekday inside the regulatory window (Q1
and the annual report by 04-30, H1 by 08-31, Q3 by 10-31). About 8% of reports get a
correction 30..300 days later. disclosure_date holds one schedule per report: pre_date
is the scheduled day (the actual day for most; 3..20 days off for ~8% that were moved,
with modify_date), the schedule is published 90..120 days before pre_date, and rows
appear once pre_date is within 90 days of as_of.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..hashing import keyed_uniform, tag
from .filters import tushare_order
from .quarters import back_to_friday, days_to_str, shift_ymd, window_days, ymd_to_days

RESTATED_SHARE = 0.08  # share of (stock, period) reports corrected later
MOVED_SHARE = 0.08  # share of disclosure schedules moved after publication
DISCLOSURE_LOOKAHEAD_DAYS = 90  # schedules are known this far ahead of as_of

# Announcement window per quarter (1..4): (years after the period's year, month, day).
# Deadlines are the regulatory ones; the window starts when real filings start.
WINDOW_START = np.array([(0, 4, 8), (0, 7, 10), (0, 10, 10), (1, 1, 15)])
DEADLINE = np.array([(0, 4, 30), (0, 8, 31), (0, 10, 31), (1, 4, 30)])


@dataclass(frozen=True)
class Schedule:
    """When each (stock, period) report is announced, and whether it is corrected later."""

    valid: np.ndarray  # the stock reports this period (listed, announced before delisting)
    ann0: np.ndarray  # original announcement day
    restated: np.ndarray
    ann1: np.ndarray  # correction announcement day (meaningful where restated)


def schedule(sk: np.ndarray, period: np.ndarray, is_real: np.ndarray, real_ann: np.ndarray,
             delist: np.ndarray) -> Schedule:
    """The schedule of each (stock key, period) report. A report with real fixture rows
    (``is_real``) is announced on its real day (``real_ann``) and never corrected; none is
    announced after the stock's delisting day ``delist``."""
    start = window_days(period, WINDOW_START)
    deadline = window_days(period, DEADLINE)
    # sqrt skews towards the deadline, where most real filings cluster.
    offset = np.floor(np.sqrt(keyed_uniform(sk, period, tag("ann"))) * (deadline - start + 1))
    ann0 = back_to_friday(np.minimum(start + offset.astype(np.int64), deadline))
    ann0 = np.where(is_real, real_ann, ann0)
    delay = 30 + np.floor(keyed_uniform(sk, period, tag("restate.delay")) * 271).astype(np.int64)
    ann1 = back_to_friday(ann0 + delay)
    restated = (keyed_uniform(sk, period, tag("restate")) < RESTATED_SHARE) & ~is_real & (ann1 <= delist)
    return Schedule(valid=ann0 <= delist, ann0=ann0, restated=restated, ann1=ann1)


def disclosure_frame(codes: np.ndarray, code_rank: np.ndarray, sk: np.ndarray, period: np.ndarray,
                     actual: np.ndarray) -> pd.DataFrame:
    """The disclosure_date rows of reports announced on ``actual`` (one element per report), as
    known in hindsight; ``visible_disclosure`` hides what as_of cannot know yet."""
    # A moved schedule: the first announced date was 3..20 days off the actual one.
    moved = keyed_uniform(sk, period, tag("moved")) < MOVED_SHARE
    shift = 3 + np.floor(keyed_uniform(sk, period, tag("moved.days")) * 18).astype(np.int64)
    shift = np.where(keyed_uniform(sk, period, tag("moved.sign")) < 0.5, -shift, shift)
    earliest = ymd_to_days(period) + 10
    planned = back_to_friday(np.clip(actual + shift, earliest, window_days(period, DEADLINE)))
    pre = np.where(moved, planned, actual)
    moved = pre != actual
    lead = 90 + np.floor(keyed_uniform(sk, period, tag("sched")) * 31).astype(np.int64)
    published = back_to_friday(pre - lead)
    change_span = np.minimum(pre, actual) - published - 1
    change_day = np.floor(keyed_uniform(sk, period, tag("modify")) * change_span).astype(np.int64)
    modified = published + 1 + change_day
    order = tushare_order(code_rank, period, published, np.zeros(len(sk), dtype=np.int64))
    return pd.DataFrame({
        "ts_code": codes,
        "ann_date": days_to_str(published),
        "end_date": period.astype(str).astype(object),
        "pre_date": days_to_str(pre),
        "actual_date": days_to_str(actual),
        "modify_date": np.where(moved, days_to_str(modified), None),
    }).iloc[order].reset_index(drop=True)


def visible_disclosure(frame: pd.DataFrame, as_of: str) -> pd.DataFrame:
    """Rows whose scheduled date is within the look-ahead; facts after as_of blanked out."""
    bound = str(shift_ymd(as_of, DISCLOSURE_LOOKAHEAD_DAYS))
    frame = frame[frame["pre_date"] <= bound].copy()
    for col in ("actual_date", "modify_date"):
        frame[col] = frame[col].where(frame[col] <= as_of, None)
    return frame
