"""Core: the stores and settings every core function works with, built once by the app factory."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pier.core.accounts import Accounts
from pier.core.tokens import TokenSigner
from pier.storage.blobs import BlobStore
from pier.storage.metadata import MetadataStore


@dataclass
class Core:
    meta: MetadataStore
    blobs: BlobStore
    accounts: Accounts
    signer: TokenSigner
    public_url: str  # e.g. https://registry.example.com, no trailing slash
    public_host: str  # host[:port], the first part of every repositoryUri
    max_repositories: int
    clock: Callable[[], float] = field(default=time.time)
