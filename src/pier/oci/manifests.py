"""GET/HEAD/PUT/DELETE /v2/<name>/manifests/<reference>."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from pier import errors
from pier.core import images, limits
from pier.core.context import Core
from pier.oci.context import OciRequest
from pier.oci.errors import OciError
from pier.storage.metadata import ImageRow
from pier.web.streams import read_limited
from pier.web.threads import run_sync


def accepted_types(request: Request) -> set[str] | None:
    """The media types the client accepts; None for anything. Several Accept lines are merged (skopeo)."""
    values = ",".join(request.headers.getlist("accept"))
    types = {part.split(";")[0].strip() for part in values.split(",") if part.strip()}
    return None if not types or "*/*" in types else types


async def get_manifest(ctx: OciRequest) -> Response:
    reference = ctx.request.path_params["reference"]
    accepted = accepted_types(ctx.request)
    image = images.remembered_manifest(ctx.core, ctx.repository, reference, accepted)
    if image is None:  # not in memory (core/reads.py): ask the store, in a thread
        image = await run_sync(images.get_manifest, ctx.core, ctx.repository, reference, accepted)
    return manifest_response(ctx.core, ctx.request.method, image)


def manifest_response(core: Core, method: str, image: ImageRow, extra: dict[str, str] | None = None) -> Response:
    """The answer to a GET or HEAD of a manifest; a GET is a pull, counted (core/downloads.py: in memory,
    batched), whether the repository is pushed to or a pull-through cache."""
    manifest = image.manifest or b""
    headers = {"Docker-Content-Digest": image.digest, "ETag": f'"{image.digest}"', "Content-Length": str(len(manifest))}
    if extra:
        headers.update(extra)
    if method == "HEAD":
        return Response(b"", 200, headers, media_type=image.media_type)
    core.downloads.count(image.repository_id, image.digest)
    return Response(manifest, 200, headers, media_type=image.media_type)


async def put_manifest(ctx: OciRequest) -> Response:
    reference = ctx.request.path_params["reference"]
    data = await read_limited(ctx.request, limits.MANIFEST_MAX_BYTES)
    if data is None:
        message = f"A manifest may be at most {limits.MANIFEST_MAX_BYTES} bytes"
        raise OciError("MANIFEST_INVALID", 413, message, {"Connection": "close"})
    content_type = ctx.request.headers.get("content-type", "").split(";")[0].strip() or None
    extra_tags = ctx.request.query_params.getlist("tag")
    try:
        result = await run_sync(
            images.put_manifest, ctx.core, ctx.repository, reference, data, content_type, extra_tags
        )
    except (errors.ManifestInvalid, errors.DigestInvalid):
        raise
    except errors.InvalidParameter as error:  # a bad tag, a media type the body contradicts
        raise OciError("MANIFEST_INVALID", 400, error.message) from None
    headers = {"Location": ctx.url(f"/v2/{ctx.name}/manifests/{result.digest}"), "Docker-Content-Digest": result.digest}
    if result.subject_digest:
        headers["OCI-Subject"] = result.subject_digest
    if extra_tags:
        headers["OCI-Tag"] = ", ".join(extra_tags)
    return Response(b"", 201, headers)


async def delete_manifest(ctx: OciRequest) -> Response:
    reference = ctx.request.path_params["reference"]
    await run_sync(images.delete_manifest, ctx.core, ctx.repository, reference)
    return Response(b"", 202)
