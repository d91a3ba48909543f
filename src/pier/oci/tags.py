"""GET /v2/<name>/tags/list?n=&last=, paginated with a Link header."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.responses import JSONResponse, Response

from pier.core import images
from pier.oci.context import OciRequest
from pier.oci.errors import OciError
from pier.web.threads import run_sync


async def list_tags(ctx: OciRequest) -> Response:
    raw_n = ctx.request.query_params.get("n")
    if raw_n is not None and not raw_n.isdigit():
        raise OciError("UNSUPPORTED", 400, "n must be a non-negative integer")
    n = int(raw_n) if raw_n is not None else None
    last = ctx.request.query_params.get("last") or None
    names, more = await run_sync(images.list_tags, ctx.core, ctx.repository, last, n)
    headers = {}
    if more and names:
        query = urlencode({"n": len(names), "last": names[-1]})
        headers["Link"] = f'</v2/{ctx.name}/tags/list?{query}>; rel="next"'
    return JSONResponse({"name": ctx.name, "tags": names}, headers=headers)
