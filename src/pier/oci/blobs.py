"""GET/HEAD/DELETE /v2/<name>/blobs/<digest>: a local file is sent by the server itself, never via Python.

Range requests follow one set of rules (web/ranges.py) whichever way the bytes go: a file, a stream from
object storage, or a redirect to it (where a 416 is answered here, and the store applies the range)."""

from __future__ import annotations

import os

from starlette.responses import RedirectResponse, Response, StreamingResponse

from pier import errors
from pier.core import blobs
from pier.oci.context import OciRequest
from pier.oci.errors import OciError, require_digest
from pier.web import ranges
from pier.web.streams import opened
from pier.web.threads import run_sync


def _digest(ctx: OciRequest) -> str:
    return require_digest(ctx.request.path_params["digest"])


def _stat(ctx: OciRequest, digest: str) -> tuple[blobs.BlobInfo, os.stat_result | None]:
    info = blobs.stat(ctx.core, ctx.repository, digest)
    if info.local_path is None:
        return info, None
    try:  # here, in the same worker call: FileResponse would otherwise hop to a thread of its own for it
        return info, os.stat(info.local_path)
    except FileNotFoundError:  # collected a moment ago
        raise errors.BlobNotFound(digest) from None


def blob_headers(digest: str) -> dict[str, str]:
    """What every answer with a blob carries: a blob never changes, so caches may keep it for good."""
    return {"Docker-Content-Digest": digest, "ETag": f'"{digest}"', "Cache-Control": "max-age=31536000, immutable"}


async def get_blob(ctx: OciRequest) -> Response:
    digest = _digest(ctx)
    info, local = await run_sync(_stat, ctx, digest)
    headers = blob_headers(digest)
    etag = headers["ETag"]
    try:
        chosen = ranges.span(ctx.request.method, ctx.request.headers, info.size, etag)
    except ranges.Unsatisfiable as refused:
        raise OciError("BLOB_UNKNOWN", 416, str(refused), {"Content-Range": refused.content_range}) from None
    media_type = "application/octet-stream"
    if info.local_path is not None:
        # Whole files go to Granian as they are (ASGI pathsend); Starlette reads a range and answers HEAD.
        return ranges.BlobFileResponse(info.local_path, chosen, headers, media_type, local)
    headers["Accept-Ranges"] = "bytes"
    headers["Content-Length"] = str(info.size)
    if ctx.request.method == "HEAD":
        return Response(b"", 200, headers, media_type=media_type)
    url = await run_sync(ctx.core.blobs.url, digest)
    if url is not None:  # object storage serves the bytes itself, and the range
        return RedirectResponse(url, 307, headers={"Docker-Content-Digest": digest})
    # The first chunk is read before the answer starts: a store that fails then is a 503, not a cut 200.
    if chosen is None:
        chunks = await opened(ctx.core.blobs.read(digest))
        return StreamingResponse(chunks, 200, headers, media_type=media_type)
    start, end = chosen
    headers.update({"Content-Length": str(end - start), "Content-Range": f"bytes {start}-{end - 1}/{info.size}"})
    chunks = await opened(ctx.core.blobs.read(digest, start, end))
    return StreamingResponse(chunks, 206, headers, media_type=media_type)


async def delete_blob(ctx: OciRequest) -> Response:
    await run_sync(blobs.unlink, ctx.core, ctx.repository, _digest(ctx))
    return Response(b"", 202)
