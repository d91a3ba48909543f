"""Accounts, their registries, and the names AWS gives them (ARNs, URIs).

Each account owns exactly one registry: its registryId is the account id, and its alias is the first
path segment of every repositoryUri (<public host>/<alias>/<repository>).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

ARN_PREFIX = "arn:aws:ecr-public::"


@dataclass(frozen=True)
class Account:
    id: str
    alias: str
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None
    verified: bool = False  # set by the operator in pier.toml; the gallery shows a badge

    def __repr__(self) -> str:  # never print the secret
        return f"Account(id={self.id!r}, alias={self.alias!r})"


class Accounts:
    """Lookups over the configured accounts (they come from config and never change while serving)."""

    def __init__(self, accounts: Iterable[Account]) -> None:
        self.all = tuple(accounts)
        self._by_id = {a.id: a for a in self.all}
        self._by_alias = {a.alias: a for a in self.all}

    def by_id(self, account_id: str) -> Account | None:
        return self._by_id.get(account_id)

    def by_alias(self, alias: str) -> Account | None:
        return self._by_alias.get(alias)

    def by_id_or_alias(self, value: str) -> Account | None:
        return self._by_id.get(value) or self._by_alias.get(value)


def repository_arn(registry_id: str, name: str) -> str:
    return f"{ARN_PREFIX}{registry_id}:repository/{name}"


def registry_arn(registry_id: str) -> str:
    return f"{ARN_PREFIX}{registry_id}:registry/{registry_id}"


def parse_repository_arn(arn: str) -> tuple[str, str] | None:
    """(registry id, repository name) of a repository ARN, or None if it is not one."""
    if not arn.startswith(ARN_PREFIX):
        return None
    registry_id, _, resource = arn[len(ARN_PREFIX) :].partition(":")
    kind, _, name = resource.partition("/")
    if kind != "repository" or not name or len(registry_id) != 12 or not registry_id.isdigit():
        return None
    return registry_id, name
