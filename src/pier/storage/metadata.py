"""The metadata store as the core sees it: row types and one protocol.

storage/sql/ implements it for SQLite and PostgreSQL alike. Methods are small and transactional;
the core composes them. A method that would break a uniqueness rule raises Conflict.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
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
    last_pushed_at: float | None = None


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


@dataclass(frozen=True)
class ImageRow:
    id: int
    repository_id: int
    digest: str
    media_type: str
    artifact_media_type: str | None
    artifact_type: str | None
    subject_digest: str | None
    size: int
    pushed_at: float
    tags: tuple[str, ...] = ()
    manifest: bytes | None = None  # loaded only when asked for


@dataclass(frozen=True)
class TagRow:
    tag: str
    created_at: float
    image: ImageRow


@dataclass(frozen=True)
class NewImage:
    digest: str
    manifest: bytes
    media_type: str
    artifact_media_type: str | None
    artifact_type: str | None
    subject_digest: str | None
    size: int
    blob_media_types: Mapping[str, str]  # config and layer digests -> their media types
    child_digests: tuple[str, ...]  # for an index: the manifests it lists


class PutOutcome(enum.Enum):
    CREATED = "created"  # a new image (and its tag, if any)
    TAGGED = "tagged"  # the image existed; the tag is new or moved to it
    UNCHANGED = "unchanged"  # the image existed with this tag (or no tag was given)


@dataclass(frozen=True)
class UploadRow:
    id: str
    repository_id: int
    size: int
    last_part_size: int
    small_inner_part: bool
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class CachedTag:
    """A pull-through cache's tag: the digest the upstream last said it names, and when."""

    digest: str
    checked_at: float


@dataclass(frozen=True)
class CachedBlob:
    """A blob a cached manifest names (stored or not yet): what the manifest declares of it."""

    digest: str
    size: int
    media_type: str


