"""The blob store as the core sees it: content-addressed bytes, written then committed.

A writer hashes bytes as they arrive; only commit(digest) publishes them, and only when the digest
matches. cancel() (or a crash) leaves nothing visible. Readers get a local path where the store has one
(so the server can send the file without Python), a redirect URL where it has one (S3), else a stream.

Digests are sha256 or sha512 (pier.digests), and a blob is kept under the digest it was published as:
the same bytes pushed in both algorithms are two blobs. An upload is hashed as its bytes arrive in its
blob's algorithm when that is known (digest-algorithm, or a digest sent with the bytes), else in sha256
(digests.WHILE_UNKNOWN); a digest in an algorithm the running hash does not cover is verified by reading
the bytes again, as after a restart.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pier.digests import Hashes


class DigestMismatch(Exception):
    """commit(digest) was called with a digest the written bytes do not have."""

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"expected {expected}, got {actual}")
        self.expected = expected
        self.actual = actual


class UploadMissing(Exception):
    """The store holds no bytes for this upload (cancelled, finished, or never started)."""


class UploadBusy(Exception):
    """Another process is writing to or finishing this upload."""


@dataclass(frozen=True)
class StoredBlob:
    """A blob's bytes as the store lists them, recorded in the metadata store or not."""

    digest: str
    size: int
    modified: float  # when they were last written or touched, in seconds since the epoch


@dataclass(frozen=True)
class UploadLeftover:
    """Bytes of a write in progress as the store lists them, live or left behind by a crash."""

    name: str  # the store's own name for them: a path under its root, or an object key
    upload_id: str | None  # the upload they belong to; None for a write no upload row stands for
    modified: float  # when they were last written (or the S3 multipart upload initiated), since the epoch
    multipart_id: str | None = None  # an S3 multipart upload's id


@dataclass(frozen=True)
class BlobBytes:
    """A blob's bytes as stored now, to be read once (pier fsck checks them)."""

    size: int
    fingerprint: str  # names these very bytes: it changes whenever other bytes are put under the digest
    chunks: Iterator[bytes]


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
        """<algorithm>:<hex> of what was written so far, in the writer's algorithm."""

    def commit(self, expected_digest: str | None = None) -> str:
        """Publish durably under the digest; DigestMismatch (and nothing published) if it differs."""

    def cancel(self) -> None: ...


