"""Uploads in progress: their acknowledged sizes (compare-and-set), and finishing one into a blob.

finish_upload publishes the bytes inside the transaction that records the blob's row (see blobs.py for
how that meets GC).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)

from pier.storage import schema
from pier.storage.metadata import (
    UploadRow,
)
from pier.storage.sql.blobs import BlobRows

_uploads = schema.uploads

_UPLOAD_BY_ID = select(_uploads).where(_uploads.c.id == bindparam("id"))
_UPLOADS_OF_REPOSITORY = select(_uploads.c.id).where(_uploads.c.repository_id == bindparam("repository_id"))
_COUNT_UPLOADS = select(func.count()).select_from(_uploads)
_INSERT_UPLOAD = insert(_uploads)
_UPLOAD_COLUMNS = [_uploads.c[name] for name in UploadRow.__dataclass_fields__]
_REPOSITORY_ID = bindparam("repository_id", type_=_uploads.c.repository_id.type)
# One statement, in the write transaction: the row, unless the repository has max_uploads already. Its
# rowcount says which (kept when asked: see SqlBase._insert_or_ignore).
_INSERT_UPLOAD_WITHIN = (
    insert(_uploads)
    .from_select(
        _UPLOAD_COLUMNS,
        select(
            *(_REPOSITORY_ID if c.name == "repository_id" else bindparam(c.name, type_=c.type) for c in _UPLOAD_COLUMNS)
        ).where(
            select(func.count())
            .select_from(_uploads)
            .where(_uploads.c.repository_id == _REPOSITORY_ID)
            .scalar_subquery()
            < bindparam("max_uploads")
        ),
    )
    .execution_options(preserve_rowcount=True)
)
_ADVANCE_UPLOAD = (
    update(_uploads)
    .where(_uploads.c.id == bindparam("upload_id"), _uploads.c.size == bindparam("expected_size"))
    .values(
        size=bindparam("new_size"),
        last_part_size=bindparam("part_size"),
        updated_at=bindparam("now"),
        small_inner_part=bindparam("small"),
    )
)
_DELETE_UPLOAD = delete(_uploads).where(_uploads.c.id == bindparam("upload_id"))


class UploadRows(BlobRows):
    # Uploads

    def insert_upload(self, upload: UploadRow, max_in_repository: int | None = None) -> bool:
        with self._writing() as conn:
            if max_in_repository is None:
                conn.execute(_INSERT_UPLOAD, upload.__dict__)
                return True
            inserted = conn.execute(_INSERT_UPLOAD_WITHIN, {**upload.__dict__, "max_uploads": max_in_repository})
            return bool(inserted.rowcount)

    def get_upload(self, upload_id: str) -> UploadRow | None:
        with self._reading() as conn:
            row = conn.execute(_UPLOAD_BY_ID, {"id": upload_id}).mappings().first()
        return UploadRow(**row) if row else None

    def advance_upload(
        self, upload_id: str, expected_size: int, new_size: int, now: float, small_inner_part: bool
    ) -> bool:
        with self._writing() as conn:
            done = conn.execute(
                _ADVANCE_UPLOAD,
                {
                    "upload_id": upload_id,
                    "expected_size": expected_size,
                    "new_size": new_size,
                    "part_size": new_size - expected_size,
                    "now": now,
                    "small": small_inner_part,
                },
            ).rowcount
            return bool(done)

    def delete_upload(self, upload_id: str) -> None:
        with self._writing() as conn:
            conn.execute(_DELETE_UPLOAD, {"upload_id": upload_id})

    def upload_ids(self, repository_id: int) -> list[str]:
        with self._reading() as conn:
            return list(conn.execute(_UPLOADS_OF_REPOSITORY, {"repository_id": repository_id}).scalars())

    def count_uploads(self) -> int:
        with self._reading() as conn:
            return int(conn.execute(_COUNT_UPLOADS).scalar_one())

    def stale_uploads(self, updated_before: float) -> list[str]:
        with self._reading() as conn:
            return list(conn.execute(select(_uploads.c.id).where(_uploads.c.updated_at < updated_before)).scalars())

    def finish_upload(
        self, upload_id: str, repository_id: int, digest: str, size: int, now: float, publish: Callable[[], None]
    ) -> bool:
        # publish() runs inside the transaction, after the blob's row is written (or locked): GC deletes a
        # row and its bytes in one transaction too, so the two cannot interleave and leave a row without
        # bytes. A crash before commit leaves bytes without a row, which nothing points at.
        with self._writing() as conn:
            added = self._add_repository_blob(conn, repository_id, digest, size, now)
            publish()
            conn.execute(_DELETE_UPLOAD, {"upload_id": upload_id})
            return added
