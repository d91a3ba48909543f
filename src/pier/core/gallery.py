"""The public gallery's view of repositories: cards, search, browsing, publishers, a repository's page.

Anyone may read it, so it shows catalog data, tags, images and download counts, and never policies,
resource tags, uploads or anything about accounts beyond alias, display name and the verified mark.
Pages read metadata only: what an image's config says was gathered when it was pushed
(core/image_details.py), so no page reads a blob.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

from pier import errors
from pier.core import artifacts, catalog, limits, pagination
from pier.core.accounts import Account
from pier.core.context import Core
from pier.core.search_index import words
from pier.storage.metadata import RepositoryRow

QUERY_WORDS_MAX = 8
PAGE_DEFAULT, PAGE_MAX = 24, 100
TAGS_PER_PAGE = 50
SORTS = ("downloads", "pushed", "name")  # repositories: most downloaded (the home page's default), newest, A-Z
SEARCH_SORTS = ("relevance", *SORTS)  # a search with words ranks by relevance unless told otherwise
TAG_SORTS = ("pushed", "name")  # a repository's tags: newest first (the default; ties Z-A), or by name


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
    downloads: int = 0
    verified: bool = False  # the publisher is verified (pier.toml)
    signed: bool = False  # the most recently pushed tagged image has a signature
    cache_of: str | None = None  # a pull-through cache's upstream: <upstream host[:port]>/<repository>

    @property
    def path(self) -> str:
        return f"/{self.alias}/{self.name}"


@dataclass(frozen=True)
class Listing:
    """A page of cards, in `sort` order."""

    cards: list[Card]
    next_token: str | None
    sort: str


@dataclass(frozen=True)
class Publisher:
    alias: str
    display_name: str
    verified: bool
    downloads: int  # all its repositories together
    listing: Listing


@dataclass(frozen=True)
class TagView:
    tag: str
    digest: str
    size: int
    pushed_at: float
    media_type: str
    platforms: tuple[str, ...]
    downloads: int
    signed: bool
    artifact: str | None  # what it is when the tag names an artifact referring to another image
    path: str  # the image page
    pull_command: str  # docker pull <uri>@<digest>


@dataclass(frozen=True)
class RepositoryPage:
    card: Card
    about_text: str | None
    usage_text: str | None
    tags: list[TagView]
    next_token: str | None
    sort: str
    pull_command: str | None
    commands: list[tuple[str, str]]  # (tool, command) for the Usage tab


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


def _sort(sort: str | None, default: str, allowed: tuple[str, ...]) -> str:
    if sort is None or sort == "":
        return default
    if sort not in allowed:
        raise errors.InvalidParameter(f"sort must be one of {', '.join(allowed)}")
    return sort


def search(
    core: Core,
    term: str,
    architectures: list[str],
    operating_systems: list[str],
    max_results: int | None,
    next_token: str | None,
    sort: str | None = None,
) -> Listing:
    """Repositories matching every word of `term` (by prefix), best name matches first unless `sort` says
    otherwise; no term: browse every registry (most downloaded first)."""
    query_words = words(term)[:QUERY_WORDS_MAX]
    if not query_words:
        return browse(core, None, architectures, operating_systems, max_results, next_token, sort)
    order = _sort(sort, "relevance", SEARCH_SORTS)
    badges = _badges(architectures, operating_systems)
    size = _size(max_results)
    listing = "search:" + json.dumps([query_words, sorted(badges), order])
    offset = int(pagination.read_token(core.signer, listing, next_token) or 0)
    rows = [row for row, _ in core.meta.search_repositories(query_words, badges, size + 1, offset, order)]
    return _page(core, listing, rows, size, offset, order)


def browse(
    core: Core,
    alias: str | None,
    architectures: list[str],
    operating_systems: list[str],
    max_results: int | None,
    next_token: str | None,
    sort: str | None = None,
) -> Listing:
    """Repositories (of one registry, or all), most downloaded first unless `sort` says otherwise."""
    registry_id = None
    if alias is not None:
        registry_id = _account(core, alias).id
    order = _sort("downloads" if sort == "relevance" else sort, "downloads", SORTS)  # no words to rank by
    badges = _badges(architectures, operating_systems)
    size = _size(max_results)
    listing = "browse:" + json.dumps([registry_id, sorted(badges), order])
    offset = int(pagination.read_token(core.signer, listing, next_token) or 0)
    rows = core.meta.browse_repositories(registry_id, badges, size + 1, offset, order)
    return _page(core, listing, rows, size, offset, order)


def publisher(
    core: Core,
    alias: str,
    architectures: list[str],
    operating_systems: list[str],
    max_results: int | None,
    next_token: str | None,
    sort: str | None = None,
) -> Publisher:
    """A registry's page: its display name, whether it is verified, its downloads and its repositories."""
    account = _account(core, alias)
    listing = browse(core, alias, architectures, operating_systems, max_results, next_token, sort)
    display_name = core.meta.get_registry_display_name(account.id) or alias
    return Publisher(alias, display_name, account.verified, core.meta.registry_downloads(account.id), listing)


