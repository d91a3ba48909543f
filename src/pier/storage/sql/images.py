"""Images (manifests, stored byte for byte) and their tags.

put_image is one of the writes GC safety rests on: it checks, in its writing transaction, that every
blob the manifest names is in the repository, and the image_blobs foreign key then keeps GC from
collecting them (see blobs.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import fields, replace
from typing import Any

from sqlalchemy import (
    Connection,
    Select,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from pier import errors
from pier.storage import schema
from pier.storage.metadata import (
    ImageRow,
    NewImage,
    PutOutcome,
    TagRow,
)
from pier.storage.sql.engine import WRITE_ATTEMPTS, SqlBase
from pier.storage.sql.image_details import INSERT_DETAILS, details_columns, image_row
from pier.storage.sql.prepared import Prepared, Reader, write, write_many

_repos = schema.repositories
_images = schema.images
_image_tags = schema.image_tags
_repo_blobs = schema.repository_blobs

_IMAGE_COLUMNS = [c for c in _images.c if c.name != "manifest"]
# Pages build ImageRow from these columns by position: they must stay in the dataclass's order.
if [c.name for c in _IMAGE_COLUMNS] != [f.name for f in fields(ImageRow)][: len(_IMAGE_COLUMNS)]:
    raise RuntimeError("images' columns and ImageRow's fields are in different orders")

# Statements built once (building one cost as much as running it): put_image's, the write every image
# push ends with, and the lookups every pull makes.
_PRESENT_BLOBS = Prepared(
    select(_repo_blobs.c.digest)
    .join(schema.blobs, schema.blobs.c.digest == _repo_blobs.c.digest)
    .where(
        _repo_blobs.c.repository_id == bindparam("repository_id"),
        _repo_blobs.c.digest.in_(bindparam("digests", expanding=True)),
        schema.blobs.c.lost_at.is_(None),  # forgotten by fsck --repair: pushed again first
    )
)
_IMAGE_ID_BY_DIGEST = Prepared(
    select(_images.c.id).where(
        _images.c.repository_id == bindparam("repository_id"), _images.c.digest == bindparam("digest")
    )
)
_COUNT_IMAGES = Prepared(
    select(func.count()).select_from(_images).where(_images.c.repository_id == bindparam("repository_id"))
)
# The new image's id: SQLite's cursor tells it (RETURNING would need SQLite 3.35 or later), PostgreSQL's
# does not, so there it comes back by RETURNING. A plain INSERT it must stay: SQLite's lastrowid is the
# connection's last inserted row, which an INSERT that inserts nothing (ON CONFLICT) would not change.
_INSERT_IMAGE = Prepared(
    lambda dialect: insert(_images).returning(_images.c.id) if dialect == "postgresql" else insert(_images),
    keys=[c.name for c in _images.c if c.name != "id"],
)
_INSERT_IMAGE_BLOBS = Prepared(insert(schema.image_blobs), keys=("image_id", "digest"))
_INSERT_IMAGE_CHILDREN = Prepared(insert(schema.image_children), keys=("image_id", "child_digest"))
_SET_BLOB_MEDIA_TYPE = Prepared(
    update(_repo_blobs)
    .where(_repo_blobs.c.repository_id == bindparam("repository"), _repo_blobs.c.digest == bindparam("blob"))
    .values(media_type=bindparam("blob_media_type"))
)
_TAG_WHERE = (  # not named after the columns: UPDATE reserves those names for its SET values
    _image_tags.c.repository_id == bindparam("in_repository"),
    _image_tags.c.tag == bindparam("tag_name"),
)
_TAGGED_IMAGE = Prepared(select(_image_tags.c.image_id).where(*_TAG_WHERE))
_INSERT_TAG = insert(_image_tags)
_MOVE_TAG = update(_image_tags).where(*_TAG_WHERE).values(image_id=bindparam("to_image"), created_at=bindparam("now"))
_INSERT_ONE_TAG = Prepared(_INSERT_TAG, keys=("repository_id", "tag", "image_id", "created_at"))
_MOVE_ONE_TAG = Prepared(_MOVE_TAG)
PUSHED_TO = update(_repos).where(_repos.c.id == bindparam("repository")).values(last_pushed_at=bindparam("now"))
_PUSHED_TO = Prepared(PUSHED_TO)
# A page of a repository's images with their tags, one statement (a snapshot by itself) with no expanding
# IN list to render per call: the page's images by the (repository_id, id) index, tags by image_id's.
_PAGE = (
    select(*_IMAGE_COLUMNS)
    .where(_images.c.repository_id == bindparam("repository_id"), _images.c.id > bindparam("after_id"))
    .order_by(_images.c.id)
    .limit(bindparam("limit"))
    .subquery("page")
)
_PAGE_OF_IMAGES = (
    select(*(_PAGE.c[c.name] for c in _IMAGE_COLUMNS), _image_tags.c.tag)
    .select_from(_PAGE.outerjoin(_image_tags, _image_tags.c.image_id == _PAGE.c.id))
    .order_by(_PAGE.c.id, _image_tags.c.tag)
)
TAGS_OF_IMAGES = (
    select(_image_tags.c.image_id, _image_tags.c.tag)
    .where(_image_tags.c.image_id.in_(bindparam("ids", expanding=True)))
    .order_by(_image_tags.c.tag)
)
_TAGS_OF_IMAGES = Prepared(TAGS_OF_IMAGES)


@functools.cache
def _image_lookup(with_manifest: bool, by_digest: bool, by_tag: bool) -> Select[Any]:
    """An image of a repository by digest and/or tag (pulls ask this for every manifest), built once."""
    query = select(*(_images.c if with_manifest else _IMAGE_COLUMNS)).where(
        _images.c.repository_id == bindparam("repository_id")
    )
    if by_digest:
        query = query.where(_images.c.digest == bindparam("digest"))
    if by_tag:
        query = query.join(_image_tags, _image_tags.c.image_id == _images.c.id).where(
            _image_tags.c.tag == bindparam("tag")
        )
    return query


@functools.cache
def _prepared_lookup(with_manifest: bool, by_digest: bool, by_tag: bool) -> Prepared:
    return Prepared(_image_lookup(with_manifest, by_digest, by_tag))


class ImageRows(SqlBase):
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
        for attempt in range(WRITE_ATTEMPTS):
            try:
                return self._put_image(repository_id, image, tag, now, limit, also_tag)
            except IntegrityError:
                # Another process stored the same image or tag first (PostgreSQL runs them side by side),
                # or GC removed a blob meanwhile: try again, and the checks see what happened.
                if attempt == WRITE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def _put_image(
        self, repository_id: int, image: NewImage, tag: str | None, now: float, limit: int, also_tag: Sequence[str]
    ) -> tuple[PutOutcome, ImageRow]:
        with self._writing() as conn:
            # Checked again here, in the writing transaction, so a concurrent GC cannot slip in between.
            wanted = list(image.blob_media_types)
            parameters = {"repository_id": repository_id, "digests": wanted}
            present = {row[0] for row in write(conn, _PRESENT_BLOBS, parameters).rows} if wanted else set()
            if missing := sorted(set(wanted) - present):
                raise errors.LayersNotFound(missing)
            found = write(conn, _IMAGE_ID_BY_DIGEST, {"repository_id": repository_id, "digest": image.digest}).rows
            image_id = found[0][0] if found else None
            inserted = None if image_id is not None else self._insert_image(conn, repository_id, image, now, limit)
            created = inserted is not None
            if inserted is not None:
                image_id = inserted.id
            outcome = PutOutcome.CREATED if created else PutOutcome.UNCHANGED
            if tag is not None:
                where = {"in_repository": repository_id, "tag_name": tag}
                tagged = write(conn, _TAGGED_IMAGE, where).rows
                current = tagged[0][0] if tagged else None
                if current is None:
                    tag_row = {"repository_id": repository_id, "tag": tag, "image_id": image_id, "created_at": now}
                    write(conn, _INSERT_ONE_TAG, tag_row)
                elif current != image_id:
                    write(conn, _MOVE_ONE_TAG, {**where, "to_image": image_id, "now": now})
                if current != image_id and not created:
                    outcome = PutOutcome.TAGGED
            if also_tag and self._tag_all(conn, repository_id, image_id, [t for t in also_tag if t != tag], now):
                outcome = PutOutcome.TAGGED if outcome is PutOutcome.UNCHANGED else outcome
            if outcome is not PutOutcome.UNCHANGED:
                write(conn, _PUSHED_TO, {"repository": repository_id, "now": now})
            if inserted is not None:  # what the database would answer, without asking it
                row = replace(inserted, tags=(tag,) if tag is not None else ())
            else:
                row = image_rows(conn, select(*_IMAGE_COLUMNS).where(_images.c.id == image_id))[0]
        return outcome, row

    @staticmethod
    def _tag_all(conn: Connection, repository_id: int, image_id: int | None, tags: Sequence[str], now: float) -> bool:
        """Point every one of `tags` at the image with a few statements, however many there are (a /v2/ PUT
        with many ?tag=); whether any tag was new or moved."""
        wanted = list(dict.fromkeys(tags))
        current: dict[str, int] = {}
        for first in range(0, len(wanted), 500):
            chunk = wanted[first : first + 500]
            query = select(_image_tags.c.tag, _image_tags.c.image_id).where(
                _image_tags.c.repository_id == repository_id, _image_tags.c.tag.in_(chunk)
            )
            current.update({t: i for t, i in conn.execute(query)})
        new = [
            {"repository_id": repository_id, "tag": t, "image_id": image_id, "created_at": now}
            for t in wanted
            if t not in current
        ]
        moved = [
            {"in_repository": repository_id, "tag_name": t, "to_image": image_id, "now": now}
            for t in wanted
            if t in current and current[t] != image_id
        ]
        if new:
            conn.execute(_INSERT_TAG, new)
        if moved:
            conn.execute(_MOVE_TAG, moved)
        return bool(new or moved)

    @staticmethod
    def _insert_image(conn: Connection, repository_id: int, image: NewImage, now: float, limit: int) -> ImageRow:
        """Insert the image and what it uses; the row as inserted (without tags or manifest)."""
        count = write(conn, _COUNT_IMAGES, {"repository_id": repository_id}).rows[0][0]
        if count >= limit:
            raise errors.LimitExceeded("images in this repository", limit)
        row: dict[str, Any] = {
            "repository_id": repository_id,
            "digest": image.digest,
            "manifest": image.manifest,
            "media_type": image.media_type,
            "artifact_media_type": image.artifact_media_type,
            "artifact_type": image.artifact_type,
            "subject_digest": image.subject_digest,
            "size": image.size,
            "pushed_at": now,
        }
        inserted = write(conn, _INSERT_IMAGE, row)
        image_id = inserted.rows[0][0] if inserted.rows else inserted.lastrowid
        if not isinstance(image_id, int):
            raise RuntimeError(f"the database did not tell the new image's id ({image_id!r})")
        if image.blob_media_types:
            write_many(conn, _INSERT_IMAGE_BLOBS, [{"image_id": image_id, "digest": d} for d in image.blob_media_types])
            write_many(
                conn,
                _SET_BLOB_MEDIA_TYPE,
                [
                    {"repository": repository_id, "blob": d, "blob_media_type": mt}
                    for d, mt in image.blob_media_types.items()
                ],
            )
        if image.child_digests:
            write_many(
                conn,
                _INSERT_IMAGE_CHILDREN,
                [{"image_id": image_id, "child_digest": d} for d in dict.fromkeys(image.child_digests)],
            )
        if image.details is not None:
            write(conn, INSERT_DETAILS, details_columns(image_id, image.details))
        return ImageRow(id=image_id, **{k: v for k, v in row.items() if k != "manifest"})

    def get_image(
        self, repository_id: int, *, digest: str | None = None, tag: str | None = None, with_manifest: bool = False
    ) -> ImageRow | None:
        query = _prepared_lookup(with_manifest, digest is not None, tag is not None)
        with self._prepared_reading(snapshot=True) as reader:
            rows = _image_rows(reader, query, {"repository_id": repository_id, "digest": digest, "tag": tag})
        return rows[0] if rows else None

    def image_exists(self, repository_id: int, digest: str) -> bool:
        return bool(self._rows(_IMAGE_ID_BY_DIGEST, {"repository_id": repository_id, "digest": digest}))

    def get_images(self, repository_id: int, digests: Sequence[str]) -> list[ImageRow]:
        query = select(*_IMAGE_COLUMNS).where(
            _images.c.repository_id == repository_id, _images.c.digest.in_(list(set(digests)))
        )
        with self._reading(snapshot=True) as conn:
            return image_rows(conn, query)

    def list_images(self, repository_id: int, after_id: int | None, limit: int) -> list[ImageRow]:
        parameters = {"repository_id": repository_id, "after_id": -1 if after_id is None else after_id, "limit": limit}
        with self._reading() as conn:
            rows = conn.execute(_PAGE_OF_IMAGES, parameters).all()
        # One row per (image, tag), in id order and by tag within an image: grouped in one pass.
        images: list[ImageRow] = []
        tags: list[str] = []
        last: Any = None
        for row in rows:
            if last is not None and row[0] != last[0]:
                images.append(_page_row(last, tags))
                tags = []
            if row[9] is not None:
                tags.append(row[9])
            last = row
        if last is not None:
            images.append(_page_row(last, tags))
        return images

    def list_image_tags(self, repository_id: int, after_tag: str | None, limit: int) -> list[TagRow]:
        query = select(_image_tags.c.tag, _image_tags.c.created_at, _image_tags.c.image_id).where(
            _image_tags.c.repository_id == repository_id
        )
        if after_tag is not None:
            query = query.where(_image_tags.c.tag > after_tag)
        with self._reading(snapshot=True) as conn:
            tags = conn.execute(query.order_by(_image_tags.c.tag).limit(limit)).all()
            images = {
                row.id: row
                for row in image_rows(
                    conn, select(*_IMAGE_COLUMNS).where(_images.c.id.in_({image_id for _, _, image_id in tags}))
                )
            }
        return [TagRow(tag, created_at, images[image_id]) for tag, created_at, image_id in tags]

    def list_tag_names(self, repository_id: int, after_tag: str | None, limit: int) -> list[str]:
        query = select(_image_tags.c.tag).where(_image_tags.c.repository_id == repository_id)
        if after_tag is not None:
            query = query.where(_image_tags.c.tag > after_tag)
        with self._reading() as conn:
            return list(conn.execute(query.order_by(_image_tags.c.tag).limit(limit)).scalars())

    def has_images(self, repository_id: int) -> bool:
        with self._reading() as conn:
            return (
                conn.execute(select(_images.c.id).where(_images.c.repository_id == repository_id).limit(1)).first()
                is not None
            )

    def referrers(self, repository_id: int, subject_digest: str) -> list[ImageRow]:
        query = select(*_images.c).where(
            _images.c.repository_id == repository_id, _images.c.subject_digest == subject_digest
        )
        with self._reading(snapshot=True) as conn:
            return image_rows(conn, query.order_by(_images.c.id))

    def indexes_referencing(self, repository_id: int, digest: str) -> list[str]:
        children = schema.image_children
        query = (
            select(_images.c.digest)
            .join(children, children.c.image_id == _images.c.id)
            .where(_images.c.repository_id == repository_id, children.c.child_digest == digest)
        )
        with self._reading() as conn:
            return list(conn.execute(query).scalars())

    def delete_image(self, image_id: int) -> None:
        with self._writing() as conn:
            conn.execute(delete(_image_tags).where(_image_tags.c.image_id == image_id))
            conn.execute(delete(schema.image_blobs).where(schema.image_blobs.c.image_id == image_id))
            conn.execute(delete(schema.image_children).where(schema.image_children.c.image_id == image_id))
            conn.execute(delete(_images).where(_images.c.id == image_id))

    def remove_tag(self, repository_id: int, tag: str) -> None:
        with self._writing() as conn:
            conn.execute(
                delete(_image_tags).where(_image_tags.c.repository_id == repository_id, _image_tags.c.tag == tag)
            )


def _page_row(row: Any, tags: list[str]) -> ImageRow:
    """An ImageRow from a row of _PAGE_OF_IMAGES (its _IMAGE_COLUMNS by position, then a tag)."""
    return ImageRow(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], tuple(tags))


def image_rows(conn: Connection, query: Select[Any], parameters: Mapping[str, Any] | None = None) -> list[ImageRow]:
    rows = conn.execute(query, parameters).mappings().all()
    return _with_tags(rows, lambda ids: conn.execute(TAGS_OF_IMAGES, {"ids": ids}))


def _image_rows(reader: Reader, query: Prepared, parameters: Mapping[str, Any]) -> list[ImageRow]:
    """image_rows, for a Prepared query on a Reader."""
    rows = reader.mappings(query, parameters)
    return _with_tags(rows, lambda ids: reader.rows(_TAGS_OF_IMAGES, {"ids": ids}))


def _with_tags(rows: Sequence[Mapping[Any, Any]], tags_of: Callable[[list[int]], Iterable[Any]]) -> list[ImageRow]:
    """ImageRows of image rows, with their tags as tags_of(image ids) answers them ((image id, tag) pairs)."""
    if not rows:
        return []
    tags: dict[int, list[str]] = {}
    for image_id, tag in tags_of([row["id"] for row in rows]):
        tags.setdefault(image_id, []).append(tag)
    return [image_row(row, tuple(tags.get(row["id"], ()))) for row in rows]
