"""GET/HEAD/DELETE /v2/<name>/blobs/<digest>: a local file is sent by the server itself, never via Python."""

from __future__ import annotations

import os
import re

from starlette.responses import FileResponse, RedirectResponse, Response, StreamingResponse

from pier import errors
from pier.core import blobs
from pier.oci.context import OciRequest
from pier.oci.errors import OciError, require_digest
from pier.web.streams import opened
from pier.web.threads import run_sync

RANGE = re.compile(r"bytes=(\d*)-(\d*)")


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


async def get_blob(ctx: OciRequest) -> Response:
    digest = _digest(ctx)
    info, local = await run_sync(_stat, ctx, digest)
    headers = {"Docker-Content-Digest": digest, "ETag": f'"{digest}"', "Cache-Control": "max-age=31536000, immutable"}
    if info.local_path is not None:
        # Starlette answers Range (206) and HEAD itself, and hands whole files to Granian (ASGI pathsend).
        return FileResponse(info.local_path, media_type="application/octet-stream", headers=headers, stat_result=local)
    headers["Content-Length"] = str(info.size)
    if ctx.request.method == "HEAD":
        return Response(b"", 200, headers, media_type="application/octet-stream")
    url = await run_sync(ctx.core.blobs.url, digest)
    if url is not None:  # object storage serves the bytes itself
        return RedirectResponse(url, 307, headers={"Docker-Content-Digest": digest})
    span = _range(ctx.request.headers.get("range"), info.size)
    if span is None:
        chunks = await opened(ctx.core.blobs.read(digest))
        return StreamingResponse(chunks, 200, headers, media_type="application/octet-stream")
    start, end = span
    headers.update({"Content-Length": str(end - start), "Content-Range": f"bytes {start}-{end - 1}/{info.size}"})
    chunks = await opened(ctx.core.blobs.read(digest, start, end))
    return StreamingResponse(chunks, 206, headers, media_type="application/octet-stream")


def _range(header: str | None, size: int) -> tuple[int, int] | None:
    """[start, end) of a single-range "bytes=a-b" header (other forms: the whole blob)."""
    match = RANGE.fullmatch(header.strip()) if header else None
    if not match or (not match[1] and not match[2]):
        return None
    if not match[1]:  # the last N bytes
        return max(size - int(match[2]), 0), size
    start = int(match[1])
    end = min(int(match[2]) + 1, size) if match[2] else size
    if start >= size or end <= start:
        raise OciError(
            "BLOB_UNKNOWN",
            416,
            f"Range {header!r} is outside the blob of {size} bytes",
            {"Content-Range": f"bytes */{size}"},
        )
    return start, end


async def delete_blob(ctx: OciRequest) -> Response:
    await run_sync(blobs.unlink, ctx.core, ctx.repository, _digest(ctx))
    return Response(b"", 202)
