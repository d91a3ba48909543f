"""Download counts on both databases: batches are added (never set), a batch written twice counts once, and
counts of a repository deleted meanwhile are dropped without failing the batch."""

from __future__ import annotations

import threading
import uuid

from pier.core.catalog import EMPTY
from pier.storage.sql import SqlMetadataStore

REGISTRY = "123456789012"


def test_a_batch_written_again_is_not_counted_again(metadata: SqlMetadataStore) -> None:
    repository = metadata.insert_repository(REGISTRY, "counted", 0.0, EMPTY, {}, 100)
    batch = {(repository.id, "sha256:" + "a" * 64): 3, (repository.id, "sha256:" + "b" * 64): 2}
    assert metadata.add_downloads("batch-1", batch, 100.0) is True
    assert metadata.add_downloads("batch-1", batch, 101.0) is False  # its fate was unclear: sent again
    assert metadata.add_downloads("batch-2", {(repository.id, "sha256:" + "a" * 64): 1}, 102.0) is True
    assert metadata.image_downloads(repository.id, ["sha256:" + "a" * 64, "sha256:" + "b" * 64, "sha256:c"]) == {
        "sha256:" + "a" * 64: 4,
        "sha256:" + "b" * 64: 2,
    }
    got = metadata.get_repository(REGISTRY, "counted")
    assert got is not None and got.downloads == 6
    assert metadata.registry_downloads(REGISTRY) == 6


def test_processes_adding_at_once_lose_nothing(metadata: SqlMetadataStore) -> None:
    """Counts are added to what the row holds, in the database: writers at once never overwrite each other."""
    repository = metadata.insert_repository(REGISTRY, "busy", 0.0, EMPTY, {}, 100)
    key = (repository.id, "sha256:" + "d" * 64)

    def writer() -> None:
        for _ in range(10):
            metadata.add_downloads(uuid.uuid4().hex, {key: 1}, 100.0)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert metadata.image_downloads(repository.id, [key[1]]) == {key[1]: 40}


def test_counts_of_a_deleted_repository_are_dropped(metadata: SqlMetadataStore) -> None:
    kept = metadata.insert_repository(REGISTRY, "kept", 0.0, EMPTY, {}, 100)
    gone = metadata.insert_repository(REGISTRY, "gone", 0.0, EMPTY, {}, 100)
    metadata.delete_repository(gone.id)
    batch = {(kept.id, "sha256:" + "e" * 64): 2, (gone.id, "sha256:" + "e" * 64): 5}
    assert metadata.add_downloads("batch-3", batch, 100.0) is True
    assert metadata.registry_downloads(REGISTRY) == 2
    assert metadata.image_downloads(gone.id, ["sha256:" + "e" * 64]) == {}
