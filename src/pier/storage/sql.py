"""The metadata store on SQLAlchemy Core: SQLite by default, PostgreSQL with the same code.

This is the one implementation of storage/metadata.py's protocol, so it is long: every transaction pier
makes is here, where one can see which of them lock what (the GC-safety of finish_upload, put_image and
collect_blob depends on reading them together). Sections follow the protocol's.

SQLite runs in WAL mode with synchronous=FULL: a write is durable when the call returns, and readers
never wait for writers. Writers queue across threads and processes, and share commits
(storage/sqlite_writers.py).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    RowMapping,
    Select,
    and_,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from pier import errors
from pier.storage import migrate, schema
from pier.storage.metadata import (
    CatalogRow,
    Conflict,
    ImageRow,
    NewImage,
    PutOutcome,
    RepositoryRow,
    SigningKey,
    TagRow,
    UploadRow,
)
from pier.storage.sqlite_writers import SqliteWriters

_repos = schema.repositories
WRITE_ATTEMPTS = 3  # a write that lost a race to another process is tried again this often
_tags = schema.repository_tags
_images = schema.images
_image_tags = schema.image_tags
_repo_blobs = schema.repository_blobs
_uploads = schema.uploads
_IMAGE_COLUMNS = [c for c in _images.c if c.name != "manifest"]

# Statements that run on every request, built once: building one cost as much as running it.
_REPOSITORY_BY_NAME = select(_repos).where(
    _repos.c.registry_id == bindparam("registry_id"), _repos.c.name == bindparam("name")
)
_UPLOAD_BY_ID = select(_uploads).where(_uploads.c.id == bindparam("id"))
_UPLOADS_OF_REPOSITORY = select(_uploads.c.id).where(_uploads.c.repository_id == bindparam("repository_id"))
_INSERT_UPLOAD = insert(_uploads)
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
# ... and those of put_image, the write every image push ends with.
_PRESENT_BLOBS = select(_repo_blobs.c.digest).where(
    _repo_blobs.c.repository_id == bindparam("repository_id"),
    _repo_blobs.c.digest.in_(bindparam("digests", expanding=True)),
)
_IMAGE_ID_BY_DIGEST = select(_images.c.id).where(
    _images.c.repository_id == bindparam("repository_id"), _images.c.digest == bindparam("digest")
)
_COUNT_IMAGES = select(func.count()).select_from(_images).where(_images.c.repository_id == bindparam("repository_id"))
_INSERT_IMAGE = insert(_images)
_INSERT_IMAGE_BLOBS = insert(schema.image_blobs)
_INSERT_IMAGE_CHILDREN = insert(schema.image_children)
_SET_BLOB_MEDIA_TYPE = (
    update(_repo_blobs)
    .where(_repo_blobs.c.repository_id == bindparam("repository"), _repo_blobs.c.digest == bindparam("blob"))
    .values(media_type=bindparam("blob_media_type"))
)
_TAG_WHERE = (  # not named after the columns: UPDATE reserves those names for its SET values
    _image_tags.c.repository_id == bindparam("in_repository"),
    _image_tags.c.tag == bindparam("tag_name"),
)
_TAGGED_IMAGE = select(_image_tags.c.image_id).where(*_TAG_WHERE)
_INSERT_TAG = insert(_image_tags)
_MOVE_TAG = update(_image_tags).where(*_TAG_WHERE).values(image_id=bindparam("to_image"), created_at=bindparam("now"))
_PUSHED_TO = update(_repos).where(_repos.c.id == bindparam("repository")).values(last_pushed_at=bindparam("now"))
_TAGS_OF_IMAGES = (
    select(_image_tags.c.image_id, _image_tags.c.tag)
    .where(_image_tags.c.image_id.in_(bindparam("ids", expanding=True)))
    .order_by(_image_tags.c.tag)
)


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


def open_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we BEGIN ourselves, below
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # A writing transaction takes the write lock up front (IMMEDIATE), so two writers queue on
            # the busy timeout instead of one failing when it upgrades from reading to writing. A read of
            # one statement needs no BEGIN (the statement is its own snapshot); BEGIN and ROLLBACK were half of
            # a short read's time.
            options = conn.get_execution_options()
            if options.get("pier_write"):
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            elif options.get("pier_snapshot"):
                conn.exec_driver_sql("BEGIN")

        return engine
    return create_engine(url, pool_pre_ping=True)


class SqlMetadataStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._write = engine.execution_options(pier_write=True)
        self._snapshot = engine.execution_options(pier_snapshot=True)
        self._insert_blob = self._insert_or_ignore(schema.blobs)
        self._insert_repository_blob = self._insert_or_ignore(_repo_blobs)
        self._sqlite_writers = (
            SqliteWriters(self._write, engine.url.database or "") if engine.dialect.name == "sqlite" else None
        )
        migrate.upgrade(engine)

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A transaction that writes (every write goes through here)."""
        if self._sqlite_writers is not None:
            with self._sqlite_writers.transaction() as conn:
                yield conn
        else:
            with self._write.begin() as conn:
                yield conn

    def _reading(self, snapshot: bool = False) -> Connection:
        """A connection that only reads: one statement, or with snapshot=True several that must agree."""
        return (self._snapshot if snapshot else self.engine).connect()

    @classmethod
    def from_url(cls, url: str) -> SqlMetadataStore:
        return cls(open_engine(url))

    def close(self) -> None:
        self.engine.dispose()
        if self._sqlite_writers is not None:
            self._sqlite_writers.close()

    # Health

    def ping(self) -> None:
        with self._reading() as conn:
            conn.execute(select(1)).scalar()

    def free_bytes(self) -> int | None:
        if self.engine.dialect.name != "sqlite" or not self.engine.url.database:
            return None
        stats = os.statvfs(os.path.dirname(os.path.abspath(self.engine.url.database)))
        return stats.f_bavail * stats.f_frsize

    # Repositories

    def insert_repository(
        self, registry_id: str, name: str, created_at: float, catalog: CatalogRow, tags: Mapping[str, str], limit: int
    ) -> RepositoryRow:
        with self._writing() as conn:
            count = conn.execute(
                select(func.count()).select_from(_repos).where(_repos.c.registry_id == registry_id)
            ).scalar_one()
            if count >= limit:
                raise errors.LimitExceeded("repositories in this registry", limit)
            try:
                repository_id = conn.execute(
                    insert(_repos).values(
                        registry_id=registry_id, name=name, created_at=created_at, **_catalog_columns(catalog)
                    )
                ).inserted_primary_key[0]  # type: ignore[index]
            except IntegrityError as error:
                raise Conflict(name) from error
            if tags:
                conn.execute(
                    insert(_tags), [{"repository_id": repository_id, "key": k, "value": v} for k, v in tags.items()]
                )
        return RepositoryRow(repository_id, registry_id, name, created_at, None, catalog)

    def get_repository(self, registry_id: str, name: str) -> RepositoryRow | None:
        with self._reading() as conn:
            row = conn.execute(_REPOSITORY_BY_NAME, {"registry_id": registry_id, "name": name}).mappings().first()
        return _repository(row) if row else None

    def list_repositories(self, registry_id: str, after: str | None, limit: int) -> list[RepositoryRow]:
        query = select(_repos).where(_repos.c.registry_id == registry_id)
        if after is not None:
            query = query.where(_repos.c.name > after)
        with self._reading() as conn:
            rows = conn.execute(query.order_by(_repos.c.name).limit(limit)).mappings().all()
        return [_repository(row) for row in rows]

    def delete_repository(self, repository_id: int) -> None:
        with self._writing() as conn:
            image_ids = select(_images.c.id).where(_images.c.repository_id == repository_id)
            conn.execute(delete(schema.image_blobs).where(schema.image_blobs.c.image_id.in_(image_ids)))
            conn.execute(delete(schema.image_children).where(schema.image_children.c.image_id.in_(image_ids)))
            for table in (_image_tags, _images, _repo_blobs, _uploads, _tags):
                conn.execute(delete(table).where(table.c.repository_id == repository_id))
            conn.execute(delete(_repos).where(_repos.c.id == repository_id))

    def set_policy(self, repository_id: int, policy_text: str | None) -> None:
        with self._writing() as conn:
            conn.execute(update(_repos).where(_repos.c.id == repository_id).values(policy_text=policy_text))

    def set_catalog(self, repository_id: int, catalog: CatalogRow) -> None:
        with self._writing() as conn:
            conn.execute(update(_repos).where(_repos.c.id == repository_id).values(**_catalog_columns(catalog)))

    # Resource tags

    def get_tags(self, repository_id: int) -> dict[str, str]:
        with self._reading() as conn:
            rows = conn.execute(
                select(_tags.c.key, _tags.c.value).where(_tags.c.repository_id == repository_id).order_by(_tags.c.key)
            ).all()
        return {key: value for key, value in rows}

    def change_tags(self, repository_id: int, put: Mapping[str, str], remove: Sequence[str], limit: int) -> None:
        with self._writing() as conn:
            where = _tags.c.repository_id == repository_id
            if remove:
                conn.execute(delete(_tags).where(where, _tags.c.key.in_(list(remove))))
            if put:
                conn.execute(delete(_tags).where(where, _tags.c.key.in_(list(put))))
                conn.execute(
                    insert(_tags), [{"repository_id": repository_id, "key": k, "value": v} for k, v in put.items()]
                )
            count = conn.execute(select(func.count()).select_from(_tags).where(where)).scalar_one()
            if count > limit:
                raise errors.TooManyTags("tags on one resource", limit)  # rolls the change back

    # Registries

    def get_registry_display_name(self, registry_id: str) -> str | None:
        table = schema.registries
        with self._reading() as conn:
            return conn.execute(
                select(table.c.display_name).where(table.c.registry_id == registry_id)
            ).scalar_one_or_none()

    def set_registry_display_name(self, registry_id: str, display_name: str) -> None:
        table = schema.registries
        with self._writing() as conn:
            done = conn.execute(
                update(table).where(table.c.registry_id == registry_id).values(display_name=display_name)
            ).rowcount
            if not done:
                conn.execute(insert(table).values(registry_id=registry_id, display_name=display_name))

    # The gallery's index

    def index_repository(self, repository_id: int, terms: Mapping[str, int], badges: set[tuple[str, str]]) -> None:
        terms_table, badges_table = schema.search_terms, schema.repository_badges
        with self._writing() as conn:
            conn.execute(delete(terms_table).where(terms_table.c.repository_id == repository_id))
            conn.execute(delete(badges_table).where(badges_table.c.repository_id == repository_id))
            if terms:
                conn.execute(
                    insert(terms_table),
                    [
                        {"repository_id": repository_id, "term": term, "weight": weight}
                        for term, weight in terms.items()
                    ],
                )
            if badges:
                conn.execute(
                    insert(badges_table),
                    [{"repository_id": repository_id, "kind": kind, "value": value} for kind, value in badges],
                )

    def search_repositories(
        self, words: Sequence[str], badges: set[tuple[str, str]], limit: int, offset: int
    ) -> list[tuple[RepositoryRow, int]]:
        terms = schema.search_terms
        # Terms are [a-z0-9]+, and "{" sorts just after "z": [word, word + "{") is every term it begins.
        hits = [and_(terms.c.term >= word, terms.c.term < word + "{") for word in words]
        best = [func.max(case((hit, terms.c.weight), else_=0)) for hit in hits]
        matched = (
            select(terms.c.repository_id, sum_of(best).label("score"))
            .where(or_(*hits))
            .group_by(terms.c.repository_id)
            .having(and_(*[weight > 0 for weight in best]))
            .subquery()
        )
        query = (
            select(_repos, matched.c.score)
            .join(matched, matched.c.repository_id == _repos.c.id)
            .where(*self._badge_filter(badges))
            .order_by(matched.c.score.desc(), _repos.c.last_pushed_at.desc().nulls_last(), _repos.c.id)
            .limit(limit)
            .offset(offset)
        )
        with self._reading() as conn:
            return [(_repository(row), int(row["score"])) for row in conn.execute(query).mappings()]

    def browse_repositories(
        self, registry_id: str | None, badges: set[tuple[str, str]], limit: int, offset: int
    ) -> list[RepositoryRow]:
        query = select(_repos).where(*self._badge_filter(badges))
        if registry_id is not None:
            query = query.where(_repos.c.registry_id == registry_id)
        query = query.order_by(
            _repos.c.last_pushed_at.desc().nulls_last(), _repos.c.created_at.desc(), _repos.c.id.desc()
        )
        with self._reading() as conn:
            return [_repository(row) for row in conn.execute(query.limit(limit).offset(offset)).mappings()]

    @staticmethod
    def _badge_filter(badges: set[tuple[str, str]]) -> list[Any]:
        table = schema.repository_badges
        return [
            exists().where(table.c.repository_id == _repos.c.id, table.c.kind == kind, table.c.value == value)
            for kind, value in sorted(badges)
        ]

    def recent_tags(self, repository_id: int, limit: int) -> list[TagRow]:
        query = (
            select(_image_tags.c.tag, _image_tags.c.created_at, _image_tags.c.image_id)
            .where(_image_tags.c.repository_id == repository_id)
            .order_by(_image_tags.c.created_at.desc(), _image_tags.c.tag)
            .limit(limit)
        )
        with self._reading(snapshot=True) as conn:
            tags = conn.execute(query).all()
            images = {
                row.id: row
                for row in self._images(
                    conn, select(*_images.c).where(_images.c.id.in_({image_id for _, _, image_id in tags}))
                )
            }
        return [TagRow(tag, created_at, images[image_id]) for tag, created_at, image_id in tags]

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
                    raise _Keep
        except (_Keep, IntegrityError):  # touched, or an image references it now (the foreign key says so)
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
                    raise _Keep  # recorded meanwhile: not a leftover
                if not remove():
                    raise _Keep
                conn.execute(delete(blobs).where(blobs.c.digest == digest))
                return True
        except _Keep:
            return False

    # Signing keys

    def signing_keys(self) -> list[SigningKey]:
        table = schema.signing_keys
        with self._reading() as conn:
            rows = conn.execute(select(table).order_by(table.c.created_at.desc())).mappings().all()
        return [SigningKey(row["key_id"], bytes.fromhex(row["secret"]), row["created_at"]) for row in rows]

    def add_signing_key(self, key: SigningKey) -> None:
        with self._writing() as conn:
            conn.execute(
                insert(schema.signing_keys).values(
                    key_id=key.key_id, secret=key.secret.hex(), created_at=key.created_at
                )
            )

    def remove_signing_keys_except(self, key_id: str) -> None:
        table = schema.signing_keys
        with self._writing() as conn:
            conn.execute(delete(table).where(table.c.key_id != key_id))

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

    def _insert_or_ignore(self, table: Any) -> Any:
        """INSERT that does nothing when the row exists, in the dialect's own words (no race, no exception).
        Its rowcount says which happened: SQLAlchemy 2.1 keeps an INSERT's rowcount only when asked to (with
        psycopg it is -1 otherwise, which reads as "inserted")."""
        statement: Any
        if self.engine.dialect.name == "postgresql":
            statement = postgresql_insert(table).on_conflict_do_nothing()
        else:
            statement = sqlite_insert(table).on_conflict_do_nothing()
        return statement.execution_options(preserve_rowcount=True)

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

    # Images

    def put_image(
        self, repository_id: int, image: NewImage, tag: str | None, now: float, limit: int
    ) -> tuple[PutOutcome, ImageRow]:
        for attempt in range(WRITE_ATTEMPTS):
            try:
                return self._put_image(repository_id, image, tag, now, limit)
            except IntegrityError:
                # Another process stored the same image or tag first (PostgreSQL runs them side by side),
                # or GC removed a blob meanwhile: try again, and the checks see what happened.
                if attempt == WRITE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def _put_image(
        self, repository_id: int, image: NewImage, tag: str | None, now: float, limit: int
    ) -> tuple[PutOutcome, ImageRow]:
        with self._writing() as conn:
            # Checked again here, in the writing transaction, so a concurrent GC cannot slip in between.
            wanted = list(image.blob_media_types)
            present = (
                set(conn.execute(_PRESENT_BLOBS, {"repository_id": repository_id, "digests": wanted}).scalars())
                if wanted
                else set()
            )
            if missing := sorted(set(wanted) - present):
                raise errors.LayersNotFound(missing)
            image_id = conn.execute(
                _IMAGE_ID_BY_DIGEST, {"repository_id": repository_id, "digest": image.digest}
            ).scalar_one_or_none()
            inserted = None if image_id is not None else self._insert_image(conn, repository_id, image, now, limit)
            created = inserted is not None
            if inserted is not None:
                image_id = inserted.id
            outcome = PutOutcome.CREATED if created else PutOutcome.UNCHANGED
            if tag is not None:
                where = {"in_repository": repository_id, "tag_name": tag}
                current = conn.execute(_TAGGED_IMAGE, where).scalar_one_or_none()
                if current is None:
                    tag_row = {"repository_id": repository_id, "tag": tag, "image_id": image_id, "created_at": now}
                    conn.execute(_INSERT_TAG, tag_row)
                elif current != image_id:
                    conn.execute(_MOVE_TAG, {**where, "to_image": image_id, "now": now})
                if current != image_id and not created:
                    outcome = PutOutcome.TAGGED
            if outcome is not PutOutcome.UNCHANGED:
                conn.execute(_PUSHED_TO, {"repository": repository_id, "now": now})
            if inserted is not None:  # what the database would answer, without asking it
                row = replace(inserted, tags=(tag,) if tag is not None else ())
            else:
                row = self._images(conn, select(*_IMAGE_COLUMNS).where(_images.c.id == image_id))[0]
        return outcome, row

    @staticmethod
    def _insert_image(conn: Connection, repository_id: int, image: NewImage, now: float, limit: int) -> ImageRow:
        """Insert the image and what it uses; the row as inserted (without tags or manifest)."""
        count = conn.execute(_COUNT_IMAGES, {"repository_id": repository_id}).scalar_one()
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
        image_id: int = conn.execute(_INSERT_IMAGE, row).inserted_primary_key[0]  # type: ignore[index]
        if image.blob_media_types:
            conn.execute(_INSERT_IMAGE_BLOBS, [{"image_id": image_id, "digest": d} for d in image.blob_media_types])
            conn.execute(
                _SET_BLOB_MEDIA_TYPE,
                [
                    {"repository": repository_id, "blob": d, "blob_media_type": mt}
                    for d, mt in image.blob_media_types.items()
                ],
            )
        if image.child_digests:
            conn.execute(
                _INSERT_IMAGE_CHILDREN,
                [{"image_id": image_id, "child_digest": d} for d in dict.fromkeys(image.child_digests)],
            )
        return ImageRow(id=image_id, **{k: v for k, v in row.items() if k != "manifest"})

    def get_image(
        self, repository_id: int, *, digest: str | None = None, tag: str | None = None, with_manifest: bool = False
    ) -> ImageRow | None:
        query = _image_lookup(with_manifest, digest is not None, tag is not None)
        with self._reading(snapshot=True) as conn:
            rows = self._images(conn, query, {"repository_id": repository_id, "digest": digest, "tag": tag})
        return rows[0] if rows else None

    def get_images(self, repository_id: int, digests: Sequence[str]) -> list[ImageRow]:
        query = select(*_IMAGE_COLUMNS).where(
            _images.c.repository_id == repository_id, _images.c.digest.in_(list(set(digests)))
        )
        with self._reading(snapshot=True) as conn:
            return self._images(conn, query)

    def list_images(self, repository_id: int, after_id: int | None, limit: int) -> list[ImageRow]:
        query = select(*_IMAGE_COLUMNS).where(_images.c.repository_id == repository_id)
        if after_id is not None:
            query = query.where(_images.c.id > after_id)
        with self._reading(snapshot=True) as conn:
            return self._images(conn, query.order_by(_images.c.id).limit(limit))

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
                for row in self._images(
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
            return self._images(conn, query.order_by(_images.c.id))

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

    @staticmethod
    def _images(conn: Connection, query: Select[Any], parameters: Mapping[str, Any] | None = None) -> list[ImageRow]:
        rows = conn.execute(query, parameters).mappings().all()
        if not rows:
            return []
        tags: dict[int, list[str]] = {}
        for image_id, tag in conn.execute(_TAGS_OF_IMAGES, {"ids": [row["id"] for row in rows]}):
            tags.setdefault(image_id, []).append(tag)
        return [
            ImageRow(
                id=row["id"],
                repository_id=row["repository_id"],
                digest=row["digest"],
                media_type=row["media_type"],
                artifact_media_type=row["artifact_media_type"],
                artifact_type=row["artifact_type"],
                subject_digest=row["subject_digest"],
                size=row["size"],
                pushed_at=row["pushed_at"],
                tags=tuple(tags.get(row["id"], ())),
                manifest=row.get("manifest"),
            )
            for row in rows
        ]

    # Uploads

    def insert_upload(self, upload: UploadRow) -> None:
        with self._writing() as conn:
            conn.execute(_INSERT_UPLOAD, upload.__dict__)

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


class _Keep(Exception):
    """Roll back a collection: the blob is in use again."""


def sum_of(values: Sequence[Any]) -> Any:
    total = values[0]
    for value in values[1:]:
        total = total + value
    return total


def _catalog_columns(catalog: CatalogRow) -> dict[str, Any]:
    return {
        "description": catalog.description,
        "about_text": catalog.about_text,
        "usage_text": catalog.usage_text,
        "architectures": json.dumps(list(catalog.architectures)),
        "operating_systems": json.dumps(list(catalog.operating_systems)),
        "logo_digest": catalog.logo_digest,
        "has_catalog_data": catalog.is_set,
    }


def _repository(row: RowMapping) -> RepositoryRow:
    catalog = CatalogRow(
        description=row["description"],
        about_text=row["about_text"],
        usage_text=row["usage_text"],
        architectures=tuple(json.loads(row["architectures"] or "[]")),
        operating_systems=tuple(json.loads(row["operating_systems"] or "[]")),
        logo_digest=row["logo_digest"],
        is_set=bool(row["has_catalog_data"]),
    )
    return RepositoryRow(
        row["id"],
        row["registry_id"],
        row["name"],
        row["created_at"],
        row["policy_text"],
        catalog,
        row["last_pushed_at"],
    )
