"""Pull-through caches: repositories under a rule's prefix mirror a repository of another registry.

A rule (`[[pull_through]]` in pier.toml) says that `<alias>/<prefix>/<name>` is a read-only copy of
`<upstream>/<upstream_namespace>/<name>`. What a client asks for is fetched from the upstream on first use
(by pier/pullthrough, which speaks the distribution API) and kept here as real images and blobs: the
manifests byte for byte, each blob through the same upload path a push takes (verified, durable, GC-safe).

Here are the decisions and the records, without HTTP: which rule a name falls under, whether a cached tag
is fresh, what may be fetched (size limits) and by whom, and how a fetched manifest or blob is stored. A
cached image is stored before its blobs are: they are fetched when a client asks for them (an index's
platform manifests too), so `image_blobs` lists the blobs a cached image has so far, and
`pull_through_blobs` all those its manifest names (storage/sql/pullthrough.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pier import digests, errors
from pier.core import limits, manifests
from pier.storage.metadata import CachedBlob, CachedTag, CatalogRow, Conflict, ImageRow, RepositoryRow

if TYPE_CHECKING:  # core/context.py holds the rules, so this module cannot import it when it runs
    from pier.core.context import Core

DEFAULT_TAG_TTL_SECONDS = 300
# The ECR operations that write into a repository: refused in a cache, whose content only its upstream sets.
WRITES = frozenset({"InitiateLayerUpload", "UploadLayerPart", "CompleteLayerUpload", "PutImage"})


@dataclass(frozen=True)
class Credentials:
    """The names of the environment variables that hold the upstream's username and password (never the
    values: those are read where they are used, and never logged)."""

    username_env: str
    password_env: str


@dataclass(frozen=True)
class Rule:
    prefix: str  # repository names under <alias>/<prefix>/ are this rule's
    upstream: str  # scheme://host[:port] of a distribution-spec registry
    upstream_namespace: str | None = None  # put before the name upstream (Docker Hub's "library")
    tag_ttl_seconds: int = DEFAULT_TAG_TTL_SECONDS
    credentials: Credentials | None = None
    allow_anonymous_pull_through: bool = False
    max_layer_size_bytes: int | None = None
    max_total_size_bytes: int | None = None

    @property
    def upstream_host(self) -> str:
        """host[:port], as clients name the registry."""
        return urlsplit(self.upstream).netloc

    def covers(self, name: str) -> bool:
        return name.startswith(self.prefix + "/") and len(name) > len(self.prefix) + 1

    def upstream_repository(self, name: str) -> str:
        """The upstream's name for the cache repository `name` (<prefix>/<rest>)."""
        rest = name[len(self.prefix) + 1 :]
        return f"{self.upstream_namespace}/{rest}" if self.upstream_namespace else rest

    def source(self, name: str) -> str:
        """What the cache repository mirrors, as a client would name it: <upstream host>/<repository>."""
        return f"{self.upstream_host}/{self.upstream_repository(name)}"


