"""Fetching ahead while writing (lib/prefetch.py): order, batching, and faults."""

from __future__ import annotations

import threading
import time

import pytest

from zquant_orchestration.lib.prefetch import Prefetcher


def test_a_slow_writer_gets_every_item_once_in_order_in_growing_batches():
    with Prefetcher(lambda k: k * 10, range(30), ahead=8) as fetched:
        batches = []
        for batch in fetched.batches(max_size=5):
            batches.append(batch)
            time.sleep(0.02)  # the writer is the slow side: items pile up meanwhile
    items = [item for batch in batches for item in batch]
    assert items == [(k, k * 10) for k in range(30)]
    assert max(len(b) for b in batches) == 5, "items fetched meanwhile are written together, up to max_size"
    assert len(batches) < 30


def test_a_slow_source_hands_over_each_item_as_soon_as_it_arrives():
    def slow(k):
        time.sleep(0.05)
        return k

    with Prefetcher(slow, range(4), ahead=8) as fetched:
        batches = list(fetched.batches(max_size=100))
    assert batches == [[(k, k)] for k in range(4)]


def test_a_failed_fetch_is_raised_after_every_item_fetched_before_it():
    def fetch(k):
        if k == 3:
            raise RuntimeError("day 3: Tushare failed 8 times")
        return k

    handed = []
    with pytest.raises(RuntimeError, match="day 3"):
        with Prefetcher(fetch, range(6), ahead=8) as fetched:
            for batch in fetched.batches(max_size=100):
                handed.extend(k for k, _ in batch)
    assert handed == [0, 1, 2]


def test_a_writer_that_stops_early_does_not_leave_the_fetcher_blocked():
    started = threading.Event()

    def fetch(k):
        started.set()
        return k

    with pytest.raises(ValueError):
        with Prefetcher(fetch, range(1000), ahead=2) as fetched:
            for _ in fetched.batches(max_size=1):
                raise ValueError("the warehouse refused the batch")
    assert started.is_set()
    assert not any(t.name == "prefetch" and t.is_alive() for t in threading.enumerate())
