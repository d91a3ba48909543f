"""The public gallery's view of repositories: cards, search, browsing, a repository's page.

Anyone may read it, so it shows catalog data, tags and images, and never policies, resource tags,
uploads or anything about accounts beyond alias and display name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pier import errors
from pier.core import catalog, limits, manifests, pagination
from pier.core.context import Core
from pier.core.search_index import words
from pier.storage.metadata import ImageRow, RepositoryRow

QUERY_WORDS_MAX = 8
PAGE_DEFAULT, PAGE_MAX, TAGS_SHOWN = 24, 100, 100
CONFIG_READ_MAX = 64 * 1024  # configs are read (for their platform) only up to this size


@dataclass(frozen=True)
class Card:
    alias: str
    name: str
    uri: str
    display_name: str
    description: str | None
    logo_url: str | None
    architectures: tuple[str, ...]
    operating_systems: tuple[str, ...]
    created_at: float
    last_pushed_at: float | None
    cache_of: str | None = None  # a pull-through cache's upstream: <upstream host[:port]>/<repository>

    @property
    def path(self) -> str:
        return f"/{self.alias}/{self.name}"


@dataclass(frozen=True)
class TagView:
    tag: str
    digest: str
    size: int
    pushed_at: float
    media_type: str
    platforms: tuple[str, ...]


@dataclass(frozen=True)
class RepositoryPage:
    card: Card
    about_text: str | None
    usage_text: str | None
    tags: list[TagView]
    pull_command: str | None


def _badges(architectures: list[str], operating_systems: list[str]) -> set[tuple[str, str]]:
    for value in architectures:
        if value not in catalog.ARCHITECTURES:
            raise errors.InvalidParameter(f"Unknown architecture '{value}': one of {', '.join(catalog.ARCHITECTURES)}")
    for value in operating_systems:
        if value not in catalog.OPERATING_SYSTEMS:
            raise errors.InvalidParameter(f"Unknown operating system '{value}'")
    return {("architecture", a) for a in architectures} | {("os", o) for o in operating_systems}


def _size(max_results: int | None) -> int:
    if max_results is None:
        return PAGE_DEFAULT
    if not 1 <= max_results <= PAGE_MAX:
        raise errors.InvalidParameter(f"maxResults must be between 1 and {PAGE_MAX}")
    return max_results


def search(
    core: Core,
    term: str,
    architectures: list[str],
    operating_systems: list[str],
    max_results: int | None,
    next_token: str | None,
) -> pagination.Page[Card]:
    """Repositories matching every word of `term` (by prefix), best name matches first; no term: browse."""
    query_words = words(term)[:QUERY_WORDS_MAX]
    if not query_words:
        return browse(core, None, architectures, operating_systems, max_results, next_token)
    badges = _badges(architectures, operating_systems)
    size = _size(max_results)
    listing = "search:" + json.dumps([query_words, sorted(badges)])
    offset = int(pagination.read_token(core.signer, listing, next_token) or 0)
    rows = [row for row, _ in core.meta.search_repositories(query_words, badges, size + 1, offset)]
    return _page(core, listing, rows, size, offset)


def browse(
    core: Core,
    alias: str | None,
    architectures: list[str],
    operating_systems: list[str],
    max_results: int | None,
    next_token: str | None,
) -> pagination.Page[Card]:
    """Repositories (of one registry, or all), most recently pushed first."""
    registry_id = None
    if alias is not None:
        account = core.accounts.by_alias(alias)
        if account is None:
            raise errors.RegistryNotFound(alias)
        registry_id = account.id
    badges = _badges(architectures, operating_systems)
    size = _size(max_results)
    listing = "browse:" + json.dumps([registry_id, sorted(badges)])
    offset = int(pagination.read_token(core.signer, listing, next_token) or 0)
    rows = core.meta.browse_repositories(registry_id, badges, size + 1, offset)
    return _page(core, listing, rows, size, offset)


def _page(core: Core, listing: str, rows: list[RepositoryRow], size: int, offset: int) -> pagination.Page[Card]:
    names: dict[str, str] = {}
    cards = [card(core, row, names) for row in rows[:size]]
    token = (
        core.signer.sign("page", {"l": listing, "after": str(offset + size)}, ttl=None) if len(rows) > size else None
    )
    return pagination.Page(cards, token)


def card(core: Core, row: RepositoryRow, display_names: dict[str, str] | None = None) -> Card:
    account = core.accounts.by_id(row.registry_id)
    alias = account.alias if account else row.registry_id
    names = {} if display_names is None else display_names
    if row.registry_id not in names:
        names[row.registry_id] = core.meta.get_registry_display_name(row.registry_id) or alias
    data = catalog.view(core, row.catalog)
    rule = core.pull_through.for_repository(row.registry_id, row.name)
    return Card(
        alias,
        row.name,
        f"{core.public_host}/{alias}/{row.name}",
        names[row.registry_id],
        data.description,
        data.logo_url,
        data.architectures,
        data.operating_systems,
        row.created_at,
        row.last_pushed_at,
        rule.source(row.name) if rule is not None else None,
    )


def repository_page(core: Core, alias: str, name: str) -> RepositoryPage:
    account = core.accounts.by_alias(alias)
    row = core.meta.get_repository(account.id, name) if account and limits.is_repository_name(name) else None
    if account is None or row is None:
        raise errors.RepositoryNotFound(alias, name)
    view = card(core, row)
    tags = [
        TagView(t.tag, t.image.digest, t.image.size, t.created_at, t.image.media_type, platforms(core, t.image))
        for t in core.meta.recent_tags(row.id, TAGS_SHOWN)
    ]
    latest = next((t for t in tags if t.tag == "latest"), tags[0] if tags else None)
    pull = f"docker pull {view.uri}:{latest.tag}" if latest else None
    return RepositoryPage(view, row.catalog.about_text, row.catalog.usage_text, tags, pull)


def platforms(core: Core, image: ImageRow) -> tuple[str, ...]:
    """os/architecture[/variant] of each image an index lists, or of a single image (from its config)."""
    try:
        parsed = manifests.parse(image.manifest or b"", image.media_type)
    except errors.PierError:
        return ()
    if parsed.is_index:
        return tuple(_platform(entry.platform) for entry in parsed.manifests if entry.platform)
    config = parsed.config
    if config is None or config.size > CONFIG_READ_MAX or not core.blobs.exists(config.digest):
        return ()
    try:
        document = json.loads(b"".join(core.blobs.read(config.digest)))
    except (ValueError, OSError):
        return ()
    if not isinstance(document, dict) or not isinstance(document.get("os"), str):
        return ()
    return (_platform(document),)


def _platform(values: dict[str, object]) -> str:
    parts = [str(values.get("os", "")), str(values.get("architecture", ""))]
    if values.get("variant"):
        parts.append(str(values["variant"]))
    return "/".join(parts)
