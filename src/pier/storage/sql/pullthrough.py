"""Pull-through caches: images stored before their blobs, tags with the time the upstream confirmed them.

A cached image is stored as soon as its manifest is fetched; its blobs follow when clients ask for them.
So put_cached_image records every blob the manifest names (pull_through_blobs) and puts in image_blobs
only those pier already stores, and link_cached_blob adds the others as they are stored. GC safety is the
same as for pushed images (read blobs.py): a blob is touched in the transaction that links it, and once an
image_blobs row names it, the foreign key keeps GC from deleting its row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from pier.storage import schema
from pier.storage.metadata import CachedBlob, CachedTag, ImageRow, NewImage
from pier.storage.sql.engine import WRITE_ATTEMPTS
from pier.storage.sql.images import PUSHED_TO, ImageRows, image_rows

_blobs = schema.blobs
_images = schema.images
_image_tags = schema.image_tags
_repo_blobs = schema.repository_blobs
_tags = schema.pull_through_tags
_declared = schema.pull_through_blobs

_TOUCH = (
    update(_blobs).where(_blobs.c.digest.in_(bindparam("digests", expanding=True))).values(touched_at=bindparam("now"))
)
_STORED = select(_blobs.c.digest).where(_blobs.c.digest.in_(bindparam("digests", expanding=True)))
_DECLARING_IMAGES = (
    select(_images.c.id, _declared.c.media_type)
    .join(_declared, _declared.c.image_id == _images.c.id)
    .where(_images.c.repository_id == bindparam("repository_id"), _declared.c.digest == bindparam("digest"))
)


class PullThroughRows(ImageRows):
    def put_cached_image(
        self, repository_id: int, image: NewImage, blobs: Sequence[CachedBlob], tag: str | None, now: float, limit: int
    ) -> ImageRow:
        for attempt in range(WRITE_ATTEMPTS):
            try:
                return self._put_cached_image(repository_id, image, blobs, tag, now, limit)
            except IntegrityError:
                # Another process stored the same image or tag first, or GC took a blob between the touch
                # and the link (PostgreSQL): try again, and the checks see what happened.
                if attempt == WRITE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def _put_cached_image(
        self, repository_id: int, image: NewImage, blobs: Sequence[CachedBlob], tag: str | None, now: float, limit: int
    ) -> ImageRow:
        declared = {blob.digest: blob for blob in blobs}
        with self._writing() as conn:
            stored: set[str] = set()
            if declared:
                # Touched first: GC then spares them (or has already taken their rows, and they are not here).
                conn.execute(_TOUCH, {"digests": list(declared), "now": now})
                stored = set(conn.execute(_STORED, {"digests": list(declared)}).scalars())
                if stored:
                    conn.execute(
                        self._insert_repository_blob,
                        [{"repository_id": repository_id, "digest": d, "created_at": now} for d in sorted(stored)],
                    )
            image_id = conn.execute(
                select(_images.c.id).where(_images.c.repository_id == repository_id, _images.c.digest == image.digest)
            ).scalar_one_or_none()
            if image_id is None:
                present = {d: t for d, t in image.blob_media_types.items() if d in stored}
                image_id = self._insert_image(
                    conn, repository_id, replace(image, blob_media_types=present), now, limit
                ).id
                if declared:
                    conn.execute(
                        self._ignoring(_declared),
                        [
                            {"image_id": image_id, "digest": b.digest, "size": b.size, "media_type": b.media_type}
                            for b in declared.values()
                        ],
                    )
            elif stored:
                conn.execute(self._ignoring(schema.image_blobs), [{"image_id": image_id, "digest": d} for d in stored])
            if tag is not None:
                if self._tag_all(conn, repository_id, image_id, [tag], now):  # a new tag, or one that moved
                    conn.execute(PUSHED_TO, {"repository": repository_id, "now": now})
                self._confirm(conn, repository_id, tag, image.digest, now)
            rows = image_rows(conn, select(*_images.c).where(_images.c.id == image_id))
        return rows[0]

    def _confirm(self, conn: Connection, repository_id: int, tag: str, digest: str, now: float) -> None:
        values = {"repository_id": repository_id, "tag": tag, "digest": digest, "checked_at": now}
        insert: Any = postgresql_insert(_tags) if self.engine.dialect.name == "postgresql" else sqlite_insert(_tags)
        conn.execute(
            insert.values(**values).on_conflict_do_update(
                index_elements=[_tags.c.repository_id, _tags.c.tag], set_={"digest": digest, "checked_at": now}
            )
        )

    def cached_tag(self, repository_id: int, tag: str) -> CachedTag | None:
        query = select(_tags.c.digest, _tags.c.checked_at).where(
            _tags.c.repository_id == repository_id, _tags.c.tag == tag
        )
        with self._reading() as conn:
            row = conn.execute(query).first()
        return CachedTag(row.digest, row.checked_at) if row else None

    def confirm_cached_tag(self, repository_id: int, tag: str, digest: str, now: float) -> None:
        with self._writing() as conn:
            self._confirm(conn, repository_id, tag, digest, now)

    def cached_blob(self, repository_id: int, digest: str) -> CachedBlob | None:
        query = (
            select(_declared.c.size, _declared.c.media_type)
            .join(_images, _images.c.id == _declared.c.image_id)
            .where(_images.c.repository_id == repository_id, _declared.c.digest == digest)
            .limit(1)
        )
        with self._reading() as conn:
            row = conn.execute(query).first()
        return CachedBlob(digest, row.size, row.media_type) if row else None

    def link_cached_blob(self, repository_id: int, digest: str, now: float) -> bool:
        with self._writing() as conn:
            # Touched, never made: a row whose bytes GC removed must not come back (as link_blob).
            if not conn.execute(_TOUCH, {"digests": [digest], "now": now}).rowcount:
                return False
            images = conn.execute(_DECLARING_IMAGES, {"repository_id": repository_id, "digest": digest}).all()
            media_type = images[0].media_type if images else None
            row = {"repository_id": repository_id, "digest": digest, "media_type": media_type, "created_at": now}
            if not conn.execute(self._insert_repository_blob, row).rowcount and media_type is not None:
                conn.execute(
                    update(_repo_blobs)
                    .where(
                        _repo_blobs.c.repository_id == repository_id,
                        _repo_blobs.c.digest == digest,
                        _repo_blobs.c.media_type.is_(None),
                    )
                    .values(media_type=media_type)
                )
            if images:
                conn.execute(
                    self._ignoring(schema.image_blobs), [{"image_id": image.id, "digest": digest} for image in images]
                )
            return True

    def cached_total_size(self, registry_id: str, prefix: str) -> int:
        repos = schema.repositories
        start = prefix + "/"
        used = (
            select(schema.image_blobs.c.digest)
            .join(_images, _images.c.id == schema.image_blobs.c.image_id)
            .join(repos, repos.c.id == _images.c.repository_id)
            .where(repos.c.registry_id == registry_id, func.substr(repos.c.name, 1, len(start)) == start)
        )
        query = select(func.coalesce(func.sum(_blobs.c.size), 0)).where(_blobs.c.digest.in_(used))
        with self._reading() as conn:
            return int(conn.execute(query).scalar_one())

    def _ignoring(self, table: Any) -> Any:
        """INSERT that skips rows already there (built once per table)."""
        cache: dict[str, Any] = self.__dict__.setdefault("_pull_through_inserts", {})
        if table.name not in cache:
            cache[table.name] = self._insert_or_ignore(table)
        return cache[table.name]
