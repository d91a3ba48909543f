"""What the storage tests share."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pier.storage.sql import SqlMetadataStore
from tests.backends import Backend, PostgresS3


@pytest.fixture
def metadata(tmp_path: Path, backend: Backend) -> Iterator[SqlMetadataStore]:
    """A metadata store of the backend's kind, used directly (its locking and its plans are the database's)."""
    if isinstance(backend, PostgresS3):
        name = f"pier_{uuid.uuid4().hex[:12]}"
        backend.postgres.create_database(name)
        store = SqlMetadataStore.from_url(f"{backend.postgres.url}/{name}")
    else:
        store = SqlMetadataStore.from_url(f"sqlite:///{tmp_path / 'pier.db'}")
    yield store
    store.close()
