"""ECR Public's authentication for /v2/: Bearer tokens from /token, anonymous pull, Basic AWS:<password>.

A token carries who it was issued to (an account, or nobody), not a narrowed list of actions: each
request is then allowed what that caller may do, as ECR does. So a client that keeps its first token
(oras-py keeps one got for a pull) can still push with it when its user may push.
"""

from __future__ import annotations

import base64
import binascii
import datetime
from dataclasses import dataclass
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pier.core import registries
from pier.core.accounts import Account
from pier.core.context import Core
from pier.core.tokens import InvalidToken
from pier.oci.errors import OciError, respond
from pier.web.exchange import exchange
from pier.web.streams import read_limited
from pier.web.threads import run_sync

BEARER_PURPOSE = "bearer"
FORM_MAX_BYTES = 64 * 1024


@dataclass(frozen=True)
class Identity:
    account: Account | None  # None: anonymous
    presented: bool  # some valid credential (an anonymous token counts) came with the request


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
        account_id = claims.get("a")
        account = core.accounts.by_id(str(account_id)) if account_id else None
        if account_id and account is None:
            raise unauthorized(core, "The bearer token names an unknown account")
        return Identity(account, True)
    if scheme.lower() == "basic":
        account = await run_sync(basic_account, core, value.strip())
        if account is None:
            raise unauthorized(core, "Invalid username or password: use AWS and a password from get-login-password")
        return Identity(account, True)
    raise unauthorized(core, f"Unsupported authorization scheme {scheme!r}")


def basic_account(core: Core, value: str) -> Account | None:
    try:
        username, _, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return registries.account_for_password(core, password) if username == "AWS" else None


def issue(core: Core, account: Account | None, scope: str | None, ttl: int) -> dict[str, object]:
    claims = {"a": account.id if account else None, "scope": scope}
    token = core.signer.sign(BEARER_PURPOSE, claims, ttl=ttl)
    issued_at = datetime.datetime.fromtimestamp(core.clock(), datetime.UTC).isoformat().replace("+00:00", "Z")
    return {"token": token, "access_token": token, "expires_in": ttl, "issued_at": issued_at}


async def token(request: Request) -> Response:
    """GET /token?service=&scope= (Docker), and POST /token with an OAuth2 password grant (containerd)."""
    core: Core = request.app.state.core
    account: Account | None = None
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
            account = await run_sync(registries.account_for_password, core, password)
            if username != "AWS" or account is None:
                return _denied(core)
    elif request.headers.get("authorization"):
        scheme, _, value = request.headers["authorization"].partition(" ")
        account = await run_sync(basic_account, core, value.strip()) if scheme.lower() == "basic" else None
        if account is None:
            return _denied(core)
    if account is not None:
        exchange(request.scope).account = account.id
    address = request.client.host if request.client else ""
    wait = request.app.state.rate_limits.wait_time(address, account is not None)
    if wait:
        error = OciError("TOOMANYREQUESTS", 429, "Too many token requests", {"Retry-After": str(int(wait) + 1)})
        return respond(error)
    body = await run_sync(issue, core, account, scope, request.app.state.config.token_ttl_seconds)
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


def _denied(core: Core) -> Response:
    error = unauthorized(core, "Invalid username or password: use AWS and a password from get-login-password")
    return respond(error)
