"""A number every write on this host changes, read in a fraction of a microsecond: what lets each process
keep the answers of its reads in memory (core/reads.py) and drop them as soon as anything is written.

The number lives in an 8-byte file every process with the same data dir maps into memory (so the workers
of `pier serve --workers N`, and `pier` commands run beside them, share it). After each write transaction
commits, the writer stores a fresh random value there; a reader compares the value with the one its
memory was filled under, and forgets everything when they differ. A random value rather than a counter:
two writers at once cannot both store the same "next" number, so no change is ever missed. Processes on
other hosts (PostgreSQL shared between machines) do not see this file: for them the memory's time to live
(core/reads.py) is the bound.

Without a file (a store opened by a tool, tests) the number lives in this process only.
"""

from __future__ import annotations

import logging
import mmap
import os
import random
import struct
from pathlib import Path

log = logging.getLogger("pier")
FILE_NAME = "read-generation"
# Beside a SQLite database (every process that opens it shares it, whatever its data dir), moved only by
# writes that change a repository's row (created, deleted, its policy or catalog data set): what lets
# pushes keep the repository they name while other pushes write (core/access.py).
REPOSITORIES_SUFFIX = ".repository-generation"
_FORMAT = struct.Struct("=Q")


class WriteGeneration:
    def __init__(self, path: Path | None = None) -> None:
        self._local = random.getrandbits(64)
        self._map: mmap.mmap | None = None
        if path is not None:
            try:
                self._map = _open(path)
            except OSError as error:  # a read-only data dir: this process alone then
                log.warning("cannot share the read generation through %s (%s): this process only", path, error)

    @property
    def shared(self) -> bool:
        """Whether other processes see this number (else it lives in this process only)."""
        return self._map is not None

    def current(self) -> int:
        if self._map is None:
            return self._local
        return int(_FORMAT.unpack_from(self._map)[0])

    def bump(self) -> None:
        """After a write commits: every process sharing the file forgets what it read before."""
        value = random.getrandbits(64)
        if self._map is None:
            self._local = value
        else:
            _FORMAT.pack_into(self._map, 0, value)

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None


def _open(path: Path) -> mmap.mmap:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_size < _FORMAT.size:
            os.ftruncate(fd, _FORMAT.size)
        return mmap.mmap(fd, _FORMAT.size)
    finally:
        os.close(fd)
