"""Registries (one per account) and the authorization tokens clients log in with."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from pier.core import limits
from pier.core.accounts import Account, registry_arn
from pier.core.context import Core
from pier.core.tokens import InvalidToken

AUTH_PURPOSE = "login"


@dataclass(frozen=True)
class Registry:
    registry_id: str
    arn: str
    uri: str
    alias: str
    verified: bool = False


def describe_registries(core: Core, caller: Account) -> list[Registry]:
    """The caller's registry: an account sees only its own, as in ECR Public."""
    uri = f"{core.public_host}/{caller.alias}"
    return [Registry(caller.id, registry_arn(caller.id), uri, caller.alias, caller.verified)]


def get_authorization_token(core: Core, caller: Account) -> tuple[str, float]:
    """(base64 of 'AWS:<password>', expiry). The password is a signed token, checked without a lookup."""
    expires_at = core.clock() + limits.AUTHORIZATION_TOKEN_SECONDS
    password = core.signer.sign(AUTH_PURPOSE, {"a": caller.id}, ttl=limits.AUTHORIZATION_TOKEN_SECONDS)
    return base64.b64encode(f"AWS:{password}".encode()).decode(), expires_at


def account_for_password(core: Core, password: str) -> Account | None:
    """The account whose GetAuthorizationToken password this is, if it is valid and unexpired."""
    try:
        claims = core.signer.verify(AUTH_PURPOSE, password)
    except InvalidToken:
        return None
    return core.accounts.by_id(str(claims.get("a")))
