"""The whole /v2/ route table. Each route names the action it needs; `guarded` checks it, once.

Routes are tried in order, and names may contain slashes, so upload routes come before blob routes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pier import errors
from pier.core.access import Action, repository_by_path
from pier.core.context import Core
from pier.oci import auth, blobs, manifests, referrers, tags, uploads
from pier.oci.context import OciRequest
from pier.oci.errors import API_VERSION_HEADER, OciError, respond, to_oci

Handler = Callable[[OciRequest], Awaitable[Response]]


def guarded(handler: Handler, action: Action) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        core: Core = request.app.state.core
        name = request.path_params["name"]
        head = request.method == "HEAD"
        try:
            identity = await auth.identify(core, request)
            repository = await run_in_threadpool(repository_by_path, core, identity.account, name, action)
            response = await handler(OciRequest(request, core, identity.account, repository, name))
        except OciError as error:
            return respond(error, head)
        except errors.AuthenticationRequired:
            return respond(auth.unauthorized(core, "Log in to push or delete", f"repository:{name}:pull,push"), head)
        except errors.PierError as error:
            return respond(to_oci(error), head)
        response.headers.update(API_VERSION_HEADER)
        return response

    return endpoint


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
PULL, PUSH, DELETE = Action.PULL, Action.PUSH, Action.DELETE

ROUTES = [
    Route("/v2/", base, methods=["GET", "HEAD"]),
    Route(f"{NAME}/manifests/{{reference}}", guarded(manifests.get_manifest, PULL), methods=["GET", "HEAD"]),
    Route(f"{NAME}/manifests/{{reference}}", guarded(manifests.put_manifest, PUSH), methods=["PUT"]),
    Route(f"{NAME}/manifests/{{reference}}", guarded(manifests.delete_manifest, DELETE), methods=["DELETE"]),
    Route(f"{NAME}/blobs/uploads/", guarded(uploads.post_blob_upload, PUSH), methods=["POST"]),
    Route(f"{NAME}/blobs/uploads/{{upload_id}}", guarded(uploads.get_blob_upload, PUSH), methods=["GET"]),
    Route(f"{NAME}/blobs/uploads/{{upload_id}}", guarded(uploads.patch_blob_upload, PUSH), methods=["PATCH"]),
    Route(f"{NAME}/blobs/uploads/{{upload_id}}", guarded(uploads.put_blob_upload, PUSH), methods=["PUT"]),
    Route(f"{NAME}/blobs/uploads/{{upload_id}}", guarded(uploads.delete_blob_upload, PUSH), methods=["DELETE"]),
    Route(f"{NAME}/blobs/{{digest}}", guarded(blobs.get_blob, PULL), methods=["GET", "HEAD"]),
    Route(f"{NAME}/blobs/{{digest}}", guarded(blobs.delete_blob, DELETE), methods=["DELETE"]),
    Route(f"{NAME}/tags/list", guarded(tags.list_tags, PULL), methods=["GET"]),
    Route(f"{NAME}/referrers/{{digest}}", guarded(referrers.get_referrers, PULL), methods=["GET"]),
    Route("/token", auth.token, methods=["GET", "POST"]),
]
