"""An image's gallery page (/<alias>/<repository>:<tag> and /<alias>/<repository>@<digest>).

An index shows each platform it lists, in its own section; an image shows itself as its one platform.
Each section has the image's size, layers (from its manifest), config facts (gathered at push time, with
secret-looking values masked) and the artifacts that refer to it: signatures, SBOMs, attestations, others.
Everything comes from metadata; no blob is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pier import errors
from pier.core import artifacts, gallery, image_details, limits, manifests
from pier.core.context import Core
from pier.digests import is_digest
from pier.storage.metadata import ImageDetails, ImageRow

# The org.opencontainers.image.* labels named on the page (others are listed as they are).
NAMED_LABELS = (
    ("org.opencontainers.image.source", "Source"),
    ("org.opencontainers.image.revision", "Revision"),
    ("org.opencontainers.image.licenses", "Licenses"),
    ("org.opencontainers.image.version", "Version"),
    ("org.opencontainers.image.created", "Created"),
    ("org.opencontainers.image.title", "Title"),
    ("org.opencontainers.image.description", "Description"),
    ("org.opencontainers.image.url", "URL"),
    ("org.opencontainers.image.documentation", "Documentation"),
    ("org.opencontainers.image.vendor", "Vendor"),
    ("org.opencontainers.image.authors", "Authors"),
)
TAGS_SHOWN = 50


@dataclass(frozen=True)
class Layer:
    digest: str
    size: int
    media_type: str


@dataclass(frozen=True)
class Label:
    key: str
    value: str
    name: str | None  # "Source", ... for the OCI labels the page names
    href: str | None  # the value, when it is an http(s) URL (only those become links)


@dataclass(frozen=True)
class Artifact:
    digest: str
    kind: str  # artifacts.SIGNATURE, SBOM, ATTESTATION or OTHER
    label: str  # "signature", "SBOM", "attestation", or the artifact type
    format: str | None  # "cosign", "SPDX JSON", ...
    artifact_type: str | None
    size: int
    pushed_at: float
    path: str


@dataclass(frozen=True)
class Config:
    """What an image's config says, for people."""

    entrypoint: list[str] | None
    cmd: list[str] | None
    env: list[tuple[str, str]]
    exposed_ports: list[str]
    working_dir: str | None
    user: str | None
    labels: list[Label]
    named_labels: list[Label]
    history: list[dict[str, Any]]
    history_omitted: int
    created: str | None
    author: str | None
    volumes: list[str]
    stop_signal: str | None


@dataclass(frozen=True)
class Platform:
    platform: str | None  # os/architecture[/variant], None when unknown
    digest: str
    media_type: str
    size: int
    downloads: int
    layers: list[Layer]
    config_digest: str | None
    config_media_type: str | None
    config: Config | None  # None: no config facts (an artifact, an unreadable config, not gathered yet)
    pending: bool  # details not gathered yet (an image pushed before pier kept them)
    note: str | None  # why there are no config facts
    artifacts: list[Artifact]
    signed: bool


@dataclass(frozen=True)
class ImagePage:
    card: gallery.Card
    reference: str  # the tag or digest in the address
    tag: str | None
    digest: str
    media_type: str
    size: int
    pushed_at: float
    tags: list[str]
    tag_count: int
    downloads: int
    signed: bool
    is_index: bool
    pull_command: str
    digest_pull_command: str
    platforms: list[Platform]
    artifacts: list[Artifact]  # those referring to the index itself (for an image: the same as its platform's)
    subject: str | None  # the image this one refers to, when it is an artifact
    artifact: str | None  # what it is, when it is an artifact
    annotations: dict[str, str]


def parse_reference(path: str) -> tuple[str, str | None, str | None]:
    """'<repository>:<tag>' or '<repository>@<digest>' -> (repository, tag, digest); a plain name -> (name,
    None, None). ':' and '@' never occur in repository names, so this is unambiguous."""
    if "@" in path:
        name, _, digest = path.partition("@")
        return name, None, digest
    name, colon, tag = path.rpartition(":")
    if colon and "/" not in tag:
        return name, tag, None
    return path, None, None


