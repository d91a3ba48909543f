"""Manifests through a pull-through cache: what is cached, what the upstream says, and what to answer.

By digest: a cached manifest is answered as it is (a digest names its bytes for ever); otherwise it is
fetched, checked against the digest, and kept. By tag: a tag confirmed by the upstream within the rule's
tag_ttl_seconds is answered from the cache; after that, a HEAD to the upstream (which Docker Hub does not
count against pull limits) says whether it still names the cached manifest, and the manifest is fetched
again only when it moved. If the upstream cannot be asked (down, 429, 5xx, or anything else failing), a
cached tag is answered stale; with nothing cached, the failure is the answer.

Clients that may not cause fetches (anonymous ones, unless the rule allows them) get what is cached, as
cached, and never cause a request to the upstream, not even a HEAD.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

from pier import errors
from pier.core import limits, pullthrough
from pier.core.blobs import check_digest
from pier.core.context import Core
from pier.core.pullthrough import Rule
from pier.pullthrough.upstream import Upstream
from pier.storage.metadata import ImageRow
from pier.web.threads import run_sync

T = TypeVar("T")


class LoginRequired(Exception):
    """The client may not cause a fetch, and what it asked for is not cached."""


@dataclass(frozen=True)
class Resolved:
    image: ImageRow  # with its manifest
    stale: bool = False  # answered from the cache because the upstream could not be asked


class SingleFlight:
    """Concurrent requests for the same thing share one run of it (which finishes even if they go away)."""

    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Future[Any]] = {}

    async def run(self, key: Hashable, make: Callable[[], Awaitable[T]]) -> T:
        running: asyncio.Future[T] | None = self._running.get(key)
        if running is None:
            started = asyncio.ensure_future(make())
            self._running[key] = started
            started.add_done_callback(lambda _: self._running.pop(key, None))
            running = started
        return await asyncio.shield(running)


async def resolve(
    core: Core,
    upstream: Upstream,
    flights: SingleFlight,
    rule: Rule,
    registry_id: str,
    name: str,
    reference: str,
    may_fetch: bool,
) -> Resolved:
    repository = await run_sync(core.meta.get_repository, registry_id, name)

    async def fetch() -> ImageRow:
        key = (registry_id, name, reference)
        return await flights.run(key, lambda: _fetch(core, upstream, rule, registry_id, name, reference))

    if ":" in reference:
        check_digest(reference)
        if repository is not None:
            image = await run_sync(pullthrough.cached_image, core, repository, reference)
            if image is not None:
                return Resolved(image)
        if not may_fetch:
            raise LoginRequired()
        return Resolved(await fetch())
    if not limits.is_image_tag(reference):
        raise errors.ImageNotFound(registry_id, name, reference)
    cached = await run_sync(pullthrough.cached_tag, core, repository, reference) if repository else None
    if cached is None:
        if not may_fetch:
            raise LoginRequired()
        return Resolved(await fetch())
    image, checked = cached
    if not may_fetch or (checked is not None and pullthrough.is_fresh(rule, checked, core.clock())):
        return Resolved(image)
    assert repository is not None
    try:
        head = await upstream.manifest(rule.upstream_repository(name), reference, head=True)
        if head.digest == image.digest:
            await run_sync(pullthrough.confirm_tag, core, repository, reference, image.digest)
            return Resolved(image)
        return Resolved(await fetch())  # moved (or the upstream did not say to what): fetched again
    except errors.UpstreamFailed:
        return Resolved(image, stale=True)


async def _fetch(core: Core, upstream: Upstream, rule: Rule, registry_id: str, name: str, reference: str) -> ImageRow:
    fetched = await upstream.manifest(rule.upstream_repository(name), reference)
    assert fetched.data is not None
    return await run_sync(
        pullthrough.store_manifest,
        core,
        rule,
        registry_id,
        name,
        fetched.data,
        fetched.media_type,
        reference,
        fetched.digest,
    )
