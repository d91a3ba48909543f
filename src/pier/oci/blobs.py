"""GET/HEAD/DELETE /v2/<name>/blobs/<digest>: files go out zero-copy where the store has them."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, Response, StreamingResponse

from pier import errors
from pier.core import blobs
from pier.oci.context import OciRequest
from pier.oci.errors import OciError


def _digest(ctx: OciRequest) -> str:
    digest: str = ctx.request.path_params["digest"]
    try:
        blobs.check_digest(digest)
    except errors.InvalidParameter as error:
        raise OciError("DIGEST_INVALID", 400, error.message) from None
    return digest


async def get_blob(ctx: OciRequest) -> Response:
    digest = _digest(ctx)
    info = await run_in_threadpool(blobs.stat, ctx.core, ctx.repository, digest)
    headers = {"Docker-Content-Digest": digest, "ETag": f'"{digest}"', "Cache-Control": "max-age=31536000, immutable"}
    if info.local_path is not None:
        # Starlette answers Range (206) and HEAD itself, and uses ASGI pathsend (zero-copy) when it can.
        return FileResponse(info.local_path, media_type="application/octet-stream", headers=headers)
    headers["Content-Length"] = str(info.size)
    if ctx.request.method == "HEAD":
        return Response(b"", 200, headers, media_type="application/octet-stream")
    return StreamingResponse(ctx.core.blobs.read(digest), 200, headers, media_type="application/octet-stream")


async def delete_blob(ctx: OciRequest) -> Response:
    await run_in_threadpool(blobs.unlink, ctx.core, ctx.repository, _digest(ctx))
    return Response(b"", 202)