def _account(core: Core, alias: str) -> Account:
    account = core.accounts.by_alias(alias)
    if account is None:
        raise errors.RegistryNotFound(alias)
    return account


def _page(core: Core, listing: str, rows: list[RepositoryRow], size: int, offset: int, sort: str) -> Listing:
    names: dict[str, str] = {}
    shown = rows[:size]
    signed = signed_repositories(core, [row.id for row in shown])
    cards = [replace(card(core, row, names), signed=row.id in signed) for row in shown]
    token = (
        core.signer.sign("page", {"l": listing, "after": str(offset + size)}, ttl=None) if len(rows) > size else None
    )
    return Listing(cards, token, sort)


def signed_repositories(core: Core, repository_ids: list[int]) -> set[int]:
    """Those repositories whose most recently pushed tagged image (or a platform of it) is signed."""
    latest = core.meta.latest_tagged_images(repository_ids)
    signed = core.meta.images_referred_to_by(list(latest.values()), artifacts.SIGNATURE)
    return {repository_id for repository_id, image_id in latest.items() if image_id in signed}


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
        row.downloads,
        bool(account and account.verified),
        cache_of=rule.source(row.name) if rule is not None else None,
    )


def find(core: Core, alias: str, name: str) -> RepositoryRow:
    account = core.accounts.by_alias(alias)
    row = core.meta.get_repository(account.id, name) if account and limits.is_repository_name(name) else None
    if account is None or row is None:
        raise errors.RepositoryNotFound(alias, name)
    return row


def repository_page(
    core: Core, alias: str, name: str, sort: str | None = None, next_token: str | None = None
) -> RepositoryPage:
    """A repository: its catalog data, the commands to use it, and a page of its tags (keyset, 50 a page)."""
    row = find(core, alias, name)
    view = replace(card(core, row), signed=row.id in signed_repositories(core, [row.id]))
    order = _sort(sort, "pushed", TAG_SORTS)
    listing = f"gallery-tags:{row.id}:{order}"
    key = pagination.read_token(core.signer, listing, next_token)
    after: tuple[float, str] | str | None = key
    if key is not None and order == "pushed":
        created_at, tag = json.loads(key)
        after = (float(created_at), str(tag))
    rows = core.meta.tag_page(row.id, order, after, TAGS_PER_PAGE + 1)
    page = pagination.make_page(
        core.signer,
        listing,
        rows,
        TAGS_PER_PAGE,
        key=lambda t: t.tag if order == "name" else json.dumps([t.created_at, t.tag]),
    )
    shown = list(page.items)
    image_ids = [t.image.id for t in shown]
    details = core.meta.image_details(image_ids)
    signed = core.meta.images_referred_to_by(image_ids, artifacts.SIGNATURE)
    downloads = core.meta.image_downloads(row.id, [t.image.digest for t in shown])
    tags = []
    for t in shown:
        found = details.get(t.image.id)
        kind = artifact_label(t.image.artifact_type, found.artifact_kind if found else None)
        tags.append(
            TagView(
                t.tag,
                t.image.digest,
                t.image.size,
                t.created_at,
                t.image.media_type,
                found.platforms if found else (),
                downloads.get(t.image.digest, 0),
                t.image.id in signed,
                kind if t.image.subject_digest else None,
                f"{view.path}:{t.tag}",
                f"docker pull {view.uri}@{t.image.digest}",
            )
        )
    latest = "latest" if core.meta.tag_exists(row.id, "latest") else (shown[0].tag if shown else None)
    pull = f"docker pull {view.uri}:{latest}" if latest else None
    commands = usage_commands(core, view, row.name, latest or "latest")
    return RepositoryPage(
        view, row.catalog.about_text, row.catalog.usage_text, tags, page.next_token, order, pull, commands
    )


def usage_commands(core: Core, view: Card, name: str, tag: str) -> list[tuple[str, str]]:
    """Copy-ready commands naming this repository (plain HTTP needs a flag for all but docker, which takes
    loopback registries as insecure by itself)."""
    plain = core.public_url.startswith("http://")
    image = f"{view.uri}:{tag}"
    return [
        ("docker", f"docker pull {image}"),
        ("podman", f"podman pull {'--tls-verify=false ' if plain else ''}{image}"),
        ("crane", f"crane pull {'--insecure ' if plain else ''}{image} {name.replace('/', '-')}.tar"),
        ("oras", f"oras pull {'--plain-http ' if plain else ''}{image}"),
        (
            "aws",
            f"aws ecr-public describe-images --repository-name {name} --endpoint-url {core.public_url} "
            "--region us-east-1",
        ),
    ]


def artifact_label(artifact_type: str | None, kind: str | None) -> str:
    """How the gallery names an artifact: signature, SBOM, attestation, or its type. `kind` is what was
    decided at push time, from annotations too (a sigstore bundle may be an attestation)."""
    classified = artifacts.classify(artifact_type)
    if kind is not None and kind != classified.kind:
        return artifacts.LABELS.get(kind, artifact_type or "artifact")
    return classified.label
