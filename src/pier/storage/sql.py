"""The metadata store on SQLAlchemy Core: SQLite by default, PostgreSQL with the same code.

SQLite runs in WAL mode with synchronous=FULL: a write is durable when the call returns, and readers
never wait for writers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Engine, RowMapping, create_engine, delete, event, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from pier import errors
from pier.storage import schema
from pier.storage.metadata import CatalogRow, Conflict, RepositoryRow, SigningKey

_repos = schema.repositories
_tags = schema.repository_tags


def open_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


class SqlMetadataStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        schema.metadata.create_all(engine)

    @classmethod
    def from_url(cls, url: str) -> SqlMetadataStore:
        return cls(open_engine(url))

    def close(self) -> None:
        self.engine.dispose()

    # Repositories

    def insert_repository(
        self, registry_id: str, name: str, created_at: float, catalog: CatalogRow, tags: Mapping[str, str], limit: int
    ) -> RepositoryRow:
        with self.engine.begin() as conn:
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
        with self.engine.connect() as conn:
            row = (
                conn.execute(select(_repos).where(_repos.c.registry_id == registry_id, _repos.c.name == name))
                .mappings()
                .first()
            )
        return _repository(row) if row else None

    def list_repositories(self, registry_id: str, after: str | None, limit: int) -> list[RepositoryRow]:
        query = select(_repos).where(_repos.c.registry_id == registry_id)
        if after is not None:
            query = query.where(_repos.c.name > after)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(_repos.c.name).limit(limit)).mappings().all()
        return [_repository(row) for row in rows]

    def delete_repository(self, repository_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(_tags).where(_tags.c.repository_id == repository_id))
            conn.execute(delete(_repos).where(_repos.c.id == repository_id))

    def set_policy(self, repository_id: int, policy_text: str | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(_repos).where(_repos.c.id == repository_id).values(policy_text=policy_text))

    def set_catalog(self, repository_id: int, catalog: CatalogRow) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(_repos).where(_repos.c.id == repository_id).values(**_catalog_columns(catalog)))

    # Resource tags

    def get_tags(self, repository_id: int) -> dict[str, str]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(_tags.c.key, _tags.c.value).where(_tags.c.repository_id == repository_id).order_by(_tags.c.key)
            ).all()
        return {key: value for key, value in rows}

    def change_tags(self, repository_id: int, put: Mapping[str, str], remove: Sequence[str], limit: int) -> None:
        with self.engine.begin() as conn:
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
        with self.engine.connect() as conn:
            return conn.execute(
                select(table.c.display_name).where(table.c.registry_id == registry_id)
            ).scalar_one_or_none()

    def set_registry_display_name(self, registry_id: str, display_name: str) -> None:
        table = schema.registries
        with self.engine.begin() as conn:
            done = conn.execute(
                update(table).where(table.c.registry_id == registry_id).values(display_name=display_name)
            ).rowcount
            if not done:
                conn.execute(insert(table).values(registry_id=registry_id, display_name=display_name))

    # Signing keys

    def signing_keys(self) -> list[SigningKey]:
        table = schema.signing_keys
        with self.engine.connect() as conn:
            rows = conn.execute(select(table).order_by(table.c.created_at.desc())).mappings().all()
        return [SigningKey(row["key_id"], bytes.fromhex(row["secret"]), row["created_at"]) for row in rows]

    def add_signing_key(self, key: SigningKey) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(schema.signing_keys).values(
                    key_id=key.key_id, secret=key.secret.hex(), created_at=key.created_at
                )
            )

    # Blobs

    def add_blob(self, digest: str, size: int, created_at: float) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(schema.blobs).values(digest=digest, size=size, created_at=created_at))
        except IntegrityError:
            pass  # already recorded: blobs are content-addressed

    def get_blob_size(self, digest: str) -> int | None:
        with self.engine.connect() as conn:
            return conn.execute(select(schema.blobs.c.size).where(schema.blobs.c.digest == digest)).scalar_one_or_none()


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
    return RepositoryRow(row["id"], row["registry_id"], row["name"], row["created_at"], row["policy_text"], catalog)
