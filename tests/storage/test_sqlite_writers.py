"""SQLite writers that share one commit: each keeps or loses only its own changes."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from pier import errors
from pier.core.catalog import EMPTY
from pier.storage.sql import SqlMetadataStore

WRITERS = 16
ROUNDS = 20


def test_concurrent_writers_keep_their_own_changes_and_lose_only_their_own(tmp_path: Path) -> None:
    store = SqlMetadataStore.from_url(f"sqlite:///{tmp_path / 'pier.db'}")
    repositories = [store.insert_repository("123456789012", f"repo-{n}", 0.0, EMPTY, {}, 100) for n in range(WRITERS)]
    start = threading.Barrier(WRITERS)
    refused: list[int] = []

    def write(n: int) -> None:
        repository = repositories[n]
        start.wait()
        for round_ in range(ROUNDS):
            if n % 2:
                # Writes, then fails in the same transaction (too many tags): none of it may stay.
                with pytest.raises(errors.TooManyTags):
                    store.change_tags(repository.id, {f"k{i}": "v" for i in range(3)}, [], limit=2)
                refused.append(n)
            else:
                store.change_tags(repository.id, {f"round-{round_}": str(n)}, [], limit=100)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(refused) == WRITERS // 2 * ROUNDS
    for n, repository in enumerate(repositories):
        expected = {} if n % 2 else {f"round-{r}": str(n) for r in range(ROUNDS)}
        assert store.get_tags(repository.id) == expected
    store.close()

    reopened = SqlMetadataStore.from_url(f"sqlite:///{tmp_path / 'pier.db'}")  # committed, not just visible
    assert reopened.get_tags(repositories[0].id) == {f"round-{r}": "0" for r in range(ROUNDS)}
    reopened.close()
