"""Blobs: their rows, which repositories may use them, garbage collection and leftovers.

Read with uploads.py: GC safety is in how these transactions meet. Every publish of bytes writes (or
touches) the blob's row first, in the transaction that publishes (finish_upload, add_blob); GC deletes a
row in a transaction the image_blobs foreign key refuses once an image uses the blob, and removes bytes
only after that commit, under the digest's row as a lock (remove_unrecorded_blob), so a publish of the
same bytes either keeps them or waits and publishes them again.

A blob `pier fsck --repair` found missing or corrupt is lost (lost_at set, in forget_blob, under its row
as the same lock, so a publish meanwhile is never forgotten): its row stays for the images that need it,
every read of a repository's blobs and every mount skip it, and the next publish of the same bytes (which
touches the row, _TOUCH_BLOB) clears lost_at, for every repository that had it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import (
    Connection,
    Float,
    bindparam,
    case,
    delete,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from pier.storage import schema
from pier.storage.metadata import BlobRecord, BlobUse
from pier.storage.sql.engine import INSERT_BLOB, INSERT_REPOSITORY_BLOB, Keep, SqlBase
from pier.storage.sql.images import TAGS_OF_IMAGES
from pier.storage.sql.prepared import Prepared, write

_repos = schema.repositories
_images = schema.images
_repo_blobs = schema.repository_blobs
_uploads = schema.uploads

_blobs = schema.blobs
_NOW = bindparam("now", type_=Float)
# Touching a blob's row: its bytes were just published (or are about to be, in this transaction), so it is
# not lost any more either.
_TOUCH_BLOB = Prepared(
    update(_blobs)
    .where(_blobs.c.digest == bindparam("blob"), or_(_blobs.c.touched_at < _NOW, _blobs.c.lost_at.is_not(None)))
    .values(touched_at=case((_blobs.c.touched_at < _NOW, _NOW), else_=_blobs.c.touched_at), lost_at=None)
)
_BLOBS_OF_REPOSITORY = Prepared(
    select(_repo_blobs.c.digest, _blobs.c.size, _repo_blobs.c.media_type)
    .join(_blobs, _blobs.c.digest == _repo_blobs.c.digest)
    .where(
        _repo_blobs.c.repository_id == bindparam("repository_id"),
        _repo_blobs.c.digest.in_(bindparam("digests", expanding=True)),
        _blobs.c.lost_at.is_(None),
    )
)


class BlobRows(SqlBase):
    # Blobs

    def add_blob(self, digest: str, size: int, created_at: float, publish: Callable[[], object] | None = None) -> None:
        with self._writing() as conn:
            self._record_blob(conn, digest, size, created_at)
            if publish is not None:
                publish()

    def _record_blob(self, conn: Connection, digest: str, size: int, now: float) -> None:
        """Insert the blob's row, or touch it if it is there (GC spares recently touched blobs)."""
        row = {"digest": digest, "size": size, "created_at": now, "touched_at": now}
        if not write(conn, INSERT_BLOB, row).rowcount:
            write(conn, _TOUCH_BLOB, {"blob": digest, "now": now})

    def get_blob_size(self, digest: str) -> int | None:
        with self._reading() as conn:
            query = select(_blobs.c.size).where(_blobs.c.digest == digest, _blobs.c.lost_at.is_(None))
            return conn.execute(query).scalar_one_or_none()

    # Blobs in repositories

    def link_blob(self, repository_id: int, digest: str, now: float) -> bool:
        blobs = schema.blobs
        with self._writing() as conn:
            # The row is touched, never made: a mount must not bring back a row whose bytes GC removed, nor
            # one whose bytes fsck found missing or corrupt (lost).
            touched = conn.execute(
                update(blobs).where(blobs.c.digest == digest, blobs.c.lost_at.is_(None)).values(touched_at=now)
            ).rowcount
            if not touched:
                return False
            conn.execute(
                self._insert_repository_blob, {"repository_id": repository_id, "digest": digest, "created_at": now}
            )
            return True

    def add_repository_blob(self, repository_id: int, digest: str, size: int, now: float) -> bool:
        with self._writing() as conn:
            return self._add_repository_blob(conn, repository_id, digest, size, now)

    def _add_repository_blob(self, conn: Connection, repository_id: int, digest: str, size: int, now: float) -> bool:
        self._record_blob(conn, digest, size, now)
        added = write(
            conn, INSERT_REPOSITORY_BLOB, {"repository_id": repository_id, "digest": digest, "created_at": now}
        ).rowcount
        return bool(added)

    def get_repository_blobs(self, repository_id: int, digests: Sequence[str]) -> dict[str, tuple[int, str | None]]:
        if not digests:
            return {}
        parameters = {"repository_id": repository_id, "digests": list(set(digests))}
        rows = self._rows(_BLOBS_OF_REPOSITORY, parameters)
        return {digest: (size, media_type) for digest, size, media_type in rows}

    def images_using_blob(self, repository_id: int, digest: str) -> list[str]:
        used = schema.image_blobs
        query = (
            select(_images.c.digest)
            .join(used, used.c.image_id == _images.c.id)
            .where(_images.c.repository_id == repository_id, used.c.digest == digest)
        )
        with self._reading() as conn:
            return list(conn.execute(query).scalars())

    def remove_repository_blob(self, repository_id: int, digest: str) -> None:
        with self._writing() as conn:
            conn.execute(
                delete(_repo_blobs).where(_repo_blobs.c.repository_id == repository_id, _repo_blobs.c.digest == digest)
            )

    # Garbage collection

    def collectable_blobs(self, touched_before: float, after: str | None, limit: int) -> list[tuple[str, int]]:
        blobs = schema.blobs
        query = select(blobs.c.digest, blobs.c.size).where(
            blobs.c.touched_at < touched_before,
            ~exists().where(schema.image_blobs.c.digest == blobs.c.digest),
            ~exists().where(_repos.c.logo_digest == blobs.c.digest),
        )
        if after is not None:
            query = query.where(blobs.c.digest > after)
        with self._reading() as conn:
            return [(digest, size) for digest, size in conn.execute(query.order_by(blobs.c.digest).limit(limit))]

    def collect_blob(self, digest: str, touched_before: float, remove: Callable[[], None]) -> bool:
        blobs = schema.blobs
        try:
            with self._writing() as conn:
                conn.execute(delete(_repo_blobs).where(_repo_blobs.c.digest == digest))
                deleted = conn.execute(
                    delete(blobs).where(
                        blobs.c.digest == digest,
                        blobs.c.touched_at < touched_before,
                        ~exists().where(_repos.c.logo_digest == digest),
                    )
                ).rowcount
                if not deleted:
                    raise Keep
        except (Keep, IntegrityError):  # touched, or an image references it now (the foreign key says so)
            return False

        # Bytes go only after the commit that forgets them (a failed commit must not leave a row without
        # bytes), and then as any unrecorded bytes do: under the digest's row as a lock, so an upload of
        # the same bytes meanwhile either keeps them (its row is there) or waits and publishes them again.
        def removed() -> bool:
            remove()
            return True

        self.remove_unrecorded_blob(digest, 0, removed)
        return True

    def recorded_blobs(self, digests: Sequence[str]) -> set[str]:
        if not digests:
            return set()
        blobs = schema.blobs
        with self._reading() as conn:
            return set(conn.execute(select(blobs.c.digest).where(blobs.c.digest.in_(list(digests)))).scalars())

    def recorded_uploads(self, upload_ids: Sequence[str]) -> set[str]:
        if not upload_ids:
            return set()
        with self._reading() as conn:
            return set(conn.execute(select(_uploads.c.id).where(_uploads.c.id.in_(list(upload_ids)))).scalars())

    def remove_unrecorded_blob(self, digest: str, size: int, remove: Callable[[], bool]) -> bool:
        # The row inserted here and deleted before commit is a lock: every publish records (or touches) the
        # blob's row first, in the same transaction (finish_upload, add_blob), so it waits for this one, and
        # finds no row and the bytes gone, or publishes before and makes the insert find its row.
        blobs = schema.blobs
        try:
            with self._writing() as conn:
                row = {"digest": digest, "size": size, "created_at": 0.0, "touched_at": 0.0}
                if not conn.execute(self._insert_blob, row).rowcount:
                    raise Keep  # recorded meanwhile: not a leftover
                if not remove():
                    raise Keep
                conn.execute(delete(blobs).where(blobs.c.digest == digest))
                return True
        except Keep:
            return False

    # Scrub (pier fsck)

    def blob_records(self, after: str | None, limit: int) -> list[BlobRecord]:
        query = select(_blobs.c.digest, _blobs.c.size, _blobs.c.lost_at)
        if after is not None:
            query = query.where(_blobs.c.digest > after)
        with self._reading() as conn:
            rows = conn.execute(query.order_by(_blobs.c.digest).limit(limit)).all()
        return [BlobRecord(digest, size, lost_at) for digest, size, lost_at in rows]

    def forget_blob(self, digest: str, now: float, confirm: Callable[[], bool]) -> bool | None:
        # Setting lost_at holds the row: every publish touches it first, in its own transaction, so it waits
        # for this one, and confirm() looks at bytes no one replaces meanwhile.
        try:
            with self._writing() as conn:
                held = conn.execute(
                    update(_blobs).where(_blobs.c.digest == digest).values(lost_at=func.coalesce(_blobs.c.lost_at, now))
                ).rowcount
                if not held:
                    return None
                if not confirm():
                    raise Keep
                return True
        except Keep:
            return False

    def blob_users(self, digests: Sequence[str]) -> list[BlobUse]:
        if not digests:
            return []
        used = schema.image_blobs
        wanted = list(set(digests))
        images = (
            select(used.c.digest, _images.c.id, _images.c.digest, _repos.c.id, _repos.c.registry_id, _repos.c.name)
            .join(_images, _images.c.id == used.c.image_id)
            .join(_repos, _repos.c.id == _images.c.repository_id)
            .where(used.c.digest.in_(wanted))
            .order_by(_repos.c.registry_id, _repos.c.name, _images.c.id)
        )
        logos = (
            select(_repos.c.logo_digest, _repos.c.id, _repos.c.registry_id, _repos.c.name)
            .where(_repos.c.logo_digest.in_(wanted))
            .order_by(_repos.c.registry_id, _repos.c.name)
        )
        with self._reading(snapshot=True) as conn:
            found = conn.execute(images).all()
            tags: dict[int, list[str]] = {}
            image_ids = list({row[1] for row in found})
            for start in range(0, len(image_ids), 500):
                for image_id, tag in conn.execute(TAGS_OF_IMAGES, {"ids": image_ids[start : start + 500]}):
                    tags.setdefault(image_id, []).append(tag)
            uses = [
                BlobUse(blob, repository_id, registry_id, name, image, tuple(tags.get(image_id, ())))
                for blob, image_id, image, repository_id, registry_id, name in found
            ]
            uses += [
                BlobUse(blob, repository_id, registry_id, name, None)
                for blob, repository_id, registry_id, name in conn.execute(logos)
            ]
        return uses
