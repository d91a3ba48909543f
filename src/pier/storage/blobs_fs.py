"""Blobs on a local filesystem.

Layout under the root, drawn once here:
    sha256/<first two hex>/<hex>    a published blob, never modified
    tmp/<random>                    a write in progress; removed on cancel, ignored after a crash
A blob is written to tmp/, fsynced, then os.replace()d to its final name and the directory fsynced,
so a crash at any moment leaves either the whole blob or nothing under sha256/.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from pier.digests import is_sha256
from pier.storage.blobs import DigestMismatch

CHUNK = 1024 * 1024


class FsBlobWriter:
    def __init__(self, store: FsBlobStore) -> None:
        self._store = store
        self._path = store.tmp_dir / secrets.token_hex(16)
        self._file = open(self._path, "xb", buffering=0)  # noqa: SIM115 - closed by commit/cancel
        self._hash = hashlib.sha256()
        self._size = 0

    @property
    def size(self) -> int:
        return self._size

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._hash.update(data)
        self._size += len(data)

    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def commit(self, expected_digest: str | None = None) -> str:
        digest = self.digest()
        if expected_digest is not None and expected_digest != digest:
            self.cancel()
            raise DigestMismatch(expected_digest, digest)
        os.fsync(self._file.fileno())
        self._file.close()
        final = self._store.path_of(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._path, final)
        _fsync_dir(final.parent)
        return digest

    def cancel(self) -> None:
        if not self._file.closed:
            self._file.close()
        self._path.unlink(missing_ok=True)


class FsBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp_dir = root / "tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        (root / "sha256").mkdir(exist_ok=True)

    def path_of(self, digest: str) -> Path:
        # The core checks digests before they get here; this guards the path anyway.
        if not is_sha256(digest):
            raise ValueError(f"not a sha256 digest: {digest!r}")
        hex_digest = digest[len("sha256:") :]
        return self.root / "sha256" / hex_digest[:2] / hex_digest

    def writer(self) -> FsBlobWriter:
        return FsBlobWriter(self)

    def exists(self, digest: str) -> bool:
        return self.path_of(digest).is_file()

    def local_path(self, digest: str) -> Path | None:
        path = self.path_of(digest)
        return path if path.is_file() else None

    def read(self, digest: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        with open(self.path_of(digest), "rb") as handle:
            handle.seek(start)
            remaining = None if end is None else end - start
            while remaining is None or remaining > 0:
                chunk = handle.read(CHUNK if remaining is None else min(CHUNK, remaining))
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    def delete(self, digest: str) -> None:
        self.path_of(digest).unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
