"""Parse and check image manifests and indexes (Docker v2 schema 2, Docker manifest list, OCI v1.1).

The digest of a manifest is always of the exact bytes sent; parsing only reads what pier must know:
which blobs and manifests it references (they must exist), its media types, platforms and subject.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pier import digests
from pier.errors import InvalidParameter, ManifestInvalid
from pier.storage.metadata import ImageDetails, NewImage

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
IMAGE_TYPES = (DOCKER_MANIFEST, OCI_MANIFEST)
INDEX_TYPES = (DOCKER_LIST, OCI_INDEX)
MANIFEST_TYPES = IMAGE_TYPES + INDEX_TYPES

# Layers a manifest may name without pushing them (Windows base layers fetched from their urls).
FOREIGN_LAYER_TYPES = (
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
)


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: dict[str, Any] | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    foreign: bool = False  # a non-distributable layer with urls: not stored here


@dataclass(frozen=True)
class Manifest:
    media_type: str
    config: Descriptor | None
    layers: tuple[Descriptor, ...]
    manifests: tuple[Descriptor, ...]  # an index's entries
    subject: Descriptor | None
    artifact_type: str | None
    annotations: dict[str, str]

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    @property
    def blobs(self) -> tuple[Descriptor, ...]:
        """The blobs that must be in the repository: config and layers, less foreign layers."""
        found = ((self.config,) if self.config else ()) + self.layers
        return tuple(d for d in found if not d.foreign)


def parse(data: bytes, declared_media_type: str | None) -> Manifest:
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        raise ManifestInvalid("the manifest is not valid JSON") from None
    if not isinstance(document, dict):
        raise ManifestInvalid("the manifest must be a JSON object")
    if document.get("schemaVersion") != 2:
        raise ManifestInvalid("schemaVersion must be 2 (Docker schema 1 manifests are not supported)")
    inner = document.get("mediaType")
    if inner is not None and not isinstance(inner, str):
        raise ManifestInvalid("mediaType must be a string")
    if inner and declared_media_type and inner != declared_media_type:
        raise InvalidParameter(
            f"The manifest's mediaType '{inner}' does not match the declared media type '{declared_media_type}'"
        )
    media_type = inner or declared_media_type
    if not media_type:
        raise InvalidParameter(
            "Invalid parameter at 'imageManifestMediaType': the manifest has no mediaType, so one must be given"
        )
    if media_type not in MANIFEST_TYPES:
        raise ManifestInvalid(f"unsupported manifest media type '{media_type}'")
    subject = _descriptor(document["subject"], "subject") if document.get("subject") is not None else None
    artifact_type = _optional_string(document, "artifactType")
    annotations = _annotations(document.get("annotations"), "annotations")
    if media_type in INDEX_TYPES:
        if "config" in document or "layers" in document:
            raise ManifestInvalid("an index has manifests, not config or layers")
        entries = _list(document, "manifests")
        manifests = tuple(_descriptor(entry, f"manifests[{i}]") for i, entry in enumerate(entries))
        for i, entry in enumerate(manifests):
            if entry.media_type not in MANIFEST_TYPES:
                raise ManifestInvalid(f"manifests[{i}] has media type '{entry.media_type}', not a manifest's")
        return Manifest(media_type, None, (), manifests, subject, artifact_type, annotations)
    if "manifests" in document:
        raise ManifestInvalid("an image manifest has config and layers, not manifests")
    if not isinstance(document.get("config"), dict):
        raise ManifestInvalid("config must be a descriptor")
    config = _descriptor(document["config"], "config")
    layers = tuple(_descriptor(entry, f"layers[{i}]") for i, entry in enumerate(_list(document, "layers")))
    return Manifest(media_type, config, layers, (), subject, artifact_type, annotations)


def _list(document: dict[str, Any], key: str) -> list[Any]:
    value = document.get(key)
    if not isinstance(value, list):
        raise ManifestInvalid(f"{key} must be a list of descriptors")
    return value


def _optional_string(document: dict[str, Any], key: str) -> str | None:
    """A string pier stores in a column of its own (artifactType): printable, so every database keeps it."""
    value = document.get(key)
    if value is not None and not (isinstance(value, str) and value.isprintable()):
        raise ManifestInvalid(f"{key} must be a string of printable characters")
    return value


def _annotations(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ManifestInvalid(f"{where} must map strings to strings")
    return value


def _descriptor(value: Any, where: str) -> Descriptor:
    if not isinstance(value, dict):
        raise ManifestInvalid(f"{where} must be a descriptor object")
    media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
    if not isinstance(media_type, str) or not media_type or not media_type.isprintable():
        raise ManifestInvalid(f"{where}.mediaType must be a non-empty string of printable characters")
    if not isinstance(digest, str) or not digests.is_digest(digest):
        raise ManifestInvalid(f"{where}.digest must be {digests.SUPPORTED}, not {digest!r}"[:400])
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ManifestInvalid(f"{where}.size must be a non-negative integer")
    platform = value.get("platform")
    if platform is not None and (
        not isinstance(platform, dict)
        or not isinstance(platform.get("architecture"), str)
        or not isinstance(platform.get("os"), str)
    ):
        raise ManifestInvalid(f"{where}.platform must have string architecture and os")
    urls = value.get("urls")
    return Descriptor(
        media_type=media_type,
        digest=digest,
        size=size,
        platform=platform,
        artifact_type=_optional_string(value, "artifactType"),
        annotations=_annotations(value.get("annotations"), f"{where}.annotations"),
        foreign=media_type in FOREIGN_LAYER_TYPES and bool(urls),
    )


def new_image(
    manifest: Manifest, digest: str, data: bytes, index_size: int, details: ImageDetails | None = None
) -> NewImage:
    """What the store keeps of a manifest, pushed or cached from an upstream. An image's size is its config
    and layers; an index's, `index_size` (ECR counts its largest child, which the caller knows)."""
    config = manifest.config
    if manifest.is_index:
        size, artifact_media_type = index_size, manifest.artifact_type
    else:
        size = sum(d.size for d in ((config,) if config else ()) + manifest.layers)
        artifact_media_type = config.media_type if config else None
    return NewImage(
        digest=digest,
        manifest=data,
        media_type=manifest.media_type,
        artifact_media_type=artifact_media_type,
        artifact_type=manifest.artifact_type or (config.media_type if config else None),
        subject_digest=manifest.subject.digest if manifest.subject else None,
        size=size,
        blob_media_types={d.digest: d.media_type for d in manifest.blobs},
        child_digests=tuple(m.digest for m in manifest.manifests),
        details=details,
    )
