"""Repositories, their resource tags, and registries (display names)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    RowMapping,
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
    CatalogRow,
    Conflict,
    RepositoryRow,
)
from pier.storage.sql.engine import SqlBase

_repos = schema.repositories
_tags = schema.repository_tags
_images = schema.images
_image_tags = schema.image_tags
_repo_blobs = schema.repository_blobs
_uploads = schema.uploads

_REPOSITORY_BY_NAME = select(_repos).where(
    _repos.c.registry_id == bindparam("registry_id"), _repos.c.name == bindparam("name")
)


class RepositoryRows(SqlBase):
    # Repositories

    def insert_repository(
        self, registry_id: str, name: str, created_at: float, catalog: CatalogRow, tags: Mapping[str, str], limit: int
    ) -> RepositoryRow:
        with self._writing(repositories=True) as conn:
            count = conn.execute(
                select(func.count()).select_from(_repos).where(_repos.c.registry_id == registry_id)
            ).scalar_one()
            if count >= limit:
                raise errors.LimitExceeded("repositories in this registry", limit)
            try:
                repository_id = conn.execute(
                    insert(_repos).values(
                        registry_id=registry_id, name=name, created_at=created_at, **catalog_columns(catalog)
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
        return repository_row(row) if row else None

    def list_repositories(self, registry_id: str, after: str | None, limit: int) -> list[RepositoryRow]:
        query = select(_repos).where(_repos.c.registry_id == registry_id)
        if after is not None:
            query = query.where(_repos.c.name > after)
        with self._reading() as conn:
            rows = conn.execute(query.order_by(_repos.c.name).limit(limit)).mappings().all()
        return [repository_row(row) for row in rows]

    def delete_repository(self, repository_id: int) -> None:
        with self._writing(repositories=True) as conn:
            image_ids = select(_images.c.id).where(_images.c.repository_id == repository_id)
            conn.execute(delete(schema.image_blobs).where(schema.image_blobs.c.image_id.in_(image_ids)))
            conn.execute(delete(schema.image_children).where(schema.image_children.c.image_id.in_(image_ids)))
            for table in (_image_tags, _images, _repo_blobs, _uploads, _tags):
                conn.execute(delete(table).where(table.c.repository_id == repository_id))
            conn.execute(delete(_repos).where(_repos.c.id == repository_id))

    def set_policy(self, repository_id: int, policy_text: str | None) -> None:
        with self._writing(repositories=True) as conn:
            conn.execute(update(_repos).where(_repos.c.id == repository_id).values(policy_text=policy_text))

    def set_catalog(self, repository_id: int, catalog: CatalogRow) -> None:
        with self._writing(repositories=True) as conn:
            conn.execute(update(_repos).where(_repos.c.id == repository_id).values(**catalog_columns(catalog)))

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


def catalog_columns(catalog: CatalogRow) -> dict[str, Any]:
    return {
        "description": catalog.description,
        "about_text": catalog.about_text,
        "usage_text": catalog.usage_text,
        "architectures": json.dumps(list(catalog.architectures)),
        "operating_systems": json.dumps(list(catalog.operating_systems)),
        "logo_digest": catalog.logo_digest,
        "has_catalog_data": catalog.is_set,
    }


def repository_row(row: RowMapping) -> RepositoryRow:
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
        int(row["downloads"] or 0),
    )
