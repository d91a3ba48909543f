"""The gallery's search index (terms and badges) and the queries its pages make.

Listings of repositories sort by `sort`: "downloads" (most first), "pushed" (newest push first), "name", or
(searches only) "relevance"; ties fall back to the newest push. A repository's tags page by keyset.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    Select,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    tuple_,
)

from pier.storage import schema
from pier.storage.metadata import (
    RepositoryRow,
    TagRow,
)
from pier.storage.sql.engine import SqlBase
from pier.storage.sql.image_details import image_row
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
        self, words: Sequence[str], badges: set[tuple[str, str]], limit: int, offset: int, sort: str = "relevance"
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
            .order_by(*_order(sort, matched.c.score.desc()))
            .limit(limit)
            .offset(offset)
        )
        with self._reading() as conn:
            return [(repository_row(row), int(row["score"])) for row in conn.execute(query).mappings()]

    def browse_repositories(
        self, registry_id: str | None, badges: set[tuple[str, str]], limit: int, offset: int, sort: str = "pushed"
    ) -> list[RepositoryRow]:
        query = select(_repos).where(*self._badge_filter(badges))
        if registry_id is not None:
            query = query.where(_repos.c.registry_id == registry_id)
        query = query.order_by(*_order(sort))
        with self._reading() as conn:
            return [repository_row(row) for row in conn.execute(query.limit(limit).offset(offset)).mappings()]

    @staticmethod
    def _badge_filter(badges: set[tuple[str, str]]) -> list[Any]:
        table = schema.repository_badges
        return [
            exists().where(table.c.repository_id == _repos.c.id, table.c.kind == kind, table.c.value == value)
            for kind, value in sorted(badges)
        ]

    def tag_page(
        self, repository_id: int, sort: str, after: tuple[float, str] | str | None, limit: int
    ) -> list[TagRow]:
        """A page of the repository's tags with their images (no manifests): sort "pushed" is newest first
        (ties by name, descending; after: (created_at, tag) of the last tag seen), "name" by name (after:
        the last name seen). Either way an index gives the page in order: its cost does not grow with the
        number of tags."""
        by_name = sort == "name"
        parameters: dict[str, Any] = {"repository_id": repository_id, "limit": limit}
        if by_name and after is not None:
            parameters["after_tag"] = after
        elif isinstance(after, tuple):
            parameters["after_created_at"], parameters["after_tag"] = after
        query = _tag_page(by_name, len(parameters) > 2)
        with self._reading() as conn:
            rows = conn.execute(query, parameters).mappings().all()
        return [TagRow(row["tag"], row["created_at"], image_row(row)) for row in rows]

    def latest_tagged_images(self, repository_ids: Sequence[int]) -> dict[int, int]:
        """repository id -> the image its most recently pushed tag names, for those with a tagged image.
        Artifacts that refer to another image (signatures, SBOMs, under tags of their own) are not images."""
        if not repository_ids:
            return {}
        with self._reading() as conn:
            rows = conn.execute(_LATEST_TAGGED, {"ids": sorted(set(repository_ids))})
            return {r: i for r, i in rows if i is not None}

    def tag_exists(self, repository_id: int, tag: str) -> bool:
        with self._reading() as conn:
            return conn.execute(_TAG_EXISTS, {"repository_id": repository_id, "tag": tag}).first() is not None


_IMAGE_COLUMNS = [c for c in _images.c if c.name != "manifest"]


@functools.cache
def _tag_page(by_name: bool, after: bool) -> Select[Any]:
    """A page of tags with their images, built once per shape (building a statement costs as much as
    running it)."""
    tags = _image_tags.c
    query = (
        select(tags.tag, tags.created_at, *_IMAGE_COLUMNS)
        .join(_images, _images.c.id == tags.image_id)
        .where(tags.repository_id == bindparam("repository_id"))
    )
    if by_name:
        if after:
            query = query.where(tags.tag > bindparam("after_tag"))
        query = query.order_by(tags.tag)
    else:
        if after:
            query = query.where(
                tuple_(tags.created_at, tags.tag) < tuple_(bindparam("after_created_at"), bindparam("after_tag"))
            )
        query = query.order_by(tags.created_at.desc(), tags.tag.desc())
    return query.limit(bindparam("limit"))


_LATEST = (
    select(_images.c.id)
    .join(_image_tags, _image_tags.c.image_id == _images.c.id)
    .where(_image_tags.c.repository_id == _repos.c.id, _images.c.subject_digest.is_(None))
    .order_by(_image_tags.c.created_at.desc(), _image_tags.c.tag.desc())
    .limit(1)
    .correlate(_repos)
    .scalar_subquery()
)
_LATEST_TAGGED = select(_repos.c.id, _LATEST.label("image_id")).where(_repos.c.id.in_(bindparam("ids", expanding=True)))
_TAG_EXISTS = select(_image_tags.c.tag).where(
    _image_tags.c.repository_id == bindparam("repository_id"), _image_tags.c.tag == bindparam("tag")
)
_PUSHED = (_repos.c.last_pushed_at.desc().nulls_last(), _repos.c.created_at.desc(), _repos.c.id.desc())


def _order(sort: str, score: Any = None) -> tuple[Any, ...]:
    """ORDER BY of a listing of repositories; `score` ranks searches (first when sorting by relevance)."""
    ranked = (score,) if score is not None else ()
    if sort == "downloads":
        return (_repos.c.downloads.desc(), *ranked, *_PUSHED)
    if sort == "name":
        return (_repos.c.name, _repos.c.registry_id, *ranked, _repos.c.id)
    if sort == "relevance":
        return (*ranked, *_PUSHED)
    return (*_PUSHED[:1], *ranked, *_PUSHED[1:])


def sum_of(values: Sequence[Any]) -> Any:
    total = values[0]
    for value in values[1:]:
        total = total + value
    return total
