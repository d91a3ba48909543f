"""What the hottest reads keep in memory: the repository a name names, and the image (manifest bytes
included) a tag or digest names, so an anonymous manifest GET answers without a thread hop or a query;
and for the API's listings, the repository a signed call names and a page of DescribeImages.

Correctness first. Each remembered answer carries the write generation (storage/generation.py) read
before the store was asked, and is used only while the generation has not moved since: any write by any
process on this host (every worker of `pier serve --workers N`, and pier commands on the same data dir)
moves it once its transaction has ended, so
- what a write changed (a tag moved, an image or repository deleted) is never answered from memory by a
  process on this host once the write's response has been sent: the generation moved before that;
- a process on another host (PostgreSQL shared between machines) does not see this host's generation: for
  it an answer is remembered at most TTL_SECONDS after it was read, the bound on how stale it can be.
Nothing that is missing is remembered by pulls (a tag pushed elsewhere is found as soon as it is committed),
and at most MAX_ENTRIES answers are kept. A page of a listing is remembered as it was, empty or not: on
another host, an image pushed elsewhere may be missing from it for up to TTL_SECONDS (at most PAGES_KEPT).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Any

TTL_SECONDS = 1.0  # the freshness bound across hosts (README: "Reads from memory")
MAX_ENTRIES = 4096
PAGES_KEPT = 64  # a page of 100 images is ~60 KiB in memory: a few MiB at most


class Reads:
    def __init__(
        self,
        generation: Callable[[], int],
        ttl: float = TTL_SECONDS,
        size: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._generation = generation
        self._ttl = ttl
        self._size = size
        self._clock = clock
        self._seen = generation()
        self._entries: dict[Hashable, tuple[int, float, Any]] = {}

    def start(self) -> int:
        """Call before reading from the store what put() will remember: the generation it is valid under."""
        return self._generation()

    def get(self, key: Hashable) -> Any:
        """The remembered answer, or None when there is none that is still valid."""
        generation = self._generation()
        if generation != self._seen:
            self._seen = generation
            self._entries = {}  # all of it is older than a write
            return None
        found = self._entries.get(key)
        if found is None:
            return None
        read_under, expires, value = found
        if read_under != generation or expires < self._clock():
            self._entries.pop(key, None)
            return None
        return value

    def put(self, started: int, key: Hashable, value: Any) -> None:
        """Remember `value`, read from the store after start() returned `started` (from any thread)."""
        if started != self._generation():
            return  # a write ended meanwhile: the value may already be stale
        entries = self._entries
        if len(entries) >= self._size:
            drop_oldest(entries)
        entries[key] = (started, self._clock() + self._ttl, value)


def drop_oldest(entries: dict[Any, Any]) -> None:
    """Drop the oldest entry (dicts keep insertion order); all of them if another thread changed the dict
    meanwhile (its iterator then refuses to go on)."""
    try:
        entries.pop(next(iter(entries)), None)
    except (StopIteration, RuntimeError):
        entries.clear()


class NotInMemory(Exception):
    """A call asked to answer from memory only (on the event loop) needs the store: make it in a thread."""


def remembered(reads: Reads, key: Hashable, read: Callable[[], Any], memory_only: bool = False) -> Any:
    """What `read()` answers, from memory while it is valid; read (and remembered unless None) otherwise,
    or NotInMemory with memory_only."""
    value = reads.get(key)
    if value is None:
        if memory_only:
            raise NotInMemory
        started = reads.start()
        value = read()
        if value is not None:
            reads.put(started, key, value)
    return value
