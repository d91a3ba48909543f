"""The whole /v2/ route table. Each route names the action it needs; `guarded` checks it, once. A route's
name is its operation in metrics and request logs (web/exchange.py).

Routes are tried in order, and names may contain slashes, so upload routes come before blob routes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from pier import errors
from pier.core.access import PULL, is_repository_path, remembered_repository, repository_by_path
from pier.core.context import Core
from pier.core.principals import Caller
from pier.core.reads import NotInMemory
from pier.oci import auth, blobs, manifests, pullthrough, referrers, tags, uploads
from pier.oci.context import OciRequest
from pier.oci.errors import API_VERSION_HEADER, OciError, for_failure, respond, to_oci
from pier.storage.metadata import RepositoryRow
from pier.web.bodies import BodyError, close_unless_read, discard_rest, has_body
from pier.web.exchange import exchange
from pier.web.threads import run_sync

Handler = Callable[[OciRequest], Awaitable[Response]]
CacheHandler = Callable[[pullthrough.CacheRequest], Awaitable[Response]]
# Body bytes read and dropped before an error answer, at most, so the client reads it: for a request that
# holds an upload-body slot (bounded in number), and for any other.
DISCARD_BEFORE_ERROR = 64 * 1024 * 1024
DISCARD_WITHOUT_SLOT = 1024 * 1024


def _pushed_to(core: Core, caller: Caller | None, name: str, action: str) -> RepositoryRow | None:
    """The repository a push names, with the caller's right to `action` checked, if memory holds it."""
    try:
        return repository_by_path(core, caller, name, action, memory_only=True)
    except NotInMemory:
        return None


def guarded(
    handler: Handler,
    action: str | None,
    limited: bool = False,
    upload_body: bool = False,
    cached: CacheHandler | None = None,
) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint for a route: identify the caller, apply the rate limit (if `limited`), check `action`
    on the named repository, hold a slot for an upload body (if `upload_body` and the request has one), run
    the handler (`cached` instead, for a name in a pull-through cache), map errors, and audit anything that
    is not a read."""

    async def endpoint(request: Request) -> Response:
        with contextlib.ExitStack() as slot:  # an upload body's slot is held until its answer is ready
            return await answer(request, slot)

    async def answer(request: Request, slot: contextlib.ExitStack) -> Response:
        core: Core = request.app.state.core
        name = request.path_params["name"]
        head = request.method == "HEAD"
        address = request.client.host if request.client else ""
        caller = None
        error_code = None
        failure: BaseException | None = None
        holding = False
        try:
            caller = (await auth.identify(core, request)).caller  # its account goes in the request's log line
            if limited:
                check_rate(request, address, caller is not None)
            if cached is not None and (rule := pullthrough.rule_for(core, name)) is not None:
                cache = request.app.state.pull_through
                response = await cached(pullthrough.CacheRequest(request, core, caller, name, *rule, cache))
            else:
                if action is PULL:
                    repository = remembered_repository(core, name)
                else:
                    repository = _pushed_to(core, caller, name, action)
                if repository is None:  # not in memory (core/reads.py): ask the store, in a thread
                    repository = await run_sync(repository_by_path, core, caller, name, action)
                ctx = OciRequest(request, core, caller, repository, name)
                if upload_body and has_body(request.scope):
                    slot.enter_context(
                        request.app.state.body_slots.hold(caller.account_id if caller else None, address)
                    )
                    holding = True
                response = await handler(ctx)
            response.headers.update(API_VERSION_HEADER)
        except errors.AuthenticationRequired:
            # The scope echoes the name, so only a valid one (a header must not carry what a client sent).
            scope = f"repository:{name}:pull,push" if is_repository_path(name) else None
            how = f"aws ecr-public get-login-password | docker login --username AWS --password-stdin {core.public_host}"
            error = auth.unauthorized(core, f"Log in to push or delete ({how})", scope)
            error_code, response = error.code, respond(error, head)
        except errors.RepositoryNotFound as missing:
            # As in ECR, a push does not create the repository: say so where docker and the like show it.
            error = to_oci(missing)
            if action in PUSHES:
                error.message += f"; create it first: aws ecr-public create-repository --repository-name {missing.name}"
            error_code, response = error.code, respond(error, head)
        except (OciError, errors.PierError) as raised:
            error = raised if isinstance(raised, OciError) else to_oci(raised)
            error_code, response = error.code, respond(error, head)
            failure = raised if error.status >= 500 else None
        except Exception as raised:
            error = for_failure(raised)
            error_code, response = error.code, respond(error, head)
            failure = raised if error.status >= 500 or isinstance(raised, BodyError) else None
        if failure is not None:
            request.app.state.failures.report("oci", f"{request.method} {name}", response.status_code, failure)
        if response.status_code >= 400:
            await finish_body(request, response, DISCARD_BEFORE_ERROR if holding else DISCARD_WITHOUT_SLOT)
        if request.method not in ("GET", "HEAD"):
            target = "/".join(filter(None, [name, *(str(v) for k, v in request.path_params.items() if k != "name")]))
            request.app.state.audit.record(
                door="oci",
                action=f"{request.method} {request.scope['route'].path}",
                target=target,
                principal=caller.arn if caller else None,
                account=caller.account_id if caller else None,
                access_key_id=caller.access_key_id if caller else None,
                address=address,
                status=response.status_code,
                error=error_code,
                request_id=exchange(request.scope).request_id,
            )
        return response

    return endpoint


async def finish_body(request: Request, response: Response, limit: int = DISCARD_WITHOUT_SLOT) -> None:
    """Before an error answer: read what is left of the body (at most `limit` bytes in all), so the client
    can read the answer rather than hit a closed connection; close the connection if it was not all read.
    Not for a 429, whose point is not to take the body. Only a request holding an upload-body slot may be
    read far: the slots bound how many bodies are read at once."""
    if response.status_code not in (413, 429):  # a 413 has read what it reads (streams.read_limited)
        await discard_rest(request.scope, request.receive, limit)
    close_unless_read(request.scope, response.headers)


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


def unguarded(endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """/v2/ and /token, which name no repository: failures still answer in the spec's JSON."""

    async def answer(request: Request) -> Response:
        try:
            return await endpoint(request)
        except Exception as raised:
            error = for_failure(raised)
            response = respond(error, request.method == "HEAD")
            request.app.state.failures.report("oci", f"{request.method} {request.url.path}", error.status, raised)
            await finish_body(request, response)
            return response

    return answer


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


