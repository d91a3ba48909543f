"""GET/HEAD of manifests and blobs of a pull-through cache: /v2/<alias>/<prefix>/<name>/...

routes.py sends the pull routes here when the name falls under a rule (pushes are refused by the core, as
any write into a cache is). What is cached is answered as any repository's content is (these handlers
hand stored blobs to blobs.get_blob); the rest comes from the upstream through pier/pullthrough.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from pier import errors
from pier.core import pullthrough
from pier.core.access import is_repository_path
from pier.core.context import Core
from pier.core.principals import Caller
from pier.core.pullthrough import Rule
from pier.oci import auth, blobs
from pier.oci.blobs import blob_headers
from pier.oci.context import OciRequest
from pier.oci.errors import OciError, require_digest
from pier.oci.manifests import accepted_types, manifest_response
from pier.pullthrough import PullThrough
from pier.pullthrough.manifests import LoginRequired, Resolved, resolve
from pier.storage.metadata import RepositoryRow
from pier.web.threads import run_sync

STALE = {"Warning": '110 - "Response is Stale"'}
# The status each way an upstream can fail is answered with (NOT_FOUND: the door's own 404 code).
STATUS = {
    errors.UpstreamFailed.TIMEOUT: 504,
    errors.UpstreamFailed.BUSY: 503,
}


@dataclass(frozen=True)
class CacheRequest:
    request: Request
    core: Core
    caller: Caller | None
    name: str  # <alias>/<repository>, as in the URL
    registry_id: str
    repository_name: str
    rule: Rule
    cache: PullThrough

    @property
    def may_fetch(self) -> bool:
        """Whether this client may cause requests to the upstream (else it gets what is cached)."""
        return self.caller is not None or self.rule.allow_anonymous_pull_through

    def stored(self, repository: RepositoryRow) -> OciRequest:
        """The request as the door's own handlers take it, for what the cache repository has stored."""
        return OciRequest(self.request, self.core, self.caller, repository, self.name)


def rule_for(core: Core, path: str) -> tuple[str, str, Rule] | None:
    """(registry id, repository name, rule) when `path` (<alias>/<name>) is in a pull-through cache."""
    if not core.pull_through.by_account or not is_repository_path(path):
        return None
    alias, _, name = path.partition("/")
    account = core.accounts.by_alias(alias)
    rule = core.pull_through.for_repository(account.id, name) if account is not None else None
    return (account.id, name, rule) if account is not None and rule is not None else None


async def get_manifest(creq: CacheRequest) -> Response:
    reference = creq.request.path_params["reference"]
    resolved = await _resolve(creq, reference)
    image = resolved.image
    accepted = accepted_types(creq.request)
    if accepted is not None and image.media_type not in accepted:
        # A client that cannot take an index gets its linux/amd64 image, fetched now if need be.
        child = pullthrough.index_child(image, accepted)
        if child is None:
            raise errors.ImageNotFound(
                creq.registry_id, creq.repository_name, f"{reference} (stored as {image.media_type}, not accepted)"
            )
        child_resolved = await _resolve(creq, child)
        resolved = Resolved(child_resolved.image, resolved.stale or child_resolved.stale)
        image = resolved.image
    return manifest_response(creq.core, creq.request.method, image, STALE if resolved.stale else None)


async def _resolve(creq: CacheRequest, reference: str) -> Resolved:
    upstream = creq.cache.upstream(creq.registry_id, creq.rule)
    try:
        return await resolve(
            creq.core,
            upstream,
            creq.cache.manifests,
            creq.rule,
            creq.registry_id,
            creq.repository_name,
            reference,
            creq.may_fetch,
        )
    except LoginRequired:
        raise _login(creq) from None
    except errors.UpstreamFailed as failed:
        raise _failed(failed, "MANIFEST_UNKNOWN") from None