class MetadataStore(Protocol):
    # Health

    def ping(self) -> None:
        """Return if the database answers a query; raise what it raised otherwise."""

    def free_bytes(self) -> int | None:
        """Free bytes where the database grows (its file's disk), or None when it is not local."""

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

    # The gallery's index
    def index_repository(self, repository_id: int, terms: Mapping[str, int], badges: set[tuple[str, str]]) -> None:
        """Replace the repository's search terms (term -> weight) and badges (kind, value)."""

    def search_repositories(
        self, words: Sequence[str], badges: set[tuple[str, str]], limit: int, offset: int
    ) -> list[tuple[RepositoryRow, int]]:
        """Repositories with a term starting with each word (all words), and every badge; best score first
        (the sum of the weights of each word's best match), then the most recent push."""

    def browse_repositories(
        self, registry_id: str | None, badges: set[tuple[str, str]], limit: int, offset: int
    ) -> list[RepositoryRow]:
        """Repositories (of one registry, or all) with every badge, the most recently pushed first."""

    def recent_tags(self, repository_id: int, limit: int) -> list[TagRow]:
        """The most recently created tags first, with their images (manifests included)."""

    # Garbage collection
    def collectable_blobs(self, touched_before: float, after: str | None, limit: int) -> list[tuple[str, int]]:
        """(digest, size) of blobs no image and no logo uses, untouched since `touched_before`, by digest."""

    def collect_blob(self, digest: str, touched_before: float, remove: Callable[[], None]) -> bool:
        """Forget the blob (if still collectable), then, once that is committed, call remove() to delete its
        bytes (unless the same blob was recorded again meanwhile). False, with nothing changed, if it was
        touched or came into use meanwhile."""

    def recorded_blobs(self, digests: Sequence[str]) -> set[str]:
        """Those of `digests` that have a row."""

    def recorded_uploads(self, upload_ids: Sequence[str]) -> set[str]:
        """Those of `upload_ids` that have a row."""

    def remove_unrecorded_blob(self, digest: str, size: int, remove: Callable[[], bool]) -> bool:
        """In one transaction: hold the blob's row, so that no one records (and publishes) the blob meanwhile,
        and call remove() to delete bytes no row records. False, with nothing changed, if a row records the
        blob or remove() kept the bytes."""

    # Signing keys
    def signing_keys(self) -> list[SigningKey]:
        """Every key, newest first."""

    def add_signing_key(self, key: SigningKey) -> None: ...

    def remove_signing_keys_except(self, key_id: str) -> None: ...

    # Blobs
    def add_blob(self, digest: str, size: int, created_at: float, publish: Callable[[], object] | None = None) -> None:
        """Record a blob; recording one twice is fine. publish(), if given, puts its bytes in place in the same
        transaction, after the row is written (as in finish_upload), so GC cannot take them meanwhile."""

    def get_blob_size(self, digest: str) -> int | None: ...

    # Blobs in repositories
    def link_blob(self, repository_id: int, digest: str, now: float) -> bool:
        """Let the repository use a blob that has a row (a mount), touching it; False, changing nothing, if
        the blob has no row (GC took it meanwhile): never a row without bytes."""

    def add_repository_blob(self, repository_id: int, digest: str, size: int, now: float) -> bool:
        """Record the blob (if new) and make it usable in the repository; False if it already was."""

    def get_repository_blobs(self, repository_id: int, digests: Sequence[str]) -> dict[str, tuple[int, str | None]]:
        """digest -> (size, media type if known) for those of `digests` the repository has."""

    def images_using_blob(self, repository_id: int, digest: str) -> list[str]:
        """Digests of the repository's images whose config or layers are `digest`."""

    def remove_repository_blob(self, repository_id: int, digest: str) -> None: ...

    # Images
    def put_image(
        self, repository_id: int, image: NewImage, tag: str | None, now: float, limit: int
    ) -> tuple[PutOutcome, ImageRow]:
        """Store the image if new (LimitExceeded past `limit` images) and point `tag` at it, atomically."""

    def get_image(
        self, repository_id: int, *, digest: str | None = None, tag: str | None = None, with_manifest: bool = False
    ) -> ImageRow | None: ...

    def get_images(self, repository_id: int, digests: Sequence[str]) -> list[ImageRow]: ...

    def list_images(self, repository_id: int, after_id: int | None, limit: int) -> list[ImageRow]:
        """Images in push order, with their tags, starting after image `after_id`."""

    def list_image_tags(self, repository_id: int, after_tag: str | None, limit: int) -> list[TagRow]:
        """Tags in name order, with their images, starting after `after_tag`."""

    def list_tag_names(self, repository_id: int, after_tag: str | None, limit: int) -> list[str]: ...

    def has_images(self, repository_id: int) -> bool: ...

    def referrers(self, repository_id: int, subject_digest: str) -> list[ImageRow]:
        """Images whose subject is `subject_digest`, with their manifests."""

    def indexes_referencing(self, repository_id: int, digest: str) -> list[str]:
        """Digests of the indexes in the repository that list `digest`."""

    def delete_image(self, image_id: int) -> None:
        """Delete the image and its tags."""

    def remove_tag(self, repository_id: int, tag: str) -> None: ...

    # Uploads
    def insert_upload(self, upload: UploadRow) -> None: ...

    def get_upload(self, upload_id: str) -> UploadRow | None: ...

    def advance_upload(
        self, upload_id: str, expected_size: int, new_size: int, now: float, small_inner_part: bool
    ) -> bool:
        """Record that the upload grew from expected_size to new_size; False if it was not at expected_size."""

    def delete_upload(self, upload_id: str) -> None: ...

    def upload_ids(self, repository_id: int) -> list[str]: ...

    def stale_uploads(self, updated_before: float) -> list[str]:
        """Uploads not written to since `updated_before`."""

    def finish_upload(
        self, upload_id: str, repository_id: int, digest: str, size: int, now: float, publish: Callable[[], None]
    ) -> bool:
        """In one transaction: record (or touch) the blob, call publish() to put its bytes in place, add it
        to the repository, forget the upload. False if the repository already had the blob."""

    # Pull-through caches

    def put_cached_image(
        self, repository_id: int, image: NewImage, blobs: Sequence[CachedBlob], tag: str | None, now: float, limit: int
    ) -> ImageRow:
        """Store a manifest fetched from a cache's upstream before its blobs are (they come when asked for):
        the image if new (LimitExceeded past `limit` images), what it names in `blobs`, the blobs of those
        that pier already stores linked into the repository and the image, and `tag` pointed at it and
        confirmed now. The image, with its manifest."""

    def cached_tag(self, repository_id: int, tag: str) -> CachedTag | None: ...

    def confirm_cached_tag(self, repository_id: int, tag: str, digest: str, now: float) -> None: ...

    def cached_blob(self, repository_id: int, digest: str) -> CachedBlob | None:
        """The blob as a cached image of the repository declares it."""

    def link_cached_blob(self, repository_id: int, digest: str, now: float) -> bool:
        """Let the repository, and its cached images that name it, use a stored blob, touching it; False,
        changing nothing, if the blob has no row."""

    def cached_total_size(self, registry_id: str, prefix: str) -> int:
        """Bytes of the distinct blobs the images of the registry's repositories under `prefix`/ use."""
