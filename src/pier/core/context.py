"""Core: the stores and settings every core function works with, built once by the app factory."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from pier.core import limits
from pier.core.accounts import Accounts
from pier.core.downloads import DownloadCounter
from pier.core.pullthrough import Rules
from pier.core.reads import PAGES_KEPT, Reads
from pier.core.tokens import TokenSigner
from pier.core.users import Directory
from pier.storage.blobs import BlobStore
from pier.storage.metadata import MetadataStore


class KeyedLocks:
    """One lock per key (an upload id), so two requests never append to one upload at once in a process.

    Across processes the metadata store's compare-and-set on the upload's size decides the winner.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    def try_acquire(self, key: str) -> bool:
        """Take the key's lock if it is free, without waiting; release() it later, from any thread."""
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            if not lock.acquire(blocking=False):
                return False
            self._locks[key] = (lock, users + 1)
            return True

    def release(self, key: str) -> None:
        with self._guard:
            lock, users = self._locks[key]
            lock.release()
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)


@dataclass
class Core:
    meta: MetadataStore
    blobs: BlobStore
    accounts: Accounts
    directory: Directory  # users and every access key, kept fresh (core/users.py)
    signer: TokenSigner
    public_url: str  # e.g. https://registry.example.com, no trailing slash
    public_host: str  # host[:port], the first part of every repositoryUri
    max_repositories: int
    max_images: int = limits.IMAGES_PER_REPOSITORY
    max_uploads: int = limits.UPLOADS_PER_REPOSITORY
    upload_expiry: float = limits.UPLOAD_EXPIRY_SECONDS
    locks: KeyedLocks = field(default_factory=lambda: KeyedLocks())
    downloads: DownloadCounter = field(default_factory=lambda: DownloadCounter())
    reads: Reads = field(init=False)  # answers of the hottest reads, kept while no write moved on (core/reads.py)
    pages: Reads = field(init=False)  # pages of listings (DescribeImages), the same way, fewer of them
    # The repositories pushes and pulls name, kept while no repository changed (core/access.py); None when
    # the store cannot tell that for every writer.
    repositories: Reads | None = field(init=False)
    pull_through: Rules = field(default_factory=Rules)  # pull-through cache rules, by account
    clock: Callable[[], float] = field(default=time.time)

    def __post_init__(self) -> None:
        self.reads = Reads(self.meta.write_generation)
        self.pages = Reads(self.meta.write_generation, size=PAGES_KEPT)
        self.repositories = None
        if self.meta.repository_generation() is not None:
            self.repositories = Reads(self._repository_generation)

    def _repository_generation(self) -> int:
        return self.meta.repository_generation() or 0
