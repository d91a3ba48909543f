"""Registries (one per account) and the authorization tokens clients log in with."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from pier.core import limits, principals
from pier.core.access import require, require_registry
from pier.core.accounts import registry_arn
from pier.core.context import Core
from pier.core.principals import Caller, Revoked
from pier.core.reads import NotInMemory
from pier.core.tokens import InvalidToken
from pier.core.users import MISS_SECONDS

AUTH_PURPOSE = "login"


@dataclass(frozen=True)
class Registry:
    registry_id: str
    arn: str
    uri: str
    alias: str
    verified: bool = False


# GetAuthorizationToken needs both, as in AWS: the token is an STS service bearer token.
TOKEN_ACTIONS = ("ecr-public:GetAuthorizationToken", "sts:GetServiceBearerToken")


def describe_registries(core: Core, caller: Caller) -> list[Registry]:
    """The caller's registry: an account sees only its own, as in ECR Public."""
    require_registry(core, caller, "DescribeRegistries")
    account = caller.account
    uri = f"{core.public_host}/{account.alias}"
    return [Registry(account.id, registry_arn(account.id), uri, account.alias, account.verified)]


def get_authorization_token(core: Core, caller: Caller, *, memory_only: bool = False) -> tuple[str, float]:
    """(base64 of 'AWS:<password>', expiry). The password is a signed token naming the caller (and the key
    it signed with), checked without a lookup of its own; who it names is looked up at each use. With
    memory_only, NotInMemory (core/reads.py) unless the signing keys are fresh: the rest is an HMAC."""
    if memory_only and not core.signer.signs_from_memory():
        raise NotInMemory
    for action in TOKEN_ACTIONS:
        require(core, caller, action, "*")
    expires_at = core.clock() + limits.AUTHORIZATION_TOKEN_SECONDS
    password = core.signer.sign(AUTH_PURPOSE, principals.claims(caller), ttl=limits.AUTHORIZATION_TOKEN_SECONDS)
    return base64.b64encode(f"AWS:{password}".encode()).decode(), expires_at


def caller_for_password(core: Core, password: str, source_ip: str | None, secure_transport: bool) -> Caller | None:
    """Whom this GetAuthorizationToken password was issued to, if it is valid, unexpired and its user and
    key still exist (blocking: it may look for changes to users)."""
    try:
        claims = core.signer.verify(AUTH_PURPOSE, password)
    except InvalidToken:
        return None
    if not claims.get("a"):
        return None
    if principals.needs_refresh(core.directory, claims):
        core.directory.ensure_fresh(MISS_SECONDS)
    try:
        return principals.from_claims(core.directory, claims, source_ip, secure_transport)
    except Revoked:
        return None