async def no_such_endpoint(request: Request) -> Response:
    error = OciError("UNSUPPORTED", 404, f"No /v2/ endpoint answers {request.method} {request.url.path}")
    response = respond(error, request.method == "HEAD")
    await finish_body(request, response)
    return response


NAME = "/v2/{name:path}"
# The ECR operation each push or delete corresponds to: what a repository policy grants or denies.
UPLOAD, PART, COMPLETE = "InitiateLayerUpload", "UploadLayerPart", "CompleteLayerUpload"
PUT_IMAGE, DELETE = "PutImage", "BatchDeleteImage"
PUSHES = (UPLOAD, PART, COMPLETE, PUT_IMAGE)

ROUTES: list[BaseRoute] = [
    Route("/token", unguarded(auth.token), methods=["GET", "POST"], name="token"),  # first: the most asked
    Route("/v2/", unguarded(base), methods=["GET", "HEAD"], name="ping"),
    Route(
        f"{NAME}/manifests/{{reference}}",
        guarded(manifests.get_manifest, PULL, limited=True, cached=pullthrough.get_manifest),
        methods=["GET", "HEAD"],
        name="get_manifest",
    ),
    Route(
        f"{NAME}/manifests/{{reference}}",
        guarded(manifests.put_manifest, PUT_IMAGE),
        methods=["PUT"],
        name="put_manifest",
    ),
    Route(
        f"{NAME}/manifests/{{reference}}",
        guarded(manifests.delete_manifest, DELETE),
        methods=["DELETE"],
        name="delete_manifest",
    ),
    Route(
        f"{NAME}/blobs/uploads/",
        guarded(uploads.post_blob_upload, UPLOAD, upload_body=True),
        methods=["POST"],
        name="start_upload",
    ),
    Route(
        f"{NAME}/blobs/uploads/{{upload_id}}",
        guarded(uploads.get_blob_upload, PART),
        methods=["GET"],
        name="get_upload",
    ),
    Route(
        f"{NAME}/blobs/uploads/{{upload_id}}",
        guarded(uploads.patch_blob_upload, PART, upload_body=True),
        methods=["PATCH"],
        name="patch_upload",
    ),
    Route(
        f"{NAME}/blobs/uploads/{{upload_id}}",
        guarded(uploads.put_blob_upload, COMPLETE, upload_body=True),
        methods=["PUT"],
        name="finish_upload",
    ),
    Route(
        f"{NAME}/blobs/uploads/{{upload_id}}",
        guarded(uploads.delete_blob_upload, PART),
        methods=["DELETE"],
        name="cancel_upload",
    ),
    Route(
        f"{NAME}/blobs/{{digest}}",
        guarded(blobs.get_blob, PULL, cached=pullthrough.get_blob),
        methods=["GET", "HEAD"],
        name="get_blob",
    ),
    Route(f"{NAME}/blobs/{{digest}}", guarded(blobs.delete_blob, DELETE), methods=["DELETE"], name="delete_blob"),
    Route(f"{NAME}/tags/list", guarded(tags.list_tags, PULL, limited=True), methods=["GET"], name="list_tags"),
    Route(
        f"{NAME}/referrers/{{digest}}",
        guarded(referrers.get_referrers, PULL, limited=True),
        methods=["GET"],
        name="referrers",
    ),
    # Last: anything else under /v2/ is answered in the spec's JSON, not by the gallery or as plain text.
    Route("/v2/{rest:path}", unguarded(no_such_endpoint), methods=[*METHODS], name="unknown"),
]
# Answered without the router (web/shortcuts.py): no route of another door before them matches a /v2/ or
# /token path, and every endpoint here answers its own failures.
SHORTCUTS = [route for route in ROUTES if isinstance(route, Route)]
