"""Who may act on what: the one place that turns (caller, registryId, name) into a repository.

Until repository policies grant access to other accounts (they are stored, not yet evaluated), only
the owner may act on a repository. A foreign repository is reported exactly as a missing one, so a
caller learns nothing about what exists in registries it may not use.
"""

from __future__ import annotations

from pier import errors
from pier.core.accounts import Account
from pier.core.context import Core
from pier.storage.metadata import RepositoryRow


def target_registry(core: Core, caller: Account, registry_id: str | None) -> str:
    """The registry id a request names (by id or alias), or the caller's own when it names none."""
    if registry_id is None or registry_id in (caller.id, caller.alias):
        return caller.id
    account = core.accounts.by_id_or_alias(registry_id)
    if account is None:
        raise errors.RegistryNotFound(registry_id)
    return account.id


def find_repository(
    core: Core, caller: Account, registry_id: str | None, name: str, *, registry_must_exist: bool = False
) -> RepositoryRow:
    """The repository the caller may manage, or RepositoryNotFound.

    With registry_must_exist (the operations that take a registry alias), a registry that does not
    exist at all is RegistryNotFound, as ECR answers them.
    """
    try:
        target = target_registry(core, caller, registry_id)
    except errors.RegistryNotFound:
        if registry_must_exist:
            raise
        raise errors.RepositoryNotFound(registry_id or caller.id, name) from None
    row = core.meta.get_repository(target, name) if target == caller.id else None
    if row is None:
        raise errors.RepositoryNotFound(target, name)
    return row
