"""Images: put a manifest (with a tag), describe images and tags, delete by tag or digest.

PutImage through the API and a manifest PUT through /v2/ are both put_image: one set of rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pier import digests, errors
from pier.core import image_details, limits, manifests, pagination
from pier.core.access import find_repository
from pier.core.blobs import check_digest
from pier.core.context import Core
from pier.core.principals import Caller
from pier.core.reads import NotInMemory, remembered
from pier.storage.metadata import ImageRow, PutOutcome, RepositoryRow, TagRow


@dataclass(frozen=True)
class ImageId:
    digest: str | None = None
    tag: str | None = None

    def __str__(self) -> str:
        parts = [f"imageDigest={self.digest}"] if self.digest else []
        parts += [f"imageTag={self.tag}"] if self.tag else []
        return "{" + ", ".join(parts) + "}"


@dataclass(frozen=True)
class PutResult:
    registry_id: str
    repository_name: str
    digest: str
    tag: str | None
    manifest: bytes
    media_type: str
    outcome: PutOutcome
    subject_digest: str | None


@dataclass(frozen=True)
class Failure:
    image_id: ImageId
    code: str  # ECR's ImageFailureCode
    reason: str


def manifest_digest(data: bytes, algorithm: str = digests.CANONICAL) -> str:
    return digests.of(data, algorithm)


def check_tag(tag: str) -> None:
    if not limits.is_image_tag(tag):
        raise errors.InvalidParameter(
            f"Invalid parameter at 'imageTag': '{tag}' must be 1-300 letters, digits, '_', '.' or '-', "
            "not starting with '.' or '-'"
        )


def put_image(
    core: Core,
    repository: RepositoryRow,
    data: bytes,
    media_type: str | None,
    tag: str | None,
    digest: str | None,
    also_tag: Sequence[str] = (),
) -> PutResult:
    """Store a manifest the repository can fully serve; see PutImage for the rules. Every tag of
    `also_tag` points at it too, in the same transaction.

    The image is named by the digest of its bytes in the algorithm of `digest` (sha256 without one): a
    manifest pushed by its sha512 digest is stored, listed and pulled under that digest. A new image's
    details for the gallery are gathered now, once (core/image_details.py)."""
    if len(data) > limits.MANIFEST_MAX_BYTES:
        raise errors.ManifestInvalid(f"the manifest is larger than {limits.MANIFEST_MAX_BYTES} bytes")
    for name in (tag, *also_tag) if tag is not None else also_tag:
        check_tag(name)
    if digest is not None:
        check_digest(digest)
    actual = manifest_digest(data, digests.algorithm_of(digest) if digest is not None else digests.CANONICAL)
    if digest is not None and digest != actual:
        raise errors.ImageDigestDoesNotMatch(digest, actual)
    manifest = manifests.parse(data, media_type)
    index_size = 0
    if manifest.is_index:
        children = core.meta.get_images(repository.id, [m.digest for m in manifest.manifests])
        missing = sorted({m.digest for m in manifest.manifests} - {c.digest for c in children})
        if missing:
            raise errors.ReferencedImagesNotFound(missing)
        index_size = max((c.size for c in children), default=0)
    else:
        wanted = manifest.blobs
        found = core.meta.get_repository_blobs(repository.id, [d.digest for d in wanted])
        missing = sorted({d.digest for d in wanted} - set(found))
        if missing:
            raise errors.LayersNotFound(missing)
        for descriptor in wanted:
            if found[descriptor.digest][0] != descriptor.size:
                raise errors.ManifestInvalid(
                    f"the descriptor of {descriptor.digest} says {descriptor.size} bytes, "
                    f"but the blob has {found[descriptor.digest][0]}"
                )
    exists = core.meta.image_exists(repository.id, actual)
    details = image_details.gather_at_push(core, manifest, actual) if not exists else None
    image = manifests.new_image(manifest, actual, data, index_size, details)
    outcome, _ = core.meta.put_image(repository.id, image, tag, core.clock(), core.max_images, also_tag)
    return PutResult(
        repository.registry_id, repository.name, actual, tag, data, manifest.media_type, outcome, image.subject_digest
    )


def put_image_api(
    core: Core,
    caller: Caller,
    registry_id: str | None,
    name: str,
    data: bytes,
    media_type: str | None,
    tag: str | None,
    digest: str | None,
) -> PutResult:
    """PutImage: as put_image, and pushing what is already there is ImageAlreadyExistsException."""
    repository = find_repository(core, caller, registry_id, name, "PutImage", registry_must_exist=True)
    if digest is not None:
        check_digest(digest, "imageDigest")
    result = put_image(core, repository, data, media_type, tag, digest)
    if result.outcome is PutOutcome.UNCHANGED:
        raise errors.ImageAlreadyExists(result.digest, tag)
    return result


def find_image(core: Core, repository: RepositoryRow, image_id: ImageId, *, with_manifest: bool = False) -> ImageRow:
    """The image an id names (by digest, by tag, or both, which must agree); ImageNotFound otherwise."""
    image = None
    if image_id.digest is not None or image_id.tag is not None:
        image = core.meta.get_image(
            repository.id, digest=image_id.digest, tag=image_id.tag, with_manifest=with_manifest
        )
    if image is None:
        raise errors.ImageNotFound(repository.registry_id, repository.name, str(image_id))
    return image


def describe_images(
    core: Core,
    caller: Caller,
    registry_id: str | None,
    name: str,
    image_ids: Sequence[ImageId] | None,
    max_results: int | None,
    next_token: str | None,
    *,
    memory_only: bool = False,
) -> tuple[RepositoryRow, pagination.Page[ImageRow]]:
    """A page of the repository's images, or the images named. With memory_only, NotInMemory
    (core/reads.py) unless the answer is a page memory holds, found without reading the store."""
    if memory_only and (image_ids is not None or not core.signer.signs_from_memory()):
        raise NotInMemory
    repository = find_repository(core, caller, registry_id, name, "DescribeImages", memory_only=memory_only)
    if image_ids is not None:
        if max_results is not None or next_token is not None:
            raise errors.InvalidParameter("maxResults and nextToken cannot be used when you specify imageIds")
        found = {image.id: image for image in (find_image(core, repository, i) for i in image_ids)}
        return repository, pagination.Page(list(found.values()), None)
    listing = f"images:{repository.id}"
    if memory_only and next_token is not None and not core.signer.answers_from_memory(next_token):
        raise NotInMemory
    after = pagination.read_token(core.signer, listing, next_token)
    size = pagination.page_size(max_results)
    after_id = int(after) if after else None
    rows = remembered(
        core.pages,
        (listing, after_id, size),
        lambda: core.meta.list_images(repository.id, after_id, size + 1),
        memory_only,
    )
    return repository, pagination.make_page(core.signer, listing, rows, size, key=lambda row: str(row.id))


def describe_image_tags(
    core: Core, caller: Caller, registry_id: str | None, name: str, max_results: int | None, next_token: str | None
) -> tuple[RepositoryRow, pagination.Page[TagRow]]:
    repository = find_repository(core, caller, registry_id, name, "DescribeImageTags")
    listing = f"tags:{repository.id}"
    after = pagination.read_token(core.signer, listing, next_token)
    size = pagination.page_size(max_results)
    rows = core.meta.list_image_tags(repository.id, after, size + 1)
    return repository, pagination.make_page(core.signer, listing, rows, size, key=lambda row: row.tag)


def batch_delete_image(
    core: Core, caller: Caller, registry_id: str | None, name: str, image_ids: Sequence[ImageId]
) -> tuple[list[ImageId], list[Failure]]:
    """By tag: remove the tag, and the image with it when no other tag is left. By digest: the image
    and all its tags. Each id succeeds or fails alone, with ECR's failure codes."""
    repository = find_repository(core, caller, registry_id, name, "BatchDeleteImage")
    deleted: list[ImageId] = []
    failures: list[Failure] = []
    for image_id in image_ids:
        try:
            deleted.extend(_delete_one(core, repository, image_id))
        except _Failed as failed:
            failures.append(Failure(image_id, failed.code, failed.reason))
    return deleted, failures


