"""Image details: what the gallery shows about an image, gathered when it was pushed (no page reads a blob).

A row is written with its image, in put_image's transaction (images.py runs INSERT_DETAILS). Images
pushed before pier kept details get theirs from a bounded background pass (core/image_details.py), which
asks for images_without_details and adds them with add_image_details.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import RowMapping, and_, bindparam, func, insert, select, union_all

from pier.storage import schema
from pier.storage.metadata import ImageDetails, ImageRow
from pier.storage.sql.engine import SqlBase
from pier.storage.sql.prepared import Prepared

_images = schema.images
_details = schema.image_details
_children = schema.image_children
_IMAGE_COLUMNS = [c for c in _images.c if c.name != "manifest"]


def details_columns(image_id: int, details: ImageDetails) -> dict[str, Any]:
    return {
        "image_id": image_id,
        "version": details.version,
        "platforms": json.dumps(list(details.platforms)),
        "artifact_kind": details.artifact_kind,
        "facts": json.dumps(details.facts, separators=(",", ":")),
    }


INSERT_DETAILS = Prepared(insert(_details), keys=("image_id", "version", "platforms", "artifact_kind", "facts"))


def details_row(row: RowMapping, prefix: str = "") -> ImageDetails:
    return ImageDetails(
        version=row[prefix + "version"],
        platforms=tuple(json.loads(row[prefix + "platforms"])),
        artifact_kind=row[prefix + "artifact_kind"],
        facts=json.loads(row[prefix + "facts"]),
    )


def image_row(row: RowMapping | Mapping[str, Any], tags: tuple[str, ...] = ()) -> ImageRow:
    """An image row; without its tags unless given (pages need none of platform images and referrers)."""
    return ImageRow(
        id=row["id"],
        repository_id=row["repository_id"],
        digest=row["digest"],
        media_type=row["media_type"],
        artifact_media_type=row["artifact_media_type"],
        artifact_type=row["artifact_type"],
        subject_digest=row["subject_digest"],
        size=row["size"],
        pushed_at=row["pushed_at"],
        tags=tags,
        manifest=row["manifest"] if "manifest" in row else None,  # noqa: SIM401 - .get() raises and catches inside
    )


def _referred_to() -> Any:
    """Images (ids) an artifact of a kind refers to, directly or through a manifest they list; built once."""
    ids: Any = bindparam("ids", expanding=True)
    targets = union_all(
        select(
            _images.c.id.label("image_id"),
            _images.c.repository_id.label("repository_id"),
            _images.c.digest.label("target"),
        ).where(_images.c.id.in_(ids)),
        select(
            _children.c.image_id.label("image_id"),
            _images.c.repository_id.label("repository_id"),
            _children.c.child_digest.label("target"),
        )
        .join(_images, _images.c.id == _children.c.image_id)
        .where(_children.c.image_id.in_(ids)),
    ).subquery()
    referrer = _images.alias("referrer")
    return (
        select(targets.c.image_id)
        .distinct()
        .join(
            referrer,
            and_(referrer.c.repository_id == targets.c.repository_id, referrer.c.subject_digest == targets.c.target),
        )
        .join(_details, and_(_details.c.image_id == referrer.c.id, _details.c.artifact_kind == bindparam("kind")))
    )


_REFERRED_TO = _referred_to()
_DETAILS_OF = select(_details).where(_details.c.image_id.in_(bindparam("ids", expanding=True)))


class ImageDetailRows(SqlBase):
    def image_details(self, image_ids: Sequence[int]) -> dict[int, ImageDetails]:
        """The details of those of `image_ids` that have them."""
        if not image_ids:
            return {}
        with self._reading() as conn:
            rows = conn.execute(_DETAILS_OF, {"ids": sorted(set(image_ids))}).mappings()
            return {row["image_id"]: details_row(row) for row in rows}

    def images_with_manifests(self, repository_id: int, digests: Sequence[str]) -> list[ImageRow]:
        """The repository's images of those digests, manifests included (an index's platforms, layers)."""
        if not digests:
            return []
        query = select(*_images.c).where(
            _images.c.repository_id == repository_id, _images.c.digest.in_(sorted(set(digests)))
        )
        with self._reading() as conn:
            return [image_row(row) for row in conn.execute(query).mappings()]

    def image_for_page(
        self, repository_id: int, *, digest: str | None = None, tag: str | None = None
    ) -> ImageRow | None:
        """The image a tag or digest names, with its manifest and without its tags (an image may have
        thousands: image_tag_names gives a page of them)."""
        query = select(*_images.c).where(_images.c.repository_id == repository_id)
        if digest is not None:
            query = query.where(_images.c.digest == digest)
        if tag is not None:
            tags = schema.image_tags
            query = query.join(tags, tags.c.image_id == _images.c.id).where(
                tags.c.repository_id == repository_id, tags.c.tag == tag
            )
        with self._reading() as conn:
            row = conn.execute(query).mappings().first()
        return image_row(row) if row else None

    def image_tag_names(self, image_id: int, limit: int) -> tuple[list[str], int]:
        """The image's first `limit` tags by name, and how many it has."""
        tags = schema.image_tags
        with self._reading(snapshot=True) as conn:
            names = conn.execute(
                select(tags.c.tag).where(tags.c.image_id == image_id).order_by(tags.c.tag).limit(limit)
            ).scalars()
            found = list(names)
            total = conn.execute(select(func.count()).select_from(tags).where(tags.c.image_id == image_id)).scalar_one()
        return found, int(total)

    def images_without_details(self, after_id: int, limit: int) -> list[ImageRow]:
        """Images (with manifests) after image `after_id` that have no details yet, in id order."""
        query = (
            select(*_images.c)
            .outerjoin(_details, _details.c.image_id == _images.c.id)
            .where(_images.c.id > after_id, _details.c.image_id.is_(None))
            .order_by(_images.c.id)
            .limit(limit)
        )
        with self._reading() as conn:
            return [image_row(row) for row in conn.execute(query).mappings()]

    def add_image_details(self, found: Sequence[tuple[int, ImageDetails]]) -> None:
        """Keep details gathered later (for images pushed before pier kept them), in one transaction; a row
        there already wins, and an image deleted meanwhile gets none."""
        with self._writing() as conn:
            ids = [image_id for image_id, _ in found]
            present = set(conn.execute(select(_images.c.id).where(_images.c.id.in_(ids))).scalars())
            rows = [details_columns(image_id, details) for image_id, details in found if image_id in present]
            if rows:
                conn.execute(self._insert_or_ignore(_details), rows)

    def referring_images(
        self, repository_id: int, subjects: Sequence[str]
    ) -> list[tuple[ImageRow, ImageDetails | None]]:
        """The repository's images whose subject is one of `subjects` (signatures, SBOMs, ...), oldest first,
        with their details."""
        if not subjects:
            return []
        query = (
            select(*_IMAGE_COLUMNS, *[c.label(f"d_{c.name}") for c in _details.c])
            .outerjoin(_details, _details.c.image_id == _images.c.id)
            .where(_images.c.repository_id == repository_id, _images.c.subject_digest.in_(sorted(set(subjects))))
            .order_by(_images.c.id)
        )
        with self._reading() as conn:
            rows = conn.execute(query).mappings().all()
        return [(image_row(row), details_row(row, "d_") if row["d_image_id"] is not None else None) for row in rows]

    def images_referred_to_by(self, image_ids: Sequence[int], kind: str) -> set[int]:
        """Those of `image_ids` that an artifact of `kind` (in their repository) refers to, directly or
        through one of the manifests they list (an index whose platform image is signed)."""
        if not image_ids:
            return set()
        with self._reading() as conn:
            return set(conn.execute(_REFERRED_TO, {"ids": sorted(set(image_ids)), "kind": kind}).scalars())
