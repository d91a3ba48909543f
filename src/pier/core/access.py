"""Who may act on what: the one place that turns (caller, repository, action) into yes or no.

The owner may do everything its repository's policy does not explicitly deny. Another account may do
what the policy allows and does not deny. Pulls through /v2/ are public, as in ECR Public. On the API a
caller that may not act on another account's repository is told it does not exist, so nothing leaks
about what exists in registries it may not use.
"""

from __future__ import annotations

from pier import errors
from pier.core import limits, policies, pullthrough
from pier.core.accounts import Account, repository_arn
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


def allowed(core: Core, caller: Account | None, row: RepositoryRow, action: str) -> bool:
    """May `caller` (None: anonymous) do the ECR operation `action` on the repository?"""
    account_id = caller.id if caller else None
    decision = policies.evaluate(
        row.policy_text, account_id, f"ecr-public:{action}", repository_arn(row.registry_id, row.name)
    )
    if decision is policies.Decision.DENY:
        return False
    return account_id == row.registry_id or decision is policies.Decision.ALLOW


def find_repository(
    core: Core,
    caller: Account,
    registry_id: str | None,
    name: str,
    action: str,
    *,
    registry_must_exist: bool = False,
) -> RepositoryRow:
    """The repository, if the caller may do `action` (an ECR operation name) on it.

    RepositoryNotFound when it does not exist or belongs to another account that grants nothing;
    AccessDenied when the caller owns it but its policy denies the action.

    With registry_must_exist (the operations that take a registry alias), a registry that does not
    exist at all is RegistryNotFound, as ECR answers them.
    """
    try:
        target = target_registry(core, caller, registry_id)
    except errors.RegistryNotFound:
        if registry_must_exist:
            raise
        raise errors.RepositoryNotFound(registry_id or caller.id, name) from None
    if target == caller.id:  # another account's caches are refused as its repositories are (not found)
        pullthrough.refuse_writes(core, target, name, action)
    row = core.meta.get_repository(target, name)
    if row is None:
        raise errors.RepositoryNotFound(target, name)
    if not allowed(core, caller, row, action):
        if caller.id == row.registry_id:
            raise errors.AccessDenied(action, name)
        raise errors.RepositoryNotFound(target, name)
    pullthrough.refuse_writes(core, target, name, action)
    return row


def is_repository_path(path: str) -> bool:
    """Whether `path` has the form <alias>/<repository> with valid names (it may still not exist)."""
    alias, _, name = path.partition("/")
    return limits.is_alias(alias) and limits.is_repository_name(name)


# Reads through /v2/ (manifests, blobs, tags, referrers) need no right: ECR Public repositories are public.
PULL = None


def repository_by_path(core: Core, caller: Account | None, path: str, action: str | None) -> RepositoryRow:
    """The repository `<alias>/<name>` names, if the caller may do `action` (an ECR operation, or PULL).

    The caller is None when anonymous. Anonymous callers who need an account learn that first (so a
    client logs in before anything else); an account without the right gets AccessDenied.
    """
    if action is not PULL and caller is None:
        raise errors.AuthenticationRequired(f"{action} {path}")
    if not is_repository_path(path):
        raise errors.NameInvalid(path)
    alias, _, name = path.partition("/")
    account = core.accounts.by_alias(alias)
    if account is None:
        raise errors.RepositoryNotFound(alias, name)
    pullthrough.refuse_writes(core, account.id, name, action)
    row = core.meta.get_repository(account.id, name)
    if row is None:
        raise errors.RepositoryNotFound(account.id, name)
    if action is not PULL and not allowed(core, caller, row, action):
        raise errors.AccessDenied(action, path)
    return row
