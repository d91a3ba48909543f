"""Blob rows on both databases, through the metadata store used directly."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pier.core.catalog import EMPTY
from pier.storage.metadata import UploadRow
from pier.storage.sql import SqlMetadataStore
from tests.backends import Backend, PostgresS3
from tests.images import digest_of


@pytest.fixture
def metadata(tmp_path: Path, backend: Backend) -> Iterator[SqlMetadataStore]:
    """A metadata store of the backend's kind, used directly: the locking below is the database's."""
    if isinstance(backend, PostgresS3):
        name = f"pier_{uuid.uuid4().hex[:12]}"
        backend.postgres.create_database(name)
        store = SqlMetadataStore.from_url(f"{backend.postgres.url}/{name}")
    else:
        store = SqlMetadataStore.from_url(f"sqlite:///{tmp_path / 'pier.db'}")
    yield store
    store.close()


def _upload(store: SqlMetadataStore) -> tuple[int, str]:
    repository = store.insert_repository("123456789012", f"r{uuid.uuid4().hex[:8]}", 0.0, EMPTY, {}, 100)
    upload_id = str(uuid.uuid4())
    store.insert_upload(UploadRow(upload_id, repository.id, 3, 3, False, 0.0, 0.0))
    return repository.id, upload_id


def test_recording_a_blob_again_touches_it(metadata: SqlMetadataStore) -> None:
    """Uploading or mounting a blob again restarts its grace window (on PostgreSQL too)."""
    repository_id, _ = _upload(metadata)
    digest = digest_of(b"abc")
    assert metadata.add_repository_blob(repository_id, digest, 3, 100.0) is True
    assert metadata.add_repository_blob(repository_id, digest, 3, 200.0) is False
    assert metadata.collectable_blobs(150.0, None, 10) == []
    assert metadata.collectable_blobs(250.0, None, 10) == [(digest, 3)]
