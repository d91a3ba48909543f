"""Blob uploads: POST (start, monolithic, mount), PATCH (chunks), PUT (finish), GET (status), DELETE.

A blob's digest algorithm (sha256 or sha512) comes from `digest-algorithm` on the POST when the client
sends it, else from the digest that finishes the upload. The bytes are hashed as they arrive in the
declared algorithm, or in sha256 while none is declared; a sha512 digest that finishes an undeclared
upload has its bytes read and hashed once more (digests.WHILE_UNKNOWN says why).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re

from starlette.responses import Response

from pier import digests, errors
from pier.core import blobs, uploads
from pier.core.access import PULL, repository_by_path
from pier.digests import is_upload_id
from pier.oci.context import OciRequest
from pier.oci.errors import OciError, for_failure, require_digest
from pier.web import metrics
from pier.web.bodies import has_body
from pier.web.streams import BATCH, stream_body
from pier.web.threads import run_sync, run_upload, upload_pool

# Content-Range as clients send it: "0-1023", "bytes 0-1023/*", "bytes=0-1023".
CONTENT_RANGE = re.compile(r"(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?")


def _location(ctx: OciRequest, upload_id: str) -> str:
    return ctx.url(f"/v2/{ctx.name}/blobs/uploads/{upload_id}")


def _progress(ctx: OciRequest, upload_id: str, size: int) -> dict[str, str]:
    return {"Location": _location(ctx, upload_id), "Range": f"0-{max(size - 1, 0)}", "Docker-Upload-UUID": upload_id}


def _upload_id(ctx: OciRequest) -> str:
    upload_id: str = ctx.request.path_params["upload_id"]
    if not is_upload_id(upload_id):
        raise errors.UploadNotFound(upload_id)
    return upload_id


def _digest_param(ctx: OciRequest) -> str:
    return require_digest(ctx.request.query_params.get("digest", ""))


def _body_range(ctx: OciRequest) -> tuple[int | None, int | None]:
    """(offset, length) from Content-Range, else (None, Content-Length)."""
    if (content_range := ctx.request.headers.get("content-range")) is not None:
        match = CONTENT_RANGE.fullmatch(content_range.strip())
        if not match or int(match[2]) < int(match[1]):
            raise OciError("BLOB_UPLOAD_INVALID", 400, f"Content-Range {content_range!r} is not start-end")
        return int(match[1]), int(match[2]) - int(match[1]) + 1
    length = ctx.request.headers.get("content-length")
    return None, int(length) if length is not None and length.isdigit() else None


async def _append(ctx: OciRequest, upload_id: str, digest: str | None = None) -> int:
    """Append the request body where Content-Range says (or at the end); 416 when that is not the end.
    With a digest, finish the upload in the same step (one transaction fewer).

    Each step runs on the upload pool; the body is awaited on the event loop in between (stream_body), so
    a client that stalls holds no thread, and whatever ends the request early leaves the upload as last
    acknowledged. A small body is received whole first, then written in one step (_append_small)."""
    offset, expected = _body_range(ctx)
    try:
        length = ctx.request.headers.get("content-length", "")
        if length.isdigit() and int(length) <= BATCH:
            return await _append_small(ctx, upload_id, offset, expected, digest)
        appending = await run_upload(uploads.Append, ctx.core, ctx.repository, upload_id, offset, expected, digest)
        try:
            await stream_body(ctx.request, appending.write)
            if digest is not None:
                await run_upload(appending.acknowledge_and_finish, digest)
                return 0
            return await run_upload(appending.acknowledge)
        except BaseException:
            await asyncio.shield(run_upload(appending.abort))
            raise
    except errors.InvalidLayerPart as refused:
        raise await _out_of_order(ctx, upload_id, refused) from None


async def _append_small(
    ctx: OciRequest, upload_id: str, offset: int | None, expected: int | None, digest: str | None
) -> int:
    """A body of at most one batch (a config, a layer of up to 1 MiB; Content-Length bounds it): received
    whole on the loop first, then appended (and finished) in one step on the upload pool, not three. If
    the request ends while that step runs, this returns once it is over, as _append does."""
    parts = [chunk async for chunk in ctx.request.stream() if chunk]
    call = functools.partial(
        uploads.append_received,
        ctx.core,
        ctx.repository,
        upload_id,
        offset,
        parts,
        expected,
        digest,
        metrics.BLOB_BYTES_RECEIVED.inc,
    )
    step = asyncio.get_running_loop().run_in_executor(upload_pool(), call)
    try:
        return await asyncio.shield(step)
    except BaseException:
        if not step.done():
            await asyncio.wait([step])
        raise


async def _out_of_order(ctx: OciRequest, upload_id: str, refused: errors.InvalidLayerPart) -> OciError:
    """416 with the Range the upload has, so the client knows where to continue."""
    size = await run_sync(uploads.size_of, ctx.core, ctx.repository, upload_id)
    message = f"{refused.message}. The upload has {size} bytes; send the chunk that follows"
    return OciError("BLOB_UPLOAD_INVALID", 416, message, _progress(ctx, upload_id, size))


async def _finish(ctx: OciRequest, upload_id: str, digest: str) -> Response:
    try:
        await run_upload(uploads.finish, ctx.core, ctx.repository, upload_id, digest, ecr_rules=False)
    except errors.InvalidLayerPart as refused:  # another request is writing to it
        raise await _out_of_order(ctx, upload_id, refused) from None
    return _created(ctx, digest)


def _created(ctx: OciRequest, digest: str) -> Response:
    headers = {"Location": ctx.url(f"/v2/{ctx.name}/blobs/{digest}"), "Docker-Content-Digest": digest}
    return Response(b"", 201, headers)


async def post_blob_upload(ctx: OciRequest) -> Response:
    query = ctx.request.query_params
    if "mount" in query and "from" in query:
        mounted = await run_sync(_mount, ctx, require_digest(query["mount"]), query["from"])
        if mounted:
            headers = {
                "Location": ctx.url(f"/v2/{ctx.name}/blobs/{query['mount']}"),
                "Docker-Content-Digest": query["mount"],
            }
            return Response(b"", 201, headers)
    digest = _digest_param(ctx) if "digest" in query else None
    algorithm = _algorithm(query.get("digest-algorithm"), digest)
    if ctx.core.signer.signs_from_memory():  # an HMAC under a key in memory: no thread hop for it
        upload_id = uploads.start(ctx.core, ctx.repository, algorithm)
    else:
        upload_id = await run_sync(uploads.start, ctx.core, ctx.repository, algorithm)
    if digest is None:
        return Response(b"", 202, _progress(ctx, upload_id, 0))
    try:
        await _append(ctx, upload_id, digest)
    except Exception as failure:
        error = failure if isinstance(failure, OciError) else for_failure(failure)
        if error.status in RESUMABLE:
            # Not the client's fault (a full disk, a store away, a stalled body, a stop): the answer names
            # the upload, so the client can resume it from what was acknowledged once things are back.
            acknowledged = await asyncio.shield(run_sync(_acknowledged, ctx, upload_id))
            error.headers.update(_progress(ctx, upload_id, acknowledged))
            raise error from failure
        # The client sent something wrong and never learnt this upload's id: remove it now, not at expiry.
        await asyncio.shield(run_sync(_forget, ctx, upload_id))
        raise
    return _created(ctx, digest)


RESUMABLE = (408, 503, 507)


def _acknowledged(ctx: OciRequest, upload_id: str) -> int:
    try:
        return uploads.size_of(ctx.core, ctx.repository, upload_id)
    except Exception:  # the store is away: nothing of a monolithic body was acknowledged before it failed
        return 0


def _algorithm(declared: str | None, digest: str | None) -> str | None:
    """The blob's digest algorithm, if the POST tells it: `digest-algorithm`, or the digest it sends."""
    if declared is not None and (problem := digests.algorithm_problem(declared)):
        raise OciError("DIGEST_INVALID", 400, problem)
    if digest is None:
        return declared
    if declared is not None and declared != digests.algorithm_of(digest):
        raise OciError("DIGEST_INVALID", 400, f"digest-algorithm is {declared}, but the digest is {digest}")
    return digests.algorithm_of(digest)


