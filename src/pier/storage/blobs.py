"""The blob store as the core sees it: content-addressed bytes, written then committed.

A writer hashes bytes as they arrive; only commit(digest) publishes them, and only when the digest
matches. cancel() (or a crash) leaves nothing visible. Readers get a local path where the store has one
(so the server can send the file without Python), a redirect URL where it has one (S3), else a stream.
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


class UploadMissing(Exception):
    """The store holds no bytes for this upload (cancelled, finished, or never started)."""


class UploadWriter(Protocol):
    def write(self, data: bytes) -> None: ...

    def close(self) -> int:
        """The upload's total size, once what was written survives pier being killed (the part may then be
        acknowledged). Durable on disk only once verify_upload returns."""

    def abort(self) -> None:
        """Stop, keeping nothing of what this writer wrote (the upload stays at the offset it was opened at)."""


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
    def ping(self) -> None:
        """Return if the store can be read and written now; raise what it raised otherwise (quickly)."""

    def free_bytes(self) -> int | None:
        """Free bytes on the store's disk, or None for object storage (no such limit to watch)."""

    def writer(self) -> BlobWriter: ...

    def exists(self, digest: str) -> bool: ...

    def local_path(self, digest: str) -> Path | None:
        """A file the server may send as is, or None if this store keeps no local files."""

    def url(self, digest: str) -> str | None:
        """A URL clients may fetch the blob from directly (a presigned S3 GET), or None."""

    def read(self, digest: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes [start, end) in chunks."""

    def delete(self, digest: str) -> None: ...

    # Resumable uploads: bytes arrive in parts, possibly in several processes, across restarts.

    def start_upload(self, upload_id: str) -> None: ...

    def open_upload(self, upload_id: str, offset: int) -> UploadWriter:
        """Append from `offset` (the acknowledged size; anything past it is dropped). UploadMissing if gone."""

    def verify_upload(self, upload_id: str, size: int, expected_digest: str | None) -> str:
        """The digest of the upload's first `size` bytes, now durable; DigestMismatch (upload kept) if not
        the expected one.

        After a crash between publishing and forgetting an upload, the expected blob counts as verified."""

    def publish_upload(self, upload_id: str, size: int, digest: str) -> None:
        """Make the verified upload the blob `digest`, atomically and durably, and forget the upload."""

    def cancel_upload(self, upload_id: str) -> None: ...
