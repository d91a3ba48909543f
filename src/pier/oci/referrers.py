"""GET /v2/<name>/referrers/<digest>[?artifactType=]: the manifests whose subject is <digest>."""

from __future__ import annotations

from starlette.responses import JSONResponse, Response

from pier.core import images, manifests
from pier.oci.context import OciRequest
from pier.oci.errors import require_digest
from pier.web.threads import run_sync


async def get_referrers(ctx: OciRequest) -> Response:
    digest = require_digest(ctx.request.path_params["digest"])
    artifact_type = ctx.request.query_params.get("artifactType")
    found = await run_sync(images.referrers, ctx.core, ctx.repository, digest, artifact_type)
    headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type is not None else {}
    body = {"schemaVersion": 2, "mediaType": manifests.OCI_INDEX, "manifests": found}
    return JSONResponse(body, headers=headers, media_type=manifests.OCI_INDEX)