def _forget(ctx: OciRequest, upload_id: str) -> None:
    with contextlib.suppress(Exception):  # a store that fails now: the upload expires in time instead
        uploads.cancel(ctx.core, uploads.find(ctx.core, ctx.repository, upload_id))


def _mount(ctx: OciRequest, digest: str, source_name: str) -> bool:
    """Mount from a repository the caller may pull; any failure falls back to a normal upload (202)."""
    try:
        source = repository_by_path(ctx.core, ctx.caller, source_name, PULL)
        return blobs.mount(ctx.core, source, ctx.repository, digest)
    except errors.PierError:
        return False


async def patch_blob_upload(ctx: OciRequest) -> Response:
    upload_id = _upload_id(ctx)
    size = await _append(ctx, upload_id)
    return Response(b"", 202, _progress(ctx, upload_id, size))


async def put_blob_upload(ctx: OciRequest) -> Response:
    upload_id = _upload_id(ctx)
    digest = _digest_param(ctx)
    if has_body(ctx.request.scope):
        await _append(ctx, upload_id, digest)
        return _created(ctx, digest)
    return await _finish(ctx, upload_id, digest)


async def get_blob_upload(ctx: OciRequest) -> Response:
    upload_id = _upload_id(ctx)
    size = await run_sync(uploads.size_of, ctx.core, ctx.repository, upload_id)
    return Response(b"", 204, _progress(ctx, upload_id, size))


async def delete_blob_upload(ctx: OciRequest) -> Response:
    upload_id = _upload_id(ctx)

    def cancel() -> None:
        uploads.cancel(ctx.core, uploads.find(ctx.core, ctx.repository, upload_id))

    await run_sync(cancel)
    return Response(b"", 204)
