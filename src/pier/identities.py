"""From the configuration to who can call: accounts, the users pier.toml declares, and the box that seals
users' secrets. Shared by the app factory and the CLI (which must not import the whole app to do it)."""

from __future__ import annotations

from pier.config import Config
from pier.core.accounts import Account, Accounts
from pier.core.secrets import SecretBox, parse_key
from pier.core.users import DeclaredUser


def accounts_of(config: Config) -> Accounts:
    return Accounts(
        Account(a.id, a.alias, a.access_key_id, a.secret_access_key, a.session_token, a.verified)
        for a in config.accounts
    )


def declared_users(config: Config) -> list[DeclaredUser]:
    return [
        DeclaredUser(u.account_id, u.name, u.access_key_id, u.secret_access_key, u.policy_text) for u in config.users
    ]


def secret_box(config: Config) -> SecretBox:
    return SecretBox(parse_key(config.secrets_key) if config.secrets_key else None)
