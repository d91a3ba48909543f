"""ECR Public's authentication for /v2/: Bearer tokens from /token, anonymous pull, Basic AWS:<password>.

A token carries who it was issued to (an account's root, one of its users with the access key it logged
in with, or nobody), not a narrowed list of actions: each request is then allowed what that caller may
do now, as ECR does. So a client that keeps its first token (oras-py keeps one got for a pull) can still
push with it when its user may push, and a token whose user or key was deleted stops working, and one
whose user's policy changed obeys the new policy, within the bound core/users.py keeps.
"""

from __future__ import annotations

import base64
import binascii
import datetime
from dataclasses import dataclass
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pier.core import principals, registries
from pier.core.context import Core
from pier.core.principals import Caller, Revoked
from pier.core.tokens import InvalidToken
from pier.core.users import MISS_SECONDS
from pier.oci.errors import OciError, respond
from pier.web.exchange import exchange
from pier.web.streams import read_limited
from pier.web.threads import run_sync

BEARER_PURPOSE = "bearer"
FORM_MAX_BYTES = 64 * 1024


@dataclass(frozen=True)
class Identity:
    caller: Caller | None  # None: anonymous
    presented: bool  # some valid credential (an anonymous token counts) came with the request


def _where(request: Request) -> tuple[str | None, bool]:
    """The client's address, and whether the request came over TLS (what policy conditions look at)."""
    return (request.client.host if request.client else None), request.scope.get("scheme") == "https"


def challenge(core: Core, scope: str | None = None) -> dict[str, str]:
    value = f'Bearer realm="{core.public_url}/token",service="{core.public_host}"'
    if scope:
        value += f',scope="{scope}"'
    return {"WWW-Authenticate": value}


def unauthorized(core: Core, message: str, scope: str | None = None) -> OciError:
    return OciError("UNAUTHORIZED", 401, message, challenge(core, scope))


async def identify(core: Core, request: Request) -> Identity:
    """Who is calling; bad credentials are a 401 with the challenge (never silently anonymous)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if not header:
        return Identity(None, False)
    if scheme.lower() == "bearer":
        token = value.strip()
        try:
            if core.signer.answers_from_memory(token):
                claims = core.signer.verify(BEARER_PURPOSE, token)  # an HMAC: cheaper than a thread hop
            else:
                claims = await run_sync(core.signer.verify, BEARER_PURPOSE, token)
        except InvalidToken:
            raise unauthorized(core, "The bearer token is invalid or expired") from None
        if principals.needs_refresh(core.directory, claims):  # a user's token: what is known must be recent
            await run_sync(core.directory.ensure_fresh, MISS_SECONDS)
        try:
            caller = principals.from_claims(core.directory, claims, *_where(request))
        except Revoked:
            raise unauthorized(core, "The bearer token's user or access key no longer exists: log in again") from None
        return _identified(request, caller)
    if scheme.lower() == "basic":
        caller = await run_sync(basic_caller, core, value.strip(), *_where(request))
        if caller is None:
            raise unauthorized(core, "Invalid username or password: use AWS and a password from get-login-password")
        return _identified(request, caller)
    raise unauthorized(core, f"Unsupported authorization scheme {scheme!r}")


def _identified(request: Request, caller: Caller | None) -> Identity:
    """The identity of a request that presented credentials; its account goes in the request's log line."""
    if caller is not None:
        exchange(request.scope).account = caller.account_id
    return Identity(caller, True)


def basic_caller(core: Core, value: str, source_ip: str | None, secure_transport: bool) -> Caller | None:
    try:
        username, _, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    if username != "AWS":
        return None
    return registries.caller_for_password(core, password, source_ip, secure_transport)


def issue(core: Core, caller: Caller | None, scope: str | None, ttl: int) -> dict[str, object]:
    claims = {**principals.claims(caller), "scope": scope}
    token = core.signer.sign(BEARER_PURPOSE, claims, ttl=ttl)
    issued_at = datetime.datetime.fromtimestamp(core.clock(), datetime.UTC).isoformat().replace("+00:00", "Z")
    return {"token": token, "access_token": token, "expires_in": ttl, "issued_at": issued_at}


async def token(request: Request) -> Response:
    """GET /token?service=&scope= (Docker), and POST /token with an OAuth2 password grant (containerd)."""
    core: Core = request.app.state.core
    caller: Caller | None = None
    scope = request.query_params.get("scope")
    if request.method == "POST":
        raw = await read_limited(request, FORM_MAX_BYTES)
        if raw is None:
            message = f"A token request form may be at most {FORM_MAX_BYTES} bytes"
            return respond(OciError("SIZE_INVALID", 413, message, {"Connection": "close"}))
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        scope = form.get("scope") or scope
        username, password = form.get("username", ""), form.get("password", "")
        if form.get("grant_type") == "password":
            caller = await run_sync(registries.caller_for_password, core, password, *_where(request))
            if username != "AWS" or caller is None:
                return _denied(core)
    elif request.headers.get("authorization"):
        scheme, _, value = request.headers["authorization"].partition(" ")
        if scheme.lower() == "basic":
            caller = await run_sync(basic_caller, core, value.strip(), *_where(request))
        if caller is None:
            return _denied(core)
    if caller is not None:
        exchange(request.scope).account = caller.account_id
    address = request.client.host if request.client else ""
    wait = request.app.state.rate_limits.wait_time(address, caller is not None)
    if wait:
        error = OciError("TOOMANYREQUESTS", 429, "Too many token requests", {"Retry-After": str(int(wait) + 1)})
        return respond(error)
    ttl = request.app.state.config.token_ttl_seconds
    if core.signer.signs_from_memory():
        body = issue(core, caller, scope, ttl)  # an HMAC: cheaper than a thread hop
    else:
        body = await run_sync(issue, core, caller, scope, ttl)  # its keys are read again first
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


def _denied(core: Core) -> Response:
    error = unauthorized(core, "Invalid username or password: use AWS and a password from get-login-password")
    return respond(error)