async def get_blob(creq: CacheRequest) -> Response:
    digest = require_digest(creq.request.path_params["digest"])
    core = creq.core
    repository = await run_sync(core.meta.get_repository, creq.registry_id, creq.repository_name)
    declared = None
    if repository is not None:
        try:
            return await blobs.get_blob(creq.stored(repository))
        except errors.BlobNotFound:
            pass
        declared = await run_sync(pullthrough.declared_blob, core, repository, digest)
        # Stored already (by another cache or repository): a cached manifest here names it, so it is ours too,
        # if this cache's limits let it in.
        if declared is not None and await _link(creq, repository, digest, declared.size):
            return await blobs.get_blob(creq.stored(repository))
    if not creq.may_fetch:
        raise _login(creq)
    upstream = creq.cache.upstream(creq.registry_id, creq.rule)
    upstream_name = creq.rule.upstream_repository(creq.repository_name)
    try:
        if creq.request.method == "HEAD":  # the size, from the manifest or the upstream; nothing fetched
            size = declared.size if declared is not None else await upstream.blob_size(upstream_name, digest)
            if size is None:
                raise errors.UpstreamFailed(upstream.host, errors.UpstreamFailed.INVALID, "gave no size for the blob")
            pullthrough.check_layer_size(creq.rule, creq.repository_name, digest, size)
            return Response(b"", 200, {**blob_headers(digest), "Content-Length": str(size)})
        fetches = creq.cache.fetches
        fetch = fetches.get(digest)
        # A Range, or a blob being fetched already: served from the store once it is there.
        live = fetch is None and "range" not in creq.request.headers
        if fetch is None:
            size = declared.size if declared is not None else None
            fetch = fetches.start(core, upstream, creq.rule, creq.registry_id, creq.repository_name, digest, size, live)
        if live and fetch.live is not None:
            size = await fetch.wait_ready()
            headers = {**blob_headers(digest), "Content-Length": str(size)}
            body = await fetch.live.opened(fetch)
            return StreamingResponse(body, 200, headers, media_type="application/octet-stream")
        await fetch.finished()
    except errors.UpstreamFailed as failed:
        raise _failed(failed, "BLOB_UNKNOWN") from None
    # Stored now (perhaps by a fetch for another repository or rule): usable here once this rule's limits
    # say so, then served as any stored blob.
    repository = await run_sync(pullthrough.ensure_repository, core, creq.registry_id, creq.repository_name)
    if not await _link(creq, repository, digest, fetch.size or 0):
        raise errors.BlobNotFound(digest)
    return await blobs.get_blob(creq.stored(repository))


async def _link(creq: CacheRequest, repository: RepositoryRow, digest: str, size: int) -> bool:
    """Let the cache repository use a blob pier stores, within the rule's limits; False if it is not stored."""
    in_flight = creq.cache.fetches.in_flight(creq.registry_id, creq.rule, but=None)  # on the loop, which owns them

    def link() -> bool:
        core = creq.core
        if core.meta.get_repository_blobs(repository.id, [digest]):
            return True  # linked meanwhile (by the fetch that stored it)
        pullthrough.check_room(core, creq.rule, creq.registry_id, creq.repository_name, digest, size, in_flight)
        return pullthrough.link_blob(core, repository, digest)

    return await run_sync(link)


def _login(creq: CacheRequest) -> OciError:
    core = creq.core
    how = f"aws ecr-public get-login-password | docker login --username AWS --password-stdin {core.public_host}"
    message = (
        f"{creq.name} is a pull-through cache of {creq.rule.source(creq.repository_name)} and this is not cached "
        f"yet: log in to pull it through ({how})"
    )
    return auth.unauthorized(core, message, f"repository:{creq.name}:pull")


def _failed(failed: errors.UpstreamFailed, not_found_code: str) -> OciError:
    if failed.kind == errors.UpstreamFailed.NOT_FOUND:
        return OciError(not_found_code, 404, failed.message)
    status = STATUS.get(failed.kind, 502)
    headers = {"Retry-After": str(failed.retry_after or errors.Unavailable.RETRY_AFTER)} if status == 503 else None
    return OciError("UNAVAILABLE", status, failed.message, headers)
