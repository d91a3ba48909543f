"""The whole /v2/ route table. Each route names the action it needs; `guarded` checks it, once.

Routes are tried in order, and names may contain slashes, so upload routes come before blob routes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pier import errors
from pier.core.access import PULL, is_repository_path, repository_by_path
from pier.core.context import Core
from pier.oci import auth, blobs, manifests, referrers, tags, uploads
from pier.oci.context import OciRequest
from pier.oci.errors import API_VERSION_HEADER, OciError, respond, to_oci
from pier.web.threads import run_sync

Handler = Callable[[OciRequest], Awaitable[Response]]


def guarded(handler: Handler, action: str | None, limited: bool = False) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint for a route: identify the caller, apply the rate limit (if `limited`), check `action`
    on the named repository, run the handler, map errors, and audit anything that is not a read."""

    async def endpoint(request: Request) -> Response:
        core: Core = request.app.state.core
        name = request.path_params["name"]
        head = request.method == "HEAD"
        address = request.client.host if request.client else ""
        caller = None
        error_code = None
        try:
            identity = await auth.identify(core, request)
            caller = identity.account
            if limited:
                check_rate(request, address, caller is not None)
            repository = await run_sync(repository_by_path, core, caller, name, action)
            response = await handler(OciRequest(request, core, caller, repository, name))
            response.headers.update(API_VERSION_HEADER)
        except errors.AuthenticationRequired:
            # The scope echoes the name, so only a valid one (a header must not carry what a client sent).
            scope = f"repository:{name}:pull,push" if is_repository_path(name) else None
            error = auth.unauthorized(core, "Log in to push or delete", scope)
            error_code, response = error.code, respond(error, head)
        except (OciError, errors.PierError) as raised:
            error = raised if isinstance(raised, OciError) else to_oci(raised)
            error_code, response = error.code, respond(error, head)
        if request.method not in ("GET", "HEAD"):
            target = "/".join(filter(None, [name, *(str(v) for k, v in request.path_params.items() if k != "name")]))
            request.app.state.audit.record(
                door="oci",
                action=f"{request.method} {request.scope['route'].path}",
                target=target,
                principal=caller.id if caller else None,
                address=address,
                status=response.status_code,
                error=error_code,
            )
        return response

    return endpoint


def check_rate(request: Request, address: str, authenticated: bool) -> None:
    wait = request.app.state.rate_limits.wait_time(address, authenticated)
    if wait:
        raise OciError("TOOMANYREQUESTS", 429, "Too many requests: slow down", {"Retry-After": str(int(wait) + 1)})


async def base(request: Request) -> Response:
    """GET /v2/: 200 for any caller with credentials (an anonymous token counts), else the challenge."""
    core: Core = request.app.state.core
    try:
        identity = await auth.identify(core, request)
    except OciError as error:
        return respond(error)
    if not identity.presented:
        return respond(auth.unauthorized(core, "Get a token from the realm, anonymously to pull"))
    return JSONResponse({}, headers=API_VERSION_HEADER)


NAME = "/v2/{name:path}"
# The ECR operation each push or delete corresponds to: what a repository policy grants or denies.
UPLOAD, PART, COMPLETE = "InitiateLayerUpload", "UploadLayerPart", "CompleteLayerUpload"
PUT_IMAGE, DELETE = "PutImage", "BatchDeleteImage"

ROUTES = [
    Route("/v2/", base, methods=["GET", "HEAD"]),
    Route(
        f"{NAME}/manifests/{{reference}}", guarded(manifests.get_manifest, PULL, limited=True), methods=["GET", "HEAD"]
    ),
    Route(f"{NAME}/manifests/{{reference}}", guarded(manifests.put_manifest, PUT_IMAGE), methods=["PUT"]),
    Route(f"{NAME}/manifests/{{reference}}", guarded(manifests.delete_manifest, DELETE), methods=["DELETE"]),
    Route(f"{NAME}/blobs/uploads/", guarded(uploads.post_blob_upload, UPLOAD), methods=["POST"]),
    Route(f"{NAME}/blobs/uploads/{{upload_id}}", guarded(uploads.get_blob_upload, PART), methods=["GET"]),
    Route(f"{NAME}/blobs/uploads/{{upload_id}}", guarded(uploads.patch_blob_upload, PART), methods=["PATCH"]),
    Route(f"{NAME}/blobs/uploads/{{upload_id}}", guarded(uploads.put_blob_upload, COMPLETE), methods=["PUT"]),
    Route(f"{NAME}/blobs/uploads/{{upload_id}}", guarded(uploads.delete_blob_upload, PART), methods=["DELETE"]),
    Route(f"{NAME}/blobs/{{digest}}", guarded(blobs.get_blob, PULL), methods=["GET", "HEAD"]),
    Route(f"{NAME}/blobs/{{digest}}", guarded(blobs.delete_blob, DELETE), methods=["DELETE"]),
    Route(f"{NAME}/tags/list", guarded(tags.list_tags, PULL, limited=True), methods=["GET"]),
    Route(f"{NAME}/referrers/{{digest}}", guarded(referrers.get_referrers, PULL, limited=True), methods=["GET"]),
    Route("/token", auth.token, methods=["GET", "POST"]),
]