@dataclass(frozen=True)
class Rules:
    """Every account's rules (they come from the config and never change while serving)."""

    by_account: dict[str, tuple[Rule, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, rules: Iterable[tuple[str, Rule]]) -> Rules:
        grouped: dict[str, tuple[Rule, ...]] = {}
        for account_id, rule in rules:
            grouped[account_id] = (*grouped.get(account_id, ()), rule)
        return cls(grouped)

    def for_repository(self, registry_id: str, name: str) -> Rule | None:
        for rule in self.by_account.get(registry_id, ()):
            if rule.covers(name):
                return rule
        return None

    def all(self) -> Iterable[tuple[str, Rule]]:
        for account_id, rules in self.by_account.items():
            for rule in rules:
                yield account_id, rule


def refuse_writes(core: Core, registry_id: str, name: str, action: str | None) -> None:
    """ReadOnlyCache for an action that would write into a cache repository (whether it exists or not)."""
    if (
        action is not None
        and action.removeprefix("ecr-public:") in WRITES
        and (rule := core.pull_through.for_repository(registry_id, name)) is not None
    ):
        raise errors.ReadOnlyCache(name, rule.source(name))


def is_fresh(rule: Rule, tag: CachedTag, now: float) -> bool:
    """Whether a tag's resolution is still trusted without asking the upstream."""
    return now - tag.checked_at < rule.tag_ttl_seconds


# What is cached


def cached_tag(core: Core, repository: RepositoryRow, tag: str) -> tuple[ImageRow, CachedTag | None] | None:
    """The image a cached tag points at (with its manifest), and when the upstream last confirmed it."""
    image = core.meta.get_image(repository.id, tag=tag, with_manifest=True)
    if image is None:
        return None
    checked = core.meta.cached_tag(repository.id, tag)
    if checked is not None and checked.digest != image.digest:
        checked = None  # the tag was moved here by other means: let the upstream decide
    return image, checked


def cached_image(core: Core, repository: RepositoryRow, digest: str) -> ImageRow | None:
    return core.meta.get_image(repository.id, digest=digest, with_manifest=True)


def confirm_tag(core: Core, repository: RepositoryRow, tag: str, digest: str) -> None:
    """The upstream said the tag still names `digest`: trust it for another tag_ttl_seconds."""
    core.meta.confirm_cached_tag(repository.id, tag, digest, core.clock())


def declared_blob(core: Core, repository: RepositoryRow, digest: str) -> CachedBlob | None:
    """The blob as a cached manifest of the repository describes it (its size), if one names it."""
    return core.meta.cached_blob(repository.id, digest)


# Storing what was fetched


def ensure_repository(core: Core, registry_id: str, name: str) -> RepositoryRow:
    """The cache repository, created on first use (as ECR's pull-through cache rules do)."""
    row = core.meta.get_repository(registry_id, name)
    if row is not None:
        return row
    from pier.core import search_index  # here: it imports core/context.py, which imports this module

    try:
        row = core.meta.insert_repository(registry_id, name, core.clock(), CatalogRow(), {}, core.max_repositories)
    except Conflict:  # created by another request meanwhile
        row = core.meta.get_repository(registry_id, name)
        if row is None:
            raise
        return row
    search_index.index(core, row)  # found by the gallery's search, as any repository
    return row


def check_manifest_digest(data: bytes, reference: str, announced: str | None, host: str) -> str:
    """The digest of fetched manifest bytes, once they are what was asked for: the digest the client named
    (a digest reference), else the one the upstream announced (Docker-Content-Digest), if any."""
    expected = reference if ":" in reference else announced
    if expected is not None and digests.problem(expected) is not None:
        detail = f"announced a digest pier cannot use: {expected!r}"[:300]
        raise errors.UpstreamFailed(host, errors.UpstreamFailed.INVALID, detail)
    actual = digests.of(data, digests.algorithm_of(expected) if expected else digests.CANONICAL)
    if expected is not None and actual != expected:
        raise errors.UpstreamFailed(
            host, errors.UpstreamFailed.INVALID, f"sent a manifest whose digest is {actual}, not {expected}"
        )
    return actual


def store_manifest(
    core: Core,
    rule: Rule,
    registry_id: str,
    name: str,
    data: bytes,
    media_type: str | None,
    reference: str,
    announced_digest: str | None,
) -> ImageRow:
    """Keep a manifest fetched from the upstream (tagged when `reference` is a tag), once its bytes are
    verified and its layers within the rule's limit; the stored image, with its manifest."""
    host = rule.upstream_host
    if len(data) > limits.MANIFEST_MAX_BYTES:
        raise errors.UpstreamFailed(host, errors.UpstreamFailed.INVALID, "sent a manifest larger than 4 MiB")
    digest = check_manifest_digest(data, reference, announced_digest, host)
    try:
        manifest = manifests.parse(data, media_type if media_type in manifests.MANIFEST_TYPES else None)
    except errors.InvalidParameter as invalid:
        detail = f"sent a manifest pier cannot use: {invalid}"
        raise errors.UpstreamFailed(host, errors.UpstreamFailed.INVALID, detail) from None
    for blob in manifest.blobs:
        check_layer_size(rule, name, blob.digest, blob.size)
    tag = None if ":" in reference else reference
    if tag is not None and not limits.is_image_tag(tag):
        raise errors.ImageNotFound(registry_id, name, reference)
    repository = ensure_repository(core, registry_id, name)
    # An index's children may not be cached yet: its size is the largest its entries declare.
    image = manifests.new_image(manifest, digest, data, max((m.size for m in manifest.manifests), default=0))
    declared = [CachedBlob(d.digest, d.size, d.media_type) for d in manifest.blobs]
    return core.meta.put_cached_image(repository.id, image, declared, tag, core.clock(), core.max_images)


def check_layer_size(rule: Rule, name: str, digest: str, size: int) -> None:
    if rule.max_layer_size_bytes is not None and size > rule.max_layer_size_bytes:
        raise errors.LayerTooLarge(rule.prefix, rule.source(name), digest, size, rule.max_layer_size_bytes)


def check_room(core: Core, rule: Rule, registry_id: str, name: str, digest: str, size: int, in_flight: int) -> None:
    """Refuse a blob the rule's limits do not let in: larger than max_layer_size_bytes, or more than what
    max_total_size_bytes leaves (the blobs the rule's cached images use, each once, and those being
    fetched by this process)."""
    check_layer_size(rule, name, digest, size)
    if rule.max_total_size_bytes is None:
        return
    used = core.meta.cached_total_size(registry_id, rule.prefix) + in_flight
    if used + size > rule.max_total_size_bytes:
        raise errors.CacheFull(rule.prefix, digest, size, used, rule.max_total_size_bytes)


def link_blob(core: Core, repository: RepositoryRow, digest: str) -> bool:
    """Let the cache repository and its cached images use a blob pier has stored; False if it has not."""
    if (problem := digests.problem(digest)) is not None:
        raise errors.DigestInvalid(problem)
    return core.meta.link_cached_blob(repository.id, digest, core.clock())


def index_child(image: ImageRow, accepted: set[str]) -> str | None:
    """For a client that cannot take an index: the digest of its linux/amd64 manifest, if it takes that
    one's type (what Docker registries have always answered)."""
    if image.media_type not in manifests.INDEX_TYPES or image.manifest is None:
        return None
    index = manifests.parse(image.manifest, image.media_type)
    for entry in index.manifests:
        platform = entry.platform or {}
        if entry.media_type in accepted and (platform.get("os"), platform.get("architecture")) == ("linux", "amd64"):
            return entry.digest
    return None
