"""Uploads in the blob stores, used directly as two pier processes would use them (two store objects over
one directory or one bucket prefix): a writer that was never acknowledged leaves what was acknowledged
as it was, two processes never write one upload at once, and a running hash is trusted only where the
store holds the very bytes it hashed."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pier.storage.blobs import DigestMismatch, UploadBusy
from pier.storage.blobs_fs import FLUSH_EVERY, FsBlobStore
from pier.storage.blobs_s3 import PART, S3BlobStore
from tests.backends import BUCKET, S3_KEYS, Backend, PostgresS3

MIB = 1024 * 1024


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def stores(tmp_path: Path, backend: Backend) -> Iterator[Callable[[], Any]]:
    """Makes store objects over one place, as separate pier processes have (filesystem, or S3 on moto)."""
    prefix = f"stores-{uuid.uuid4().hex[:8]}/"

    def make() -> Any:
        if isinstance(backend, PostgresS3):
            return S3BlobStore(
                BUCKET,
                prefix,
                endpoint_url=backend.s3.url,
                region=S3_KEYS["s3_region"],
                access_key_id=S3_KEYS["s3_access_key_id"],
                secret_access_key=S3_KEYS["s3_secret_access_key"],
            )
        return FsBlobStore(tmp_path / "blobs")

    yield make


def write(store: Any, upload_id: str, offset: int, data: bytes) -> int:
    """One request's bytes, written and closed (what acknowledging does before recording the size)."""
    store.acquire_upload(upload_id)
    try:
        writer = store.open_upload(upload_id, offset)
        writer.write(data)
        return int(writer.close())
    finally:
        store.release_upload(upload_id)


def test_a_write_never_acknowledged_leaves_the_acknowledged_bytes_alone(stores: Callable[[], Any]) -> None:
    """A request crosses a part boundary, then its size is never recorded (the database was away, or pier
    was killed): resuming from the acknowledged size must find the acknowledged bytes."""
    store = stores()
    upload_id = str(uuid.uuid4())
    store.start_upload(upload_id)
    first, lost, rest = os.urandom(4 * MIB), os.urandom(PART + MIB), os.urandom(6 * MIB)
    acknowledged = write(store, upload_id, 0, first)
    write(store, upload_id, acknowledged, lost)  # closed, but never recorded: not acknowledged
    size = write(store, upload_id, acknowledged, rest)
    store.acquire_upload(upload_id)
    try:
        assert store.verify_upload(upload_id, size, digest_of(first + rest)) == digest_of(first + rest)
    finally:
        store.release_upload(upload_id)


def test_two_processes_never_hold_one_upload_at_once(stores: Callable[[], Any], backend: Backend) -> None:
    if isinstance(backend, PostgresS3):
        pytest.skip("S3 has no lock; its stale writers are caught by the next test")
    one, other = stores(), stores()
    upload_id = str(uuid.uuid4())
    one.start_upload(upload_id)
    one.acquire_upload(upload_id)
    one.acquire_upload(upload_id)  # the same process again (writing, then finishing what it wrote)
    with pytest.raises(UploadBusy):
        other.acquire_upload(upload_id)
    one.release_upload(upload_id)
    with pytest.raises(UploadBusy):
        other.acquire_upload(upload_id)
    one.release_upload(upload_id)
    other.acquire_upload(upload_id)
    other.release_upload(upload_id)


def test_a_flush_beside_an_upload_does_not_keep_it_held(stores: Callable[[], Any], backend: Backend) -> None:
    """Past FLUSH_EVERY bytes, the filesystem store flushes the upload's file in a thread of its own, beside
    the transfer. Once the request that wrote them lets the upload go, the next request (here, or in another
    process) must get it at once, even while that flush runs: it used to be refused as busy, because the
    flush's descriptor shared the one that held the upload's lock."""
    if isinstance(backend, PostgresS3):
        pytest.skip("S3 has no lock and no flush")
    one, other = stores(), stores()
    upload_id = str(uuid.uuid4())
    one.start_upload(upload_id)
    size = write(one, upload_id, 0, os.urandom(FLUSH_EVERY + MIB))  # the flush starts, and is running still
    other.acquire_upload(upload_id)
    other.release_upload(upload_id)
    assert write(one, upload_id, size, os.urandom(MIB)) == size + MIB


def test_a_running_hash_is_not_trusted_over_bytes_another_process_replaced(
    stores: Callable[[], Any], backend: Backend
) -> None:
    """Process one hashed and sent the bytes; a second process, writing from a stale size, replaced some of
    them. Finishing in process one must not publish the replaced bytes under the hash of its own."""
    if not isinstance(backend, PostgresS3):
        pytest.skip("on disk a writer from a stale size is kept out by the lock (the test above)")
    one, other = stores(), stores()
    upload_id = str(uuid.uuid4())
    one.start_upload(upload_id)
    good = os.urandom(PART + 2 * MIB)
    size = write(one, upload_id, 0, good)
    write(other, upload_id, 0, os.urandom(PART + 3 * MIB))  # replaces part 1 and the tail after it
    one.acquire_upload(upload_id)
    try:
        with pytest.raises(DigestMismatch):
            one.verify_upload(upload_id, size, digest_of(good))
    finally:
        one.release_upload(upload_id)
