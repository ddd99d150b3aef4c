"""Fetch ahead in a thread while the caller writes: the write of one batch overlaps the fetch
of the next, and a slow writer gets bigger batches instead of falling behind.

    with Prefetcher(fetch_day, days, ahead=20, size=len) as fetched:
        for batch in fetched.batches(max_size=100_000):   # [(day, frame), ...] in order
            write(batch)

``batches`` hands over whatever has been fetched since the last batch, at least one item,
in key order. When the source is slow (a quota), that is one item per batch, written as
soon as it arrives; when the writer is the slow side, items pile up and are written
together. A failed fetch is raised in the caller after every item fetched before it has
been handed over, so the caller can keep them.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

_DONE = object()


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


class Prefetcher(Generic[K, V]):
    def __init__(self, fetch: Callable[[K], V], keys: Iterable[K], ahead: int,
                 size: Callable[[V], int] = lambda _: 1, name: str = "prefetch"):
        if ahead < 1:
            raise ValueError(f"ahead must be at least 1, got {ahead}")
        self._fetch, self._keys, self._size = fetch, list(keys), size
        self._queue: queue.Queue = queue.Queue(maxsize=ahead)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def __enter__(self) -> Prefetcher[K, V]:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop fetching (a fetch in progress finishes in the background; its result is dropped)."""
        self._stop.set()
        while True:  # unblock a put() waiting for room
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=1.0)

    def batches(self, max_size: int) -> Iterator[list[tuple[K, V]]]:
        """Items in key order, grouped as they are ready; a batch holds at least one item and
        stops growing at ``max_size`` (by ``size``). Raises the first failed fetch's error."""
        pending: object = None
        while True:
            item = pending if pending is not None else self._queue.get()
            pending = None
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            batch, total = [item], self._size(item[1])
            while total < max_size:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _DONE or isinstance(nxt, _Failed):
                    pending = nxt  # hand over what came before it first
                    break
                batch.append(nxt)
                total += self._size(nxt[1])
            yield batch

    def _run(self) -> None:
        try:
            for key in self._keys:
                if self._stop.is_set():
                    return
                self._put((key, self._fetch(key)))
        except BaseException as exc:  # noqa: BLE001 - every error belongs to the caller
            self._put(_Failed(exc))
            return
        self._put(_DONE)

    def _put(self, item: object) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue
