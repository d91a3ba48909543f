"""POST / : one AWS JSON 1.1 request from bytes to response.

Order of checks, each with its own error: body size (413), signature (403/400), X-Amz-Target
(UnknownOperationException), content type (415), JSON and the model's constraints (400), then the
operation. Every response carries x-amzn-RequestId; errors also carry x-amzn-ErrorType and a body
{"__type": ..., "message": ...}. Nothing unexpected escapes as a bare 500: it becomes ServerException.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from pier import errors
from pier.api import (  # noqa: F401 - importing a handler module registers its operations
    catalog,
    images,
    inline_blobs,
    layers,
    model,
    policies,
    protocol,
    registries,
    repositories,
    sigv4,
    tags,
)
from pier.api.errors import ApiError, to_wire
from pier.api.operations import FROM_MEMORY, HANDLERS
from pier.core import limits
from pier.core.context import Core
from pier.core.principals import Caller
from pier.core.reads import NotInMemory
from pier.core.users import MISS_SECONDS
from pier.web.admission import RETRY_AFTER, TooManyBodies
from pier.web.bodies import BodyError, BodyTimeout, close_unless_read, discard_rest, has_body
from pier.web.exchange import UNKNOWN, exchange
from pier.web.failures import explain
from pier.web.threads import run_sync, run_upload

CONTENT_TYPE = "application/x-amz-json-1.1"
ACCEPTED_CONTENT_TYPES = {CONTENT_TYPE, "application/x-amz-json-1.0", "application/json"}


# Operations whose bodies are upload bytes: bounded in flight (web/admission.py), run on the upload pool.
UPLOAD_BODY_OPERATIONS = (".UploadLayerPart",)
BYTES_OPERATIONS = {"UploadLayerPart", "CompleteLayerUpload"}
_CLAIMED_KEY = re.compile(r"Credential=([A-Za-z0-9]+)/")

# Operations that change nothing are not audited.
READ_ONLY_PREFIXES = ("Describe", "Get", "List", "BatchCheck")
AUDITED_NAMES = ("repositoryName", "resourceArn", "registryId")


async def handle(request: Request) -> Response:
    facts = exchange(request.scope)
    request_id = facts.request_id  # also X-Request-Id (web/exchange.py): one id per request
    target = request.headers.get("x-amz-target", "")
    facts.operation = _known_operation(target) or UNKNOWN
    if target.endswith(UPLOAD_BODY_OPERATIONS) and has_body(request.scope):
        address = request.client.host if request.client else ""
        try:
            with request.app.state.body_slots.hold(_claimed_account(request), address):
                response, operation, caller, named = await _handle(request, request_id)
        except TooManyBodies as refused:
            throttled = ApiError("ThrottlingException", 400, str(refused), {}, {"Retry-After": str(RETRY_AFTER)})
            response, operation, caller, named = _error(throttled, request_id), "", None, {}
    else:
        response, operation, caller, named = await _handle(request, request_id)
    close_unless_read(request.scope, response.headers)
    if not operation and response.status_code >= 400:
        operation = _known_operation(target)  # a refused call is audited too, if it names a real operation
    if operation and not operation.startswith(READ_ONLY_PREFIXES):
        target = named.get("repositoryName") or named.get("resourceArn") or ""
        if named.get("registryId"):
            target = f"{named['registryId']}/{target}"
        error = response.headers.get("x-amzn-ErrorType")
        request.app.state.audit.record(
            door="api",
            action=operation,
            principal=caller.arn if caller else None,
            account=caller.account_id if caller else None,
            # The key the request claims when it was not verified: never a secret, and what a revoked key's
            # attempts are found by.
            access_key_id=caller.access_key_id if caller else _claimed_key(request),
            target=target,
            address=request.client.host if request.client else None,
            status=response.status_code,
            error=error,
            request_id=request_id,
        )
    return response


async def _handle(request: Request, request_id: str) -> tuple[Response, str, Caller | None, dict[str, str]]:
    """The response, and for the audit log: the operation (if known), the caller, what it named."""
    operation, caller, named = "", None, dict[str, str]()
    try:
        body = await _read_body(request)
        core: Core = request.app.state.core
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.scope["headers"]]
        url = f"http://{request.headers.get('host', '')}{request.scope['path']}"
        if request.scope.get("query_string"):
            url += "?" + request.scope["query_string"].decode("latin-1")
        claimed = _claimed_key(request)
        if claimed is not None and core.directory.needs_refresh_for_key(claimed):
            await run_sync(core.directory.ensure_fresh, MISS_SECONDS)  # a user's key: what is known must be recent
        now = datetime.datetime.now(datetime.UTC)
        credential = sigv4.verify(core.directory.credential, request.method, url, headers, body, now)
        address = request.client.host if request.client else ""
        caller = Caller(
            credential.account,
            credential.user,
            credential.access_key_id,
            address,
            request.scope.get("scheme") == "https",
        )
        exchange(request.scope).account = credential.account.id
        wait = request.app.state.rate_limits.wait_time(address, True)
        if wait:
            raise ApiError("ThrottlingException", 400, "Rate exceeded", {}, {"Retry-After": str(int(wait) + 1)})
        operation = _operation(request.headers.get("x-amz-target", ""))
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in ACCEPTED_CONTENT_TYPES:
            raise ApiError(
                "UnsupportedMediaTypeException",
                415,
                f"Content-Type must be {CONTENT_TYPE}, not {content_type or 'missing'!r}",
            )
        op_model = model.service_model().operation_model(operation)
        # A 20 MiB layer part is ~27 MiB of JSON, and every copy counts: its bytes are decoded from the body
        # as they are written, and any other body is emptied before its text is parsed (api/inline_blobs.py).
        params = inline_blobs.parse_request(op_model.input_shape, body)
        named = {key: str(params[key]) for key in AUDITED_NAMES if key in params}
        result = _from_memory(core, caller, operation, params)
        if result is None:
            run = run_upload if operation in BYTES_OPERATIONS else run_sync
            result = await run(HANDLERS[operation], core, caller, params)
        payload = protocol.serialize_output(op_model.output_shape, result)
        response = _respond(200, payload, request_id)
    except ApiError as error:
        response = _error(error, request_id)
    except protocol.SerializationError as error:
        response = _error(ApiError("SerializationException", 400, str(error)), request_id)
    except protocol.ValidationError as error:
        response = _error(ApiError("InvalidParameterException", 400, str(error)), request_id)
    except errors.PierError as error:
        response = _error(to_wire(error), request_id)
        if response.status_code >= 500:
            request.app.state.failures.report("api", operation or "?", response.status_code, error)
    except BodyTimeout as error:
        response = _error(ApiError("RequestTimeoutException", 408, str(error)), request_id)
        request.app.state.failures.report("api", operation or "?", 408, error)
    except BodyError as error:  # the client went away, or pier is stopping
        retry = {"Retry-After": str(errors.Unavailable.RETRY_AFTER)}
        response = _error(ApiError("ServerException", 503, str(error), {}, retry), request_id)
        request.app.state.failures.report("api", operation or "?", 503, error)
    except Exception as failure:
        response = _error(to_wire(explain(failure)), request_id)
        request.app.state.failures.report(
            "api", f"{operation or '?'} (request {request_id})", response.status_code, failure
        )
    return response, operation, caller, named


def _from_memory(core: Core, caller: Caller, operation: str, params: dict[str, Any]) -> dict[str, Any] | None:
    """The answer, on the event loop, when the operation can give it from memory (api/operations.py
    FROM_MEMORY: a DescribeImages page kept, a token signed with fresh keys); None otherwise."""
    handler = FROM_MEMORY.get(operation)
    if handler is None:
        return None
    try:
        return handler(core, caller, params)
    except NotInMemory:
        return None


async def _read_body(request: Request) -> bytearray:
    """The body, at most API_BODY_MAX bytes. A larger one is read and dropped up to twice that first, so
    the SDK reads the 413 instead of a broken pipe (after which it would send the body again)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limits.API_BODY_MAX):
        if declared.isdigit() and int(declared) <= 2 * limits.API_BODY_MAX:
            await discard_rest(request.scope, request.receive, 2 * limits.API_BODY_MAX)
        raise _too_large()
    body = bytearray()  # grows in place (realloc/mremap): no second copy of a large body
    async for chunk in request.stream():
        if len(body) + len(chunk) > limits.API_BODY_MAX:
            del body
            await discard_rest(request.scope, request.receive, 2 * limits.API_BODY_MAX)
            raise _too_large()
        body += chunk
    return body


def _too_large() -> ApiError:
    message = f"The request body must be at most {limits.API_BODY_MAX} bytes"
    return ApiError("RequestEntityTooLargeException", 413, message, {}, {"Connection": "close"})


def _claimed_key(request: Request) -> str | None:
    """The access key id the request's Authorization names (before, or without, its signature checked)."""
    match = _CLAIMED_KEY.search(request.headers.get("authorization", ""))
    return match[1] if match else None


def _claimed_account(request: Request) -> str | None:
    """The account whose access key the request names (its signature is checked once the body is in)."""
    key = _claimed_key(request)
    try:
        credential = request.app.state.core.directory.credential(key) if key else None
    except errors.PierError:
        return None
    return credential.account.id if credential else None


def _known_operation(target: str) -> str:
    """The operation X-Amz-Target names, if pier has it (the service's prefix, then a known name); else ""."""
    prefix, _, name = target.partition(".")
    return name if prefix == model.target_prefix() and name in HANDLERS else ""


def _operation(target: str) -> str:
    """The operation X-Amz-Target names, or UnknownOperationException."""
    if not target:
        raise ApiError("UnknownOperationException", 400, "The X-Amz-Target header is missing")
    name = _known_operation(target)
    if not name:
        raise ApiError("UnknownOperationException", 400, f"Unknown operation {target!r}")
    return name


def _respond(status: int, payload: Any, request_id: str, extra: dict[str, str] | None = None) -> Response:
    headers = {"x-amzn-RequestId": request_id, **(extra or {})}
    return Response(orjson.dumps(payload), status, headers, media_type=CONTENT_TYPE)


def _error(error: ApiError, request_id: str) -> Response:
    return _respond(
        error.status,
        {"__type": error.code, "message": error.message, **error.fields},
        request_id,
        {"x-amzn-ErrorType": error.code, **error.headers},
    )