def image_page(core: Core, alias: str, name: str, tag: str | None, digest: str | None) -> ImagePage:
    row = gallery.find(core, alias, name)
    view = gallery.card(core, row)
    reference = tag if tag is not None else str(digest)
    image = None
    if tag is not None and limits.is_image_tag(tag):
        image = core.meta.image_for_page(row.id, tag=tag)
    elif digest is not None and is_digest(digest):
        image = core.meta.image_for_page(row.id, digest=digest)
    if image is None or image.manifest is None:
        raise errors.ImageNotFound(row.registry_id, name, reference)
    manifest = manifests.parse(image.manifest, image.media_type)
    children = (
        {c.digest: c for c in core.meta.images_with_manifests(row.id, [m.digest for m in manifest.manifests])}
        if manifest.is_index
        else {}
    )
    images = [image, *children.values()]
    details = core.meta.image_details([i.id for i in images])
    digests = [i.digest for i in images]
    downloads = core.meta.image_downloads(row.id, digests)
    referring = core.meta.referring_images(row.id, digests)
    found: dict[str, list[Artifact]] = {}
    for artifact_row, artifact_details in referring:
        found.setdefault(artifact_row.subject_digest or "", []).append(
            _artifact(view.path, artifact_row, artifact_details)
        )
    platforms = []
    if manifest.is_index:
        for entry in manifest.manifests:
            child = children.get(entry.digest)
            if child is None or child.manifest is None:
                continue
            platform = image_details.platform_name(entry.platform) if entry.platform else None
            platforms.append(_platform(child, details.get(child.id), downloads, found.get(child.digest, []), platform))
    else:
        own = details.get(image.id)
        platform = own.platforms[0] if own and own.platforms else None
        platforms.append(_platform(image, own, downloads, found.get(image.digest, []), platform))
    own_artifacts = found.get(image.digest, [])
    signed = any(a.kind == artifacts.SIGNATURE for a in own_artifacts) or any(p.signed for p in platforms)
    own_details = details.get(image.id)
    tag_names, tag_count = core.meta.image_tag_names(image.id, TAGS_SHOWN)
    pull = f"docker pull {view.uri}:{tag}" if tag is not None else f"docker pull {view.uri}@{image.digest}"
    return ImagePage(
        card=view,
        reference=reference,
        tag=tag,
        digest=image.digest,
        media_type=image.media_type,
        size=image.size,
        pushed_at=image.pushed_at,
        tags=tag_names,
        tag_count=tag_count,
        downloads=downloads.get(image.digest, 0),
        signed=signed,
        is_index=manifest.is_index,
        pull_command=pull,
        digest_pull_command=f"docker pull {view.uri}@{image.digest}",
        platforms=platforms,
        artifacts=own_artifacts,
        subject=image.subject_digest,
        artifact=(
            gallery.artifact_label(image.artifact_type, own_details.artifact_kind if own_details else None)
            if image.subject_digest
            else None
        ),
        annotations=dict(manifest.annotations),
    )


def _platform(
    image: ImageRow,
    details: ImageDetails | None,
    downloads: Mapping[str, int],
    found: list[Artifact],
    platform: str | None,
) -> Platform:
    manifest = manifests.parse(image.manifest or b"", image.media_type)
    layers = [Layer(d.digest, d.size, d.media_type) for d in manifest.layers]
    facts = details.facts if details else {}
    has_config = details is not None and any(k in facts for k in ("entrypoint", "cmd", "env", "history", "os"))
    note = None
    if details is None:
        note = "Details of this image are being gathered."
    elif not has_config:
        note = str(facts.get("unread") or "This image has no runtime configuration.")
    return Platform(
        platform=platform,
        digest=image.digest,
        media_type=image.media_type,
        size=image.size,
        downloads=downloads.get(image.digest, 0),
        layers=layers,
        config_digest=manifest.config.digest if manifest.config else None,
        config_media_type=manifest.config.media_type if manifest.config else None,
        config=config_view(facts) if has_config else None,
        pending=details is None,
        note=note,
        artifacts=found,
        signed=any(a.kind == artifacts.SIGNATURE for a in found),
    )


def _artifact(repository_path: str, row: ImageRow, details: ImageDetails | None) -> Artifact:
    classified = artifacts.classify(row.artifact_type)
    kind = details.artifact_kind if details and details.artifact_kind else classified.kind
    fmt = details.facts.get("artifact_format") if details else None
    return Artifact(
        digest=row.digest,
        kind=kind,
        label=artifacts.LABELS.get(kind, row.artifact_type or "artifact"),
        format=str(fmt) if fmt else classified.format,
        artifact_type=row.artifact_type,
        size=row.size,
        pushed_at=row.pushed_at,
        path=f"{repository_path}@{row.digest}",
    )


def http_link(value: str) -> str | None:
    """The value, if it is an absolute http(s) URL (only those become links)."""
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return None
    if parts.scheme in ("http", "https") and parts.netloc and not any(c.isspace() for c in value.strip()):
        return value.strip()
    return None


def config_view(facts: Mapping[str, Any]) -> Config:
    labels_map: Mapping[str, str] = facts.get("labels") or {}
    labels = [Label(k, v, None, http_link(v)) for k, v in sorted(labels_map.items())]
    named = [
        Label(key, labels_map[key], title, http_link(labels_map[key]))
        for key, title in NAMED_LABELS
        if key in labels_map
    ]
    env = [
        (str(name), image_details.MASK if image_details.is_secret_name(str(name)) else str(value))
        for name, value in facts.get("env") or []
    ]
    return Config(
        entrypoint=_list(facts.get("entrypoint")),
        cmd=_list(facts.get("cmd")),
        env=env,
        exposed_ports=list(facts.get("exposed_ports") or []),
        working_dir=facts.get("working_dir"),
        user=facts.get("user"),
        labels=labels,
        named_labels=named,
        history=list(facts.get("history") or []),
        history_omitted=int(facts.get("history_omitted") or 0),
        created=facts.get("created"),
        author=facts.get("author"),
        volumes=list(facts.get("volumes") or []),
        stop_signal=facts.get("stop_signal"),
    )


def _list(value: Any) -> list[str] | None:
    return [str(v) for v in value] if isinstance(value, list) else None
