"""Who may act on what: the one place that turns (caller, registryId, name) into a repository.

Until repository policies grant access to other accounts (they are stored, not yet evaluated), only
the owner may act on a repository. A foreign repository is reported exactly as a missing one, so a
caller learns nothing about what exists in registries it may not use.
"""

from __future__ import annotations

import enum

from pier import errors
from pier.core import limits
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


class Action(enum.Enum):
    PULL = "pull"  # read manifests, blobs, tags, referrers: anyone, as ECR Public is public
    PUSH = "push"  # upload blobs, put manifests: the owner
    DELETE = "delete"  # delete manifests, tags, blobs: the owner


def repository_by_path(core: Core, caller: Account | None, path: str, action: Action) -> RepositoryRow:
    """The repository `<alias>/<name>` names, if the caller may do `action` on it.

    The caller is None when anonymous. Anonymous callers who need an account learn that first (so a
    client logs in before anything else); an account without the right gets AccessDenied.
    """
    if action is not Action.PULL and caller is None:
        raise errors.AuthenticationRequired(f"{action.value} {path}")
    alias, _, name = path.partition("/")
    if not limits.is_alias(alias) or not limits.is_repository_name(name):
        raise errors.NameInvalid(path)
    account = core.accounts.by_alias(alias)
    if account is None:
        raise errors.RepositoryNotFound(alias, name)
    row = core.meta.get_repository(account.id, name)
    if row is None:
        raise errors.RepositoryNotFound(account.id, name)
    if action is not Action.PULL and (caller is None or caller.id != account.id):
        raise errors.AccessDenied(action.value, path)
    return row
