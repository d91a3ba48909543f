"""The metadata store as the core sees it: row types and one protocol.

storage/sql.py implements it for SQLite and PostgreSQL alike. Methods are small and transactional;
the core composes them. A method that would break a uniqueness rule raises Conflict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


class Conflict(Exception):
    """A row with the same identity already exists."""


@dataclass(frozen=True)
class RepositoryRow:
    id: int
    registry_id: str
    name: str
    created_at: float
    policy_text: str | None
    catalog: CatalogRow


@dataclass(frozen=True)
class CatalogRow:
    """A repository's catalog data; None means never set."""

    description: str | None = None
    about_text: str | None = None
    usage_text: str | None = None
    architectures: tuple[str, ...] = ()
    operating_systems: tuple[str, ...] = ()
    logo_digest: str | None = None
    is_set: bool = False


@dataclass(frozen=True)
class SigningKey:
    key_id: str
    secret: bytes
    created_at: float


class MetadataStore(Protocol):
    # Repositories
    def insert_repository(
        self, registry_id: str, name: str, created_at: float, catalog: CatalogRow, tags: Mapping[str, str], limit: int
    ) -> RepositoryRow:
        """Insert; Conflict when the name is taken, LimitExceeded past `limit` repositories."""

    def get_repository(self, registry_id: str, name: str) -> RepositoryRow | None: ...

    def list_repositories(self, registry_id: str, after: str | None, limit: int) -> list[RepositoryRow]:
        """Repositories ordered by name, starting after `after`."""

    def delete_repository(self, repository_id: int) -> None: ...

    def set_policy(self, repository_id: int, policy_text: str | None) -> None: ...

    def set_catalog(self, repository_id: int, catalog: CatalogRow) -> None: ...

    # Resource tags
    def get_tags(self, repository_id: int) -> dict[str, str]: ...

    def change_tags(self, repository_id: int, put: Mapping[str, str], remove: Sequence[str], limit: int) -> None:
        """Apply in one transaction; TooManyTags when the result would exceed `limit`."""

    # Registries
    def get_registry_display_name(self, registry_id: str) -> str | None: ...

    def set_registry_display_name(self, registry_id: str, display_name: str) -> None: ...

    # Signing keys
    def signing_keys(self) -> list[SigningKey]:
        """Every key, newest first."""

    def add_signing_key(self, key: SigningKey) -> None: ...

    # Blobs
    def add_blob(self, digest: str, size: int, created_at: float) -> None:
        """Record a blob; recording one twice is fine."""

    def get_blob_size(self, digest: str) -> int | None: ...
