"""Blob rows on both databases: recording a blob again touches it, and removing bytes no row records
holds the row, so a publish of the same blob waits (the database's locking, used directly)."""

from __future__ import annotations

import threading
import time
import uuid

from pier.core.catalog import EMPTY
from pier.storage.metadata import UploadRow
from pier.storage.sql import SqlMetadataStore
from tests.images import digest_of


def _upload(store: SqlMetadataStore) -> tuple[int, str]:
    repository = store.insert_repository("123456789012", f"r{uuid.uuid4().hex[:8]}", 0.0, EMPTY, {}, 100)
    upload_id = str(uuid.uuid4())
    store.insert_upload(UploadRow(upload_id, repository.id, 3, 3, False, 0.0, 0.0))
    return repository.id, upload_id


def test_a_publish_waits_while_gc_removes_unrecorded_bytes_of_the_same_blob(metadata: SqlMetadataStore) -> None:
    repository_id, upload_id = _upload(metadata)
    digest = digest_of(b"abc")
    events: list[str] = []
    removing, release = threading.Event(), threading.Event()

    def remove() -> bool:
        removing.set()
        release.wait(10)
        events.append("removed")
        return True

    sweep = threading.Thread(target=metadata.remove_unrecorded_blob, args=(digest, 3, remove))
    sweep.start()
    assert removing.wait(10)
    finish = threading.Thread(
        target=metadata.finish_upload,
        args=(upload_id, repository_id, digest, 3, time.time(), lambda: events.append("published")),
    )
    finish.start()
    time.sleep(0.5)
    assert events == []  # the publish waits for GC's transaction
    release.set()
    sweep.join(10)
    finish.join(10)
    assert events == ["removed", "published"]
    assert metadata.get_blob_size(digest) == 3


def test_gc_keeps_bytes_a_publish_in_progress_is_recording(metadata: SqlMetadataStore) -> None:
    repository_id, upload_id = _upload(metadata)
    digest = digest_of(b"abc")
    publishing, release = threading.Event(), threading.Event()
    removed: list[bool] = []

    def publish() -> None:
        publishing.set()
        release.wait(10)

    finish = threading.Thread(
        target=metadata.finish_upload, args=(upload_id, repository_id, digest, 3, time.time(), publish)
    )
    finish.start()
    assert publishing.wait(10)
    outcome: list[bool] = []

    def remove() -> bool:
        removed.append(True)
        return True

    sweep = threading.Thread(target=lambda: outcome.append(metadata.remove_unrecorded_blob(digest, 3, remove)))
    sweep.start()
    time.sleep(0.5)
    release.set()
    finish.join(10)
    sweep.join(10)
    assert outcome == [False] and removed == []
    assert metadata.get_blob_size(digest) == 3


def test_recording_a_blob_again_touches_it(metadata: SqlMetadataStore) -> None:
    """Uploading or mounting a blob again restarts its grace window (on PostgreSQL too)."""
    repository_id, _ = _upload(metadata)
    digest = digest_of(b"abc")
    assert metadata.add_repository_blob(repository_id, digest, 3, 100.0) is True
    assert metadata.add_repository_blob(repository_id, digest, 3, 200.0) is False
    assert metadata.collectable_blobs(150.0, None, 10) == []
    assert metadata.collectable_blobs(250.0, None, 10) == [(digest, 3)]