class BlobStore(Protocol):
    def ping(self) -> None:
        """Return if the store can be read and written now; raise what it raised otherwise (quickly)."""

    def free_bytes(self) -> int | None:
        """Free bytes on the store's disk, or None for object storage (no such limit to watch)."""

    def writer(self, algorithm: str = ...) -> BlobWriter:
        """A small blob written at once (logos), hashed in `algorithm` (sha256 unless said)."""

    def exists(self, digest: str) -> bool: ...

    def local_path(self, digest: str) -> Path | None:
        """A file the server may send as is, or None if this store keeps no local files."""

    def url(self, digest: str) -> str | None:
        """A URL clients may fetch the blob from directly (a presigned S3 GET), or None."""

    def read(self, digest: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes [start, end) in chunks."""

    def delete(self, digest: str) -> None: ...

    # Resumable uploads: bytes arrive in parts, possibly in several processes, across restarts.
    #
    # A request that writes to or finishes an upload holds it (acquire_upload ... release_upload) from
    # before it reads the upload's acknowledged size until after it has recorded the new one, so no two
    # processes ever write one upload at once, and a writer never starts from a size that was stale. In
    # one process the core lets one request at a time hold an upload; holding is counted, so that request
    # may acquire it again (to finish what it wrote).

    def acquire_upload(self, upload_id: str) -> None:
        """Hold the upload; UploadBusy (at once, never waiting) if another process holds it, UploadMissing
        if it is gone."""

    def release_upload(self, upload_id: str) -> None: ...

    def start_upload(self, upload_id: str, algorithm: str | None = None) -> None:
        """A new upload, whose blob will be named in `algorithm` (None: not known yet), made by its first
        bytes. Bytes already there that the caller holds (acquire_upload) start again from nothing;
        FileExistsError if another writer made it meanwhile (a store that can tell)."""

    def open_upload(self, upload_id: str, offset: int, algorithm: str | None = None) -> UploadWriter:
        """Append from `offset` (the acknowledged size, read while holding the upload; anything past it is
        dropped). UploadMissing if gone. `algorithm`: the blob's, when this request tells it (hashing in
        the others stops)."""

    def verify_upload(self, upload_id: str, size: int, expected_digest: str | None) -> str:
        """The digest of the upload's first `size` bytes (in the expected digest's algorithm; sha256 when
        None), now durable; DigestMismatch (upload kept) if not the expected one. The caller holds the
        upload until it has published it (or given up).

        After a crash between publishing and forgetting an upload, the expected blob counts as verified."""

    def publish_upload(self, upload_id: str, size: int, digest: str) -> None:
        """Make the verified upload the blob `digest`, atomically and durably, and forget the upload."""

    def cancel_upload(self, upload_id: str) -> None: ...

    def forget_hashes(self, upload_id: str) -> None:
        """Forget what this process hashed of the upload: the bytes it last wrote were not acknowledged (their
        size could not be recorded), and another process may write others in their place. Finishing then
        hashes what the store holds."""

    # Leftovers of writes that never finished (pier killed, a commit that failed). The store lists and
    # removes them; the core decides, from the metadata store, which are leftovers (core/gc.py).

    def upload_leftovers(self) -> Iterator[UploadLeftover]:
        """Every upload's bytes and every other write in progress the store holds, live or not."""

    def remove_upload_leftover(self, leftover: UploadLeftover, modified_before: float) -> bool:
        """Remove it, unless it was written since `modified_before`; whether it was removed."""

    def stored_blobs(self) -> Iterator[StoredBlob]:
        """Every published blob's bytes, recorded or not."""

    def remove_stored_blob(self, digest: str, modified_before: float) -> bool:
        """Remove the blob's bytes, unless they were written or touched since `modified_before` (a publish
        refreshes that time); whether they were removed."""

    # Scrub and backup (pier fsck, pier backup, pier restore). The core reads and hashes; the store says which
    # bytes it read (a fingerprint), moves bad ones aside, and copies files in and out.

    def open_blob(self, digest: str) -> AbstractContextManager[BlobBytes | None]:
        """The blob's bytes as stored now, with their fingerprint; None if the store has none."""

    def fingerprint(self, digest: str) -> str | None:
        """The fingerprint of the bytes stored under the digest now (as open_blob gives it), or None."""

    def quarantine_blob(self, digest: str, fingerprint: str) -> str | None:
        """Move the blob's bytes aside (under quarantine/, where nothing serves or lists them), if they are
        still the bytes `fingerprint` names; where they went, or None (gone, or replaced: nothing moved)."""

    def link_blob(self, digest: str, target: Path) -> bool:
        """Make `target` (a new file) a hard link to the blob's bytes, if the store keeps them in files on
        target's filesystem; False (nothing made) otherwise, and FileNotFoundError if it has no such blob."""

    def put_blob_file(self, digest: str, source: Path) -> None:
        """Publish the bytes of a local file (the caller verified them) as the blob, durably: a hard link where
        the store can, else a copy."""


def continue_hashes(
    hashes: dict[str, tuple[int, Hashes]], upload_id: str, offset: int, algorithm: str | None
) -> Hashes | None:
    """The upload's running hashes if this process has them at `offset`, taken from `hashes` (the writer puts
    them back on close), kept to `algorithm` when the blob's algorithm is known now; else None."""
    cached = hashes.pop(upload_id, None)
    if cached is None or cached[0] != offset:
        return None
    running = cached[1]
    if algorithm is not None:
        if not running.covers(algorithm):
            return None
        running.keep_only(algorithm)
    return running