class _Failed(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _delete_one(core: Core, repository: RepositoryRow, image_id: ImageId) -> list[ImageId]:
    digest, tag = image_id.digest, image_id.tag
    if digest is None and tag is None:
        raise _Failed("MissingDigestAndTag", "Each image id needs an imageDigest or an imageTag")
    if digest is not None and (problem := digests.problem(digest)) is not None:
        raise _Failed("InvalidImageDigest", problem)
    if tag is not None and not limits.is_image_tag(tag):
        raise _Failed("InvalidImageTag", f"'{tag}' is not a valid image tag")
    image = core.meta.get_image(repository.id, digest=digest, tag=tag)
    if image is None:
        if digest is not None and tag is not None and core.meta.get_image(repository.id, tag=tag):
            raise _Failed("ImageTagDoesNotMatchDigest", f"The tag '{tag}' does not point to '{digest}'")
        raise _Failed("ImageNotFound", "Requested image not found")
    if tag is not None and len(image.tags) > 1:
        core.meta.remove_tag(repository.id, tag)
        return [ImageId(image.digest, tag)]
    indexes = core.meta.indexes_referencing(repository.id, image.digest)
    if indexes:
        raise _Failed(
            "ImageReferencedByManifestList", f"The image is referenced by the manifest list(s) {', '.join(indexes)}"
        )
    core.meta.delete_image(image.id)
    return [ImageId(image.digest, t) for t in image.tags] or [ImageId(image.digest, None)]


# The OCI door's view of images


def is_digest_reference(reference: str) -> bool:
    """A manifest reference is a digest if it has a colon (a tag cannot); DigestInvalid if it is not one pier
    supports."""
    if ":" not in reference:
        return False
    check_digest(reference)
    return True


def remembered_manifest(
    core: Core, repository: RepositoryRow, reference: str, accepted: set[str] | None
) -> ImageRow | None:
    """What get_manifest answers, when memory still holds it (core/reads.py) and it needs no choosing among
    an index's images; None otherwise (ask get_manifest)."""
    image: ImageRow | None = core.reads.get(("manifest", repository.id, reference))
    if image is None or (accepted is not None and image.media_type not in accepted):
        return None
    return image


def get_manifest(core: Core, repository: RepositoryRow, reference: str, accepted: set[str] | None) -> ImageRow:
    """The manifest a tag or digest names, in a form the client accepts.

    `accepted` is the set of media types in the Accept header (None: anything). A client that cannot take
    an index gets the index's linux/amd64 image when it accepts that, as Docker registries have always
    done; otherwise the manifest is unknown to it.
    """
    if is_digest_reference(reference):
        image_id = ImageId(digest=reference)
    elif limits.is_image_tag(reference):
        image_id = ImageId(tag=reference)
    else:
        raise errors.ImageNotFound(repository.registry_id, repository.name, reference)
    started = core.reads.start()
    image = find_image(core, repository, image_id, with_manifest=True)
    core.reads.put(started, ("manifest", repository.id, reference), image)
    if accepted is None or image.media_type in accepted:
        return image
    if image.media_type in manifests.INDEX_TYPES and image.manifest is not None:
        index = manifests.parse(image.manifest, image.media_type)
        for entry in index.manifests:
            platform = entry.platform or {}
            if entry.media_type in accepted and (platform.get("os"), platform.get("architecture")) == (
                "linux",
                "amd64",
            ):
                return find_image(core, repository, ImageId(digest=entry.digest), with_manifest=True)
    raise errors.ImageNotFound(
        repository.registry_id, repository.name, f"{reference} (stored as {image.media_type}, not accepted)"
    )


def put_manifest(
    core: Core,
    repository: RepositoryRow,
    reference: str,
    data: bytes,
    content_type: str | None,
    extra_tags: Sequence[str] = (),
) -> PutResult:
    """PUT /v2/<name>/manifests/<reference>[?tag=...]: pushing what is there already is fine."""
    digest, tag = (reference, None) if is_digest_reference(reference) else (None, reference)
    media_type = content_type if content_type in manifests.MANIFEST_TYPES else None
    return put_image(core, repository, data, media_type, tag, digest, extra_tags)


def delete_manifest(core: Core, repository: RepositoryRow, reference: str) -> None:
    """By digest: the image and its tags. By tag: only the tag (the image stays, untagged)."""
    if not is_digest_reference(reference):
        find_image(core, repository, ImageId(tag=reference))
        core.meta.remove_tag(repository.id, reference)
        return
    image = find_image(core, repository, ImageId(digest=reference))
    indexes = core.meta.indexes_referencing(repository.id, image.digest)
    if indexes:
        raise errors.InvalidParameter(f"The manifest is listed by the index(es) {', '.join(indexes)}")
    core.meta.delete_image(image.id)


def list_tags(core: Core, repository: RepositoryRow, last: str | None, n: int | None) -> tuple[list[str], bool]:
    """Tag names in lexical order after `last`, at most `n` (capped); and whether more follow."""
    size = limits.PAGE_MAX if n is None else min(n, limits.PAGE_MAX)
    if size <= 0:
        return [], False
    rows = core.meta.list_tag_names(repository.id, last, size + 1)
    return rows[:size], len(rows) > size


def referrers(core: Core, repository: RepositoryRow, digest: str, artifact_type: str | None) -> list[dict[str, object]]:
    """Descriptors of the manifests whose subject is `digest`, optionally of one artifactType."""
    check_digest(digest)
    found = []
    for image in core.meta.referrers(repository.id, digest):
        if artifact_type is not None and image.artifact_type != artifact_type:
            continue
        manifest = image.manifest or b""
        parsed = manifests.parse(manifest, image.media_type)
        descriptor: dict[str, object] = {"mediaType": image.media_type, "digest": image.digest, "size": len(manifest)}
        if image.artifact_type:
            descriptor["artifactType"] = image.artifact_type
        if parsed.annotations:
            descriptor["annotations"] = parsed.annotations
        found.append(descriptor)
    return found
