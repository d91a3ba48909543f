"""The metadata store as the core sees it: row types and one protocol.

storage/sql/ implements it for SQLite and PostgreSQL alike. Methods are small and transactional;
the core composes them. A method that would break a uniqueness rule raises Conflict.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


class Conflict(Exception):
    """A row with the same identity already exists."""


class SnapshotUnsupported(Exception):
    """This database cannot be copied by pier (PostgreSQL: use pg_dump)."""


@dataclass(frozen=True)
class RepositoryRow:
    id: int
    registry_id: str
    name: str
    created_at: float
    policy_text: str | None
    catalog: CatalogRow
    last_pushed_at: float | None = None
    downloads: int = 0


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
class UserRow:
    """An IAM user of an account, managed with `pier users` (pier.toml's users have no row)."""

    account_id: str
    name: str
    user_id: str  # unique for ever: a user deleted and created again under its name is another user
    policy_text: str | None  # its identity policy, as given
    created_at: float


@dataclass(frozen=True)
class AccessKeyRow:
    access_key_id: str
    account_id: str
    user_name: str
    secret: str  # as sealed by core/secrets.py: never the bare secret when PIER_SECRETS_KEY is set
    created_at: float

    def __repr__(self) -> str:  # never print the secret
        return f"AccessKeyRow(access_key_id={self.access_key_id!r}, user={self.account_id}/{self.user_name})"


@dataclass(frozen=True)
class UserRows:
    """Every user and access key, as of one generation of the users tables."""

    generation: int
    users: list[UserRow]
    keys: list[AccessKeyRow]


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
class ImageDetails:
    """What the gallery shows about an image, gathered once when it is pushed (core/image_details.py)."""

    version: int
    platforms: tuple[str, ...]  # os/architecture[/variant]: an image's own, or those an index lists
    artifact_kind: str | None  # for an artifact that refers to another: signature, sbom, attestation, other
    facts: Mapping[str, Any]  # JSON-able: config facts, artifact format, ...


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
    details: ImageDetails | None = None  # stored with the image, in its transaction


class PutOutcome(enum.Enum):
    CREATED = "created"  # a new image (and its tag, if any)
    TAGGED = "tagged"  # the image existed; the tag is new or moved to it
    UNCHANGED = "unchanged"  # the image existed with this tag (or no tag was given)


# An upload row's size once the upload is finished or cancelled: the row stays until the upload expiry,
# so that its id (which proves itself: core/upload_ids.py) cannot start again.
UPLOAD_ENDED = -1


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
class BlobRecord:
    digest: str
    size: int
    lost_at: float | None  # when fsck --repair forgot its missing or corrupt bytes; None while they are there


@dataclass(frozen=True)
class BlobUse:
    """Something that needs a blob: an image (its config or a layer), or a repository's logo."""

    blob: str
    repository_id: int
    registry_id: str
    repository: str
    image: str | None  # the image's digest; None for the repository's logo
    tags: tuple[str, ...] = ()


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

    def write_generation(self) -> int:
        """A number that changes once any write transaction of any process on this host has ended
        (storage/generation.py): what was read under another number may be stale."""

    def repository_generation(self) -> int | None:
        """A number that changes once any transaction that created or deleted a repository, or set its
        policy or catalog data, has ended, in any process that writes this store; None when the store
        cannot vouch for every writer (one shared by several hosts). Pushes and downloads do not move it:
        a repository's last_pushed_at and downloads read under it may be old."""

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
        self, words: Sequence[str], badges: set[tuple[str, str]], limit: int, offset: int, sort: str = "relevance"
    ) -> list[tuple[RepositoryRow, int]]:
        """Repositories with a term starting with each word (all words), and every badge, in `sort` order:
        "relevance" is the best score first (the sum of the weights of each word's best match); "downloads",
        "pushed" and "name" sort by that first, then by score. Ties: the most recent push first."""

    def browse_repositories(
        self, registry_id: str | None, badges: set[tuple[str, str]], limit: int, offset: int, sort: str = "pushed"
    ) -> list[RepositoryRow]:
        """Repositories (of one registry, or all) with every badge: "downloads" most first, "pushed" the most
        recently pushed first, or by "name"."""

    def tag_page(
        self, repository_id: int, sort: str, after: tuple[float, str] | str | None, limit: int
    ) -> list[TagRow]:
        """A page of tags with their images (without manifests or tags): sort "pushed", newest first (ties by
        name, descending), after (created_at, tag); or "name", after a name."""

    def tag_exists(self, repository_id: int, tag: str) -> bool: ...

    def latest_tagged_images(self, repository_ids: Sequence[int]) -> dict[int, int]:
        """repository id -> id of the image its most recently pushed tag names (artifacts with a subject
        are not counted as images)."""

    # Image details (gathered at push time; the gallery's pages read them, never blobs)
    def image_details(self, image_ids: Sequence[int]) -> dict[int, ImageDetails]: ...

    def images_with_manifests(self, repository_id: int, digests: Sequence[str]) -> list[ImageRow]:
        """The repository's images of those digests, manifests included, without their tags."""

    def image_for_page(
        self, repository_id: int, *, digest: str | None = None, tag: str | None = None
    ) -> ImageRow | None:
        """The image a tag or digest names, manifest included, tags not."""

    def image_tag_names(self, image_id: int, limit: int) -> tuple[list[str], int]:
        """The image's first `limit` tags by name, and how many there are."""

    def images_without_details(self, after_id: int, limit: int) -> list[ImageRow]:
        """Images (manifests included, tags not) with an id above `after_id` and no details, by id."""

    def add_image_details(self, found: Sequence[tuple[int, ImageDetails]]) -> None:
        """Keep details gathered after the push (image id, details); an existing row wins; an image that is
        gone gets none."""

    def referring_images(
        self, repository_id: int, subjects: Sequence[str]
    ) -> list[tuple[ImageRow, ImageDetails | None]]:
        """Images whose subject is one of `subjects`, oldest first, with their details if any."""

    def images_referred_to_by(self, image_ids: Sequence[int], kind: str) -> set[int]:
        """Those of `image_ids` referred to by an artifact of `kind` in their repository, directly or through
        a manifest they list."""

    # Downloads
    def add_downloads(self, batch_id: str, counts: Mapping[tuple[int, str], int], now: float) -> bool:
        """Add (repository id, digest) -> count to images and repositories, in one transaction, unless the
        batch `batch_id` was added before (then False, nothing changed)."""

    def image_downloads(self, repository_id: int, digests: Sequence[str]) -> dict[str, int]: ...

    def registry_downloads(self, registry_id: str) -> int: ...

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

    # Scrub (pier fsck)
    def blob_records(self, after: str | None, limit: int) -> list[BlobRecord]:
        """Every blob's row, lost or not, by digest, starting after `after`."""

    def forget_blob(self, digest: str, now: float, confirm: Callable[[], bool]) -> bool | None:
        """In one transaction: hold the blob's row, so that no one publishes the blob meanwhile, call confirm()
        (which looks at the bytes again, and may move them aside), and if it says so, mark the blob lost (no
        repository serves or mounts it; its next publish brings it back for all). Whether it was marked (False:
        nothing changed); None if the blob has no row (GC took it)."""

    def blob_users(self, digests: Sequence[str]) -> list[BlobUse]:
        """The images (with their tags) and the repository logos that need any of `digests`."""

    # Backup (pier backup)
    def snapshot(self, target: Path) -> None:
        """Write a consistent copy of all the metadata, as of one moment, to a new SQLite database at `target`
        while others go on writing, leaving out uploads in progress; SnapshotUnsupported for a database pier
        cannot copy (PostgreSQL)."""

    # Signing keys
    def signing_keys(self) -> list[SigningKey]:
        """Every key, newest first."""

    def add_signing_key(self, key: SigningKey) -> None: ...

    def remove_signing_keys_except(self, key_id: str) -> None: ...

    # Users and their access keys. Every change bumps one generation counter in its own transaction, so a
    # process learns whether anything changed from one small read.
    def user_rows(self, unless_generation: int | None = None) -> UserRows | None:
        """Every user and key, read in one snapshot; None if the generation is still `unless_generation`."""

    def insert_user(self, user: UserRow, key: AccessKeyRow | None) -> None:
        """Insert the user (and its first key); Conflict if the name (or the key id) is taken."""

    def set_user_policy(self, account_id: str, name: str, policy_text: str | None) -> bool:
        """False if there is no such user."""

    def insert_access_key(self, key: AccessKeyRow, limit: int) -> bool:
        """False if the user does not exist; LimitExceeded if it has `limit` keys; Conflict if the id is taken."""

    def delete_access_key(self, account_id: str, name: str, access_key_id: str) -> bool:
        """False if the user has no such key."""

    def delete_user(self, account_id: str, name: str) -> bool:
        """Delete the user and its keys; False if there is no such user."""

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
        self,
        repository_id: int,
        image: NewImage,
        tag: str | None,
        now: float,
        limit: int,
        also_tag: Sequence[str] = (),
    ) -> tuple[PutOutcome, ImageRow]:
        """Store the image if new (LimitExceeded past `limit` images) and point `tag`, and every tag of
        `also_tag`, at it, atomically."""

    def get_image(
        self, repository_id: int, *, digest: str | None = None, tag: str | None = None, with_manifest: bool = False
    ) -> ImageRow | None: ...

    def image_exists(self, repository_id: int, digest: str) -> bool: ...

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
    def insert_upload(self, upload: UploadRow, max_in_repository: int | None = None) -> bool:
        """Record an upload (at its first acknowledged bytes), unless a row has its id already (in progress
        or ended); with max_in_repository, only if its repository has fewer uploads in progress than that,
        counted in the transaction that inserts (False: nothing inserted)."""

    def get_upload(self, upload_id: str) -> UploadRow | None:
        """The upload's row, in progress or ended (size UPLOAD_ENDED)."""

    def advance_upload(
        self, upload_id: str, expected_size: int, new_size: int, now: float, small_inner_part: bool
    ) -> bool:
        """Record that the upload grew from expected_size to new_size; False if it was not at expected_size."""

    def delete_upload(self, upload_id: str) -> None: ...

    def end_upload(self, upload_id: str, repository_id: int, now: float) -> None:
        """The upload is over (cancelled): its row, written if it had none, says so until it expires."""

    def forget_ended_uploads(self, updated_before: float) -> int:
        """Delete the rows of uploads that ended before `updated_before`; how many."""

    def upload_ids(self, repository_id: int) -> list[str]:
        """The repository's uploads in progress."""

    def count_uploads(self) -> int:
        """Uploads in progress in the whole registry (holding acknowledged bytes, not yet ended or expired)."""

    def stale_uploads(self, updated_before: float) -> list[str]:
        """Uploads in progress not written to since `updated_before`."""

    def finish_upload(
        self,
        upload_id: str,
        repository_id: int,
        digest: str,
        size: int,
        now: float,
        publish: Callable[[], None],
        recorded: bool = True,
    ) -> bool:
        """In one transaction: record (or touch) the blob, call publish() to put its bytes in place, add it
        to the repository, end the upload (`recorded`: it has a row; else one is written, marked ended).
        False if the repository already had the blob."""

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
