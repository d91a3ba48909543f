"""The blob store as the core sees it: content-addressed bytes, written then committed.

A writer hashes bytes as they arrive; only commit(digest) publishes them, and only when the digest
matches. cancel() (or a crash) leaves nothing visible. Readers get a local path where the store has one
(so the server can send the file zero-copy), a redirect URL where it has one (S3), else a stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol


class DigestMismatch(Exception):
    """commit(digest) was called with a digest the written bytes do not have."""

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"expected {expected}, got {actual}")
        self.expected = expected
        self.actual = actual


class BlobWriter(Protocol):
    @property
    def size(self) -> int: ...

    def write(self, data: bytes) -> None: ...

    def digest(self) -> str:
        """sha256:<hex> of what was written so far."""

    def commit(self, expected_digest: str | None = None) -> str:
        """Publish durably under the digest; DigestMismatch (and nothing published) if it differs."""

    def cancel(self) -> None: ...


class BlobStore(Protocol):
    def writer(self) -> BlobWriter: ...

    def exists(self, digest: str) -> bool: ...

    def local_path(self, digest: str) -> Path | None:
        """A file the server may send as is, or None if this store keeps no local files."""

    def read(self, digest: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes [start, end) in chunks."""

    def delete(self, digest: str) -> None: ...
