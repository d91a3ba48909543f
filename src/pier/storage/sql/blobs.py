"""Blobs: their rows, which repositories may use them, garbage collection and leftovers.

Read with uploads.py: GC safety is in how these transactions meet. Every publish of bytes writes (or
touches) the blob's row first, in the transaction that publishes (finish_upload, add_blob); GC deletes a
row in a transaction the image_blobs foreign key refuses once an image uses the blob, and removes bytes
only after that commit, under the digest's row as a lock (remove_unrecorded_blob), so a publish of the
same bytes either keeps them or waits and publishes them again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import (
    Connection,
    bindparam,
    delete,
    exists,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from pier.storage import schema
from pier.storage.sql.engine import Keep, SqlBase

_repos = schema.repositories
_images = schema.images
_repo_blobs = schema.repository_blobs
_uploads = schema.uploads

_TOUCH_BLOB = (
    update(schema.blobs)
    .where(schema.blobs.c.digest == bindparam("blob"), schema.blobs.c.touched_at < bindparam("now"))
    .values(touched_at=bindparam("now"))
)
_BLOBS_OF_REPOSITORY = (
    select(_repo_blobs.c.digest, schema.blobs.c.size, _repo_blobs.c.media_type)
    .join(schema.blobs, schema.blobs.c.digest == _repo_blobs.c.digest)
    .where(
        _repo_blobs.c.repository_id == bindparam("repository_id"),
        _repo_blobs.c.digest.in_(bindparam("digests", expanding=True)),
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
        if not conn.execute(self._insert_blob, row).rowcount:
            conn.execute(_TOUCH_BLOB, {"blob": digest, "now": now})

    def get_blob_size(self, digest: str) -> int | None:
        with self._reading() as conn:
            return conn.execute(select(schema.blobs.c.size).where(schema.blobs.c.digest == digest)).scalar_one_or_none()

    # Blobs in repositories

    def add_repository_blob(self, repository_id: int, digest: str, size: int, now: float) -> bool:
        with self._writing() as conn:
            return self._add_repository_blob(conn, repository_id, digest, size, now)

    def _add_repository_blob(self, conn: Connection, repository_id: int, digest: str, size: int, now: float) -> bool:
        self._record_blob(conn, digest, size, now)
        added = conn.execute(
            self._insert_repository_blob, {"repository_id": repository_id, "digest": digest, "created_at": now}
        ).rowcount
        return bool(added)

    def get_repository_blobs(self, repository_id: int, digests: Sequence[str]) -> dict[str, tuple[int, str | None]]:
        if not digests:
            return {}
        parameters = {"repository_id": repository_id, "digests": list(set(digests))}
        with self._reading() as conn:
            rows = conn.execute(_BLOBS_OF_REPOSITORY, parameters).all()
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
