"""GET /healthz and GET /logos/<digest> (catalog logos, public like the gallery)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse

from pier.core import catalog
from pier.core.context import Core
from pier.digests import is_sha256
from pier.web.threads import run_sync


async def healthz(request: Request) -> Response:
    core: Core = request.app.state.core
    await run_sync(core.meta.get_registry_display_name, core.accounts.all[0].id)  # the database answers
    return JSONResponse({"status": "ok"})


async def logo(request: Request) -> Response:
    core: Core = request.app.state.core
    digest = request.path_params["digest"]
    if not is_sha256(digest) or await run_sync(core.meta.get_blob_size, digest) is None:
        return JSONResponse({"message": "no such logo"}, 404)
    head = b"".join(await run_sync(lambda: list(core.blobs.read(digest, 0, 16))))
    headers = {"Cache-Control": "public, max-age=31536000, immutable", "X-Content-Type-Options": "nosniff"}
    media_type = catalog.logo_media_type(head) or "application/octet-stream"
    path = core.blobs.local_path(digest)
    if path is not None:
        return FileResponse(path, media_type=media_type, headers=headers)
    return StreamingResponse(core.blobs.read(digest), media_type=media_type, headers=headers)
