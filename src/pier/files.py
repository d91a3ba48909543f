"""Durable file writes, shared by the filesystem blob store and backups: every byte written or an error
(os.write may store fewer bytes than given, which Python does not treat as an error), and folders synced
so the names in them survive a crash."""

from __future__ import annotations

import errno
import os
from pathlib import Path


def write_all(fd: int, data: bytes, offset: int | None = None) -> None:
    """Write every byte of data (at `offset`, or where the file stands), or raise. A disk that fills up
    mid-write stores fewer bytes than given: the rest is written by the next call, which then fails with
    ENOSPC if there is no room at all."""
    view = memoryview(data)
    while view:
        if offset is None:
            written = os.write(fd, view)
        else:
            written = os.pwrite(fd, view, offset)
            offset += written
        if written <= 0:
            raise OSError(errno.ENOSPC, "no room for the bytes written")
        view = view[written:]


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
