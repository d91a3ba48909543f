"""GET /healthz (liveness), GET /readyz (readiness) and GET /logos/<digest> (catalog logos, public)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse

from pier import serving
from pier.core import catalog, readiness
from pier.core.context import Core
from pier.digests import is_digest
from pier.web.failures import explain, retry_headers, status_of
from pier.web.streams import opened
from pier.web.threads import run_sync

READY_TIMEOUT = 10.0  # seconds a readiness check may take before it counts as failing


async def healthz(request: Request) -> Response:
    """200 while this process serves requests; it asks no dependency (that is /readyz)."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """200 when the metadata database and the blob store answer, the disk has room and (pier serve --workers
    N) all N workers are serving, else 503; the body names each check and its state either way. Each check
    has READY_TIMEOUT seconds; one that takes longer is failing."""
    core: Core = request.app.state.core
    minimum = request.app.state.config.readiness_min_free_bytes
    checks = list(
        await asyncio.gather(
            _timed("database", readiness.check_database, core),
            _timed("blob_store", readiness.check_blob_store, core),
            _timed("disk", readiness.check_disk, core, minimum),
        )
    )
    workers = request.app.state.config.workers
    if (serving_now := serving.count()) is not None:  # pier serve --workers N: all N are serving
        checks.append(readiness.check_workers(serving_now, workers, serving.all_started()))
    ready = all(check.ok for check in checks)
    body = {
        "status": "ok" if ready else "unavailable",
        "checks": {
            check.name: {
                "status": "ok" if check.ok else "failing",
                "detail": check.detail,
                **({"free_bytes": check.free_bytes} if check.free_bytes is not None else {}),
            }
            for check in checks
        },
    }
    headers = {"Cache-Control": "no-store", **({} if ready else retry_headers(503))}
    return JSONResponse(body, 200 if ready else 503, headers)


async def _timed(name: str, check: Callable[..., readiness.Check], *args: object) -> readiness.Check:
    try:
        return await asyncio.wait_for(run_sync(check, *args), READY_TIMEOUT)
    except TimeoutError:
        return readiness.Check(name, False, f"no answer within {READY_TIMEOUT:g} s")


async def logo(request: Request) -> Response:
    core: Core = request.app.state.core
    digest = request.path_params["digest"]
    try:
        if not is_digest(digest) or await run_sync(core.meta.get_blob_size, digest) is None:
            return JSONResponse({"message": "no such logo"}, 404)
        head = b"".join(await run_sync(lambda: list(core.blobs.read(digest, 0, 16))))
    except Exception as raised:
        return _failed(request, raised)
    headers = {"Cache-Control": "public, max-age=31536000, immutable", "X-Content-Type-Options": "nosniff"}
    media_type = catalog.logo_media_type(head) or "application/octet-stream"
    path = core.blobs.local_path(digest)
    if path is not None:
        return FileResponse(path, media_type=media_type, headers=headers)
    try:
        chunks = await opened(core.blobs.read(digest))
    except Exception as raised:
        return _failed(request, raised)
    return StreamingResponse(chunks, media_type=media_type, headers=headers)


def _failed(request: Request, raised: Exception) -> Response:
    error = explain(raised)
    status = status_of(error)
    request.app.state.failures.report("web", "logo", status, raised)
    return JSONResponse({"message": error.message}, status, retry_headers(status))
