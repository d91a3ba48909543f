"""Uploads: their acknowledged sizes (compare-and-set), and finishing one into a blob.

A row is written with an upload's first acknowledged bytes (until then its id is its only state:
core/upload_ids.py). An upload that finishes or is cancelled keeps a row, marked ended (UPLOAD_ENDED),
until it expires, so that its id is refused meanwhile (an id is valid for as long).

finish_upload publishes the bytes inside the transaction that records the blob's row (see blobs.py for
how that meets GC).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    Connection,
    Integer,
    bindparam,
    delete,
    func,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from pier.storage import schema
from pier.storage.metadata import (
    UPLOAD_ENDED,
    UploadRow,
)
from pier.storage.sql.blobs import BlobRows
from pier.storage.sql.prepared import Prepared, write

_uploads = schema.uploads

_IN_PROGRESS = schema.UPLOAD_IN_PROGRESS  # size != UPLOAD_ENDED, as the partial index says it
_ENDED = schema.UPLOAD_ENDED  # size = UPLOAD_ENDED (the number), as ix_uploads_ended says it
_UPLOADS_OF_REPOSITORY = select(_uploads.c.id).where(
    _uploads.c.repository_id == bindparam("repository_id"), _IN_PROGRESS
)
_COUNT_UPLOADS = select(func.count()).select_from(_uploads).where(_IN_PROGRESS)
_UPLOAD_COLUMNS = [_uploads.c[name] for name in UploadRow.__dataclass_fields__]
_UPLOAD_BY_ID = Prepared(select(*_UPLOAD_COLUMNS).where(_uploads.c.id == bindparam("id")))  # UploadRow's order
_REPOSITORY_ID = bindparam("repository_id", type_=_uploads.c.repository_id.type)
_ID = bindparam("id", type_=_uploads.c.id.type)
_NEW_ROW = select(
    *(
        _REPOSITORY_ID if c.name == "repository_id" else _ID if c.name == "id" else bindparam(c.name, type_=c.type)
        for c in _UPLOAD_COLUMNS
    )
)
# The row, in one statement of the write transaction, unless one has its id already (ON CONFLICT: no
# race, no exception, also on PostgreSQL where writers run side by side), or, when limited, unless the
# repository has max_uploads in progress already. The rowcount says which (see SqlBase._insert_or_ignore).
_ROOM = select(func.count()).select_from(_uploads).where(
    _uploads.c.repository_id == _REPOSITORY_ID, _IN_PROGRESS
).scalar_subquery() < bindparam("max_uploads")


def _insert_upload(dialect: str, limited: bool) -> Any:
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    rows = _NEW_ROW.where(_ROOM if limited else true())  # a WHERE: SQLite's upsert after a SELECT wants one
    return (
        insert(_uploads)
        .from_select(_UPLOAD_COLUMNS, rows)
        .on_conflict_do_nothing()
        .execution_options(preserve_rowcount=True)
    )


_INSERT_UPLOAD = Prepared(functools.partial(_insert_upload, limited=False))
_INSERT_UPLOAD_WITHIN = Prepared(functools.partial(_insert_upload, limited=True))
_END_UPLOAD = Prepared(
    update(_uploads)
    .where(_uploads.c.id == bindparam("upload_id"))
    .values(size=UPLOAD_ENDED, updated_at=bindparam("now"))
)
# The oldest ended rows, a batch at a time (each batch a transaction of its own: other writers go between
# them), found through ix_uploads_ended.
FORGET_BATCH = 1000
_OLDEST_ENDED = (
    select(_uploads.c.id)
    .where(_ENDED, _uploads.c.updated_at < bindparam("before"))
    .limit(bindparam("batch", type_=Integer()))
)
_FORGET_ENDED = (
    delete(_uploads).where(_uploads.c.id.in_(_OLDEST_ENDED.scalar_subquery())).execution_options(preserve_rowcount=True)
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
        try:
            with self._writing() as conn:
                if max_in_repository is None:
                    return bool(write(conn, _INSERT_UPLOAD, upload.__dict__).rowcount)
                limited = {**upload.__dict__, "max_uploads": max_in_repository}
                return bool(write(conn, _INSERT_UPLOAD_WITHIN, limited).rowcount)
        except IntegrityError:  # its repository was deleted meanwhile (the foreign key says so)
            return False

    def get_upload(self, upload_id: str) -> UploadRow | None:
        rows = self._rows(_UPLOAD_BY_ID, {"id": upload_id})
        return UploadRow(*rows[0]) if rows else None

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

    def end_upload(self, upload_id: str, repository_id: int, now: float) -> None:
        with self._writing() as conn:
            self._end_upload(conn, upload_id, repository_id, now)

    def _end_upload(
        self, conn: Connection, upload_id: str, repository_id: int, now: float, recorded: bool = True
    ) -> None:
        """Mark the upload ended; its row is written if it had none (`recorded` False: it is known to have none)."""
        if not recorded or not write(conn, _END_UPLOAD, {"upload_id": upload_id, "now": now}).rowcount:
            ended = UploadRow(upload_id, repository_id, UPLOAD_ENDED, 0, False, now, now)
            write(conn, _INSERT_UPLOAD, ended.__dict__)

    def forget_ended_uploads(self, updated_before: float) -> int:
        forgotten = 0
        while True:
            with self._writing() as conn:
                batch = int(conn.execute(_FORGET_ENDED, {"before": updated_before, "batch": FORGET_BATCH}).rowcount)
            forgotten += batch
            if batch < FORGET_BATCH:
                return forgotten

    def upload_ids(self, repository_id: int) -> list[str]:
        with self._reading() as conn:
            return list(conn.execute(_UPLOADS_OF_REPOSITORY, {"repository_id": repository_id}).scalars())

    def count_uploads(self) -> int:
        with self._reading() as conn:
            return int(conn.execute(_COUNT_UPLOADS).scalar_one())

    def stale_uploads(self, updated_before: float) -> list[str]:
        with self._reading() as conn:
            stale = select(_uploads.c.id).where(_uploads.c.updated_at < updated_before, _IN_PROGRESS)
            return list(conn.execute(stale).scalars())

    def finish_upload(
        self,
        upload_id: str,
        repository_id: int,
        digest: str,
        size: int,
        now: float,
        publish: Callable[[], None],
        recorded: bool = True,
    ) -> bool:
        # publish() runs inside the transaction, after the blob's row is written (or locked): GC deletes a
        # row and its bytes in one transaction too, so the two cannot interleave and leave a row without
        # bytes. A crash before commit leaves bytes without a row, which nothing points at.
        with self._writing() as conn:
            added = self._add_repository_blob(conn, repository_id, digest, size, now)
            publish()
            self._end_upload(conn, upload_id, repository_id, now, recorded)
            return added
