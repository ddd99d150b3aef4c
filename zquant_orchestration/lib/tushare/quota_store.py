"""What the quota (``rate_limit.CallQuota``) asks of the place its calls are kept.

Two stores hold the same state: a JSON file per API on one host (``quota_files.py``) and
two tables in a PostgreSQL database every host reaches (``quota_database.py``). Each look
at one API's quota is one short critical section, ``attempt()``: the store locks the API,
forgets the calls that no longer count (``STALE_WINDOWS``, clock steps), and hands over a
``Snapshot``; what the quota changes on it is written back as the section ends. Waiting
for a slot happens between attempts, never inside one.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

IN_FLIGHT, ANSWERED = 0, 1
# A call still "in flight" this many windows after it was sent belongs to a killed process.
STALE_WINDOWS = 10


@dataclass
class Snapshot:
    """One API's quota as one attempt sees it, times in seconds on the store's clock.

    The quota sets ``new_call`` (a ticket, stamped ``now`` and in flight), ``blocked_until``
    or ``learned``; the store writes those back when the attempt ends without an error."""

    now: float
    calls: int  # calls counting against the quota now
    oldest_answered: float | None  # the answer stamp that leaves the window first
    blocked_until: float = 0.0
    learned: tuple[int, float] | None = None  # (the server's limit, when it said so)
    new_call: str | None = None


class QuotaStore(Protocol):
    where: str  # names the store in a warning; never a password

    def attempt(self) -> AbstractContextManager[Snapshot]:
        """The API's quota, locked until the block ends; changes to the snapshot are kept."""

    def answer(self, ticket: str) -> None:
        """Restamp ``ticket`` answered, now: it counts for one window from here."""
