"""Downloads: every GET of a manifest on /v2/ (by tag or digest) is one download of that image and of its
repository, as Docker Hub counts pulls. HEADs, blob GETs and page views are not downloads.

Counting costs the pull path one dictionary increment: counts gather in memory, on the event loop that
serves the request, and a background task writes them every `downloads_flush_seconds` (at most 10 s) as
one batch, added to what the database holds (so processes sharing it never overwrite each other). A batch
carries an id, recorded with it: a batch written again after a failure that left its fate unclear is not
added twice. While a batch is unwritten (the database is away) new counts keep gathering beside it, and
it is tried again first. SIGTERM writes what is pending before the process exits; a process killed
outright loses at most the counts of the last interval.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # context.py holds a counter: import the type only
    from pier.core.context import Core


@dataclass(frozen=True)
class Batch:
    id: str
    counts: dict[tuple[int, str], int]  # (repository id, image digest) -> downloads

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class DownloadCounter:
    """Counts in memory. count() and seal() run on the event loop only (no lock on the pull path);
    write() runs on a worker thread, one at a time."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._counts: dict[tuple[int, str], int] = {}
        self._pending: Batch | None = None
        self._guard = threading.Lock()  # _pending, between the loop (seal) and a writing thread
        self._writing = threading.Lock()  # one write at a time

    def count(self, repository_id: int, digest: str) -> None:
        if self.enabled:
            key = (repository_id, digest)
            self._counts[key] = self._counts.get(key, 0) + 1

    def seal(self) -> None:
        """Make what was counted since the last batch a batch of its own, unless one is still unwritten."""
        with self._guard:
            if self._pending is None and self._counts:
                self._pending = Batch(uuid.uuid4().hex, self._counts)
                self._counts = {}

    @property
    def unwritten(self) -> int:
        """Downloads counted and not yet written."""
        with self._guard:
            pending = self._pending.total if self._pending else 0
        return pending + sum(self._counts.values())

    def write(self, core: Core) -> int:
        """Write the sealed batch, if any; the downloads it held. Raises (keeping it) if the store fails."""
        with self._writing:
            with self._guard:
                batch = self._pending
            if batch is None:
                return 0
            core.meta.add_downloads(batch.id, batch.counts, core.clock())  # False: written before; fine too
            with self._guard:
                self._pending = None
            return batch.total
