"""The gallery's search index: words of a repository's name and description, and its badges.

Rebuilt for a repository whenever its name or catalog data change, so searching is a lookup.
"""

from __future__ import annotations

import re

from pier.core.context import Core
from pier.storage.metadata import RepositoryRow

WORD = re.compile(r"[a-z0-9]+")
TERM_MAX, TERMS_MAX = 64, 200
NAME_WEIGHT, DESCRIPTION_WEIGHT = 2, 1  # a word in the name ranks above one in the description


def words(text: str) -> list[str]:
    return [w[:TERM_MAX] for w in WORD.findall(text.lower())]


def index(core: Core, row: RepositoryRow) -> None:
    """(Re)build the repository's entries in the search index; called whenever name or catalog change."""
    terms: dict[str, int] = {}
    for word in words(row.name):
        terms[word] = NAME_WEIGHT
    for word in words(row.catalog.description or ""):
        terms.setdefault(word, DESCRIPTION_WEIGHT)
    badges = {("architecture", a) for a in row.catalog.architectures}
    badges |= {("os", o) for o in row.catalog.operating_systems}
    core.meta.index_repository(row.id, dict(list(terms.items())[:TERMS_MAX]), badges)
