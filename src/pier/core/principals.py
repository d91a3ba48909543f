"""Callers as IAM sees them: an account's root, or one of its users, with the access key it came with and
what the request says about itself (where from, whether over TLS) for policy conditions.

A door makes a Caller from a verified credential: a SigV4 signature (API), or a token that carries
claims() (a login password, a /v2/ bearer token). A token's holder is looked up again on every use
(from_claims), so a deleted user or key, or a changed policy, reaches tokens already issued.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pier.core import conditions, policies
from pier.core.accounts import Account

if TYPE_CHECKING:
    from pier.core.users import Directory, User


class Revoked(Exception):
    """The user or access key a token was issued to no longer exists."""


@dataclass(frozen=True)
class Caller:
    account: Account
    user: User | None = None  # None: the account's root
    access_key_id: str | None = None  # the key that signed the request, or that the token was got with
    source_ip: str | None = None
    secure_transport: bool = False  # the request came over TLS

    @property
    def account_id(self) -> str:
        return self.account.id

    @property
    def arn(self) -> str:
        return self.user.arn if self.user is not None else root_arn(self.account.id)

    @property
    def who(self) -> policies.Who:
        return policies.Who(self.account.id, self.user.arn if self.user is not None else None)

    def facts(self, now: float) -> conditions.Facts:
        return conditions.Facts(self.user.name if self.user else None, self.source_ip, self.secure_transport, now)


def root_arn(account_id: str) -> str:
    return f"arn:aws:iam::{account_id}:root"


def user_arn(account_id: str, name: str) -> str:
    return f"arn:aws:iam::{account_id}:user/{name}"


def claims(caller: Caller | None) -> dict[str, Any]:
    """What a token says about who it was issued to (None: anonymous)."""
    if caller is None:
        return {"a": None}
    found: dict[str, Any] = {"a": caller.account.id, "k": caller.access_key_id}
    if caller.user is not None:
        found |= {"u": caller.user.user_id, "n": caller.user.name}
    return found


def names_user(token_claims: dict[str, Any]) -> bool:
    """Whether the token was issued to a user (whose existence must then be checked against fresh data)."""
    return bool(token_claims.get("n"))


def needs_refresh(directory: Directory, token_claims: dict[str, Any]) -> bool:
    """Whether from_claims() calls for directory.ensure_fresh(MISS_SECONDS) first (a user's token, and
    what is known of users is not fresh, or does not know that user)."""
    if not names_user(token_claims):
        return False
    account_id, name = str(token_claims.get("a")), str(token_claims.get("n"))
    return directory.needs_refresh_for_user(account_id, name, token_claims.get("u"), token_claims.get("k"))


def from_claims(
    directory: Directory, token_claims: dict[str, Any], source_ip: str | None, secure_transport: bool
) -> Caller | None:
    """The caller a token was issued to, as it is now: None if anonymous; Revoked if its account, user or
    access key is gone (a user deleted and made again under its name is another user)."""
    account_id = token_claims.get("a")
    if not account_id:
        return None
    account = directory.accounts.by_id(str(account_id))
    if account is None:
        raise Revoked("the token names an unknown account")
    key = token_claims.get("k")
    key_id = str(key) if key else None
    if not names_user(token_claims):
        return Caller(account, None, key_id, source_ip, secure_transport)
    user = directory.user(account.id, str(token_claims["n"]))
    if user is None or user.user_id != token_claims.get("u") or (key_id is not None and key_id not in user.key_ids):
        raise Revoked("the token's user or access key no longer exists")
    return Caller(account, user, key_id, source_ip, secure_transport)
