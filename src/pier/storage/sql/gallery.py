"""The gallery's search index (terms and badges) and the queries its pages make."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
)

from pier.storage import schema
from pier.storage.metadata import (
    RepositoryRow,
    TagRow,
)
from pier.storage.sql.engine import SqlBase
from pier.storage.sql.images import image_rows
from pier.storage.sql.repositories import repository_row

_repos = schema.repositories
_images = schema.images
_image_tags = schema.image_tags


class GalleryRows(SqlBase):
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
            return [(repository_row(row), int(row["score"])) for row in conn.execute(query).mappings()]

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
            return [repository_row(row) for row in conn.execute(query.limit(limit).offset(offset)).mappings()]

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
                for row in image_rows(
                    conn, select(*_images.c).where(_images.c.id.in_({image_id for _, _, image_id in tags}))
                )
            }
        return [TagRow(tag, created_at, images[image_id]) for tag, created_at, image_id in tags]


def sum_of(values: Sequence[Any]) -> Any:
    total = values[0]
    for value in values[1:]:
        total = total + value
    return total
