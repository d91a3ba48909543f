"""Who may act on what: the one place that turns (caller, action, resource) into yes or no, as IAM does.

    an explicit Deny in the user's identity policy or in the repository policy  ->  no, whoever asks
    the account's root, in its own account                                     ->  yes
    a user, in its own account      ->  yes if its identity policy allows, or the repository policy
                                        allows naming the user itself (or "*"); naming only the account
                                        delegates to the identity policy
    another account's root          ->  yes if the repository policy allows
    another account's user          ->  yes if the repository policy allows AND its identity policy does

Actions are "ecr-public:<Operation>" (and "sts:GetServiceBearerToken" beside GetAuthorizationToken);
resources are repository ARNs, the registry ARN for registry-wide operations, "*" for tokens.
Pulls through /v2/ are public, as in ECR Public. On the API, a caller whom another account's
repository policy does not let in is told the repository does not exist, so nothing leaks about what
exists in registries it may not use; anyone else refused gets AccessDenied in IAM's words.
"""

from __future__ import annotations

import enum

from pier import errors
from pier.core import limits, policies, pullthrough
from pier.core.accounts import registry_arn, repository_arn
from pier.core.context import Core
from pier.core.principals import Caller
from pier.core.reads import NotInMemory, remembered
from pier.storage.metadata import RepositoryRow

SERVICE = "ecr-public"
# Listings that may name their repository from memory (core/reads.py): they change nothing, so a repository
# (and its policy) read up to reads.TTL_SECONDS ago by a process on another host is as good as what a read
# that began a moment earlier would have found. Writes always read it in the store.
REMEMBERED_LISTINGS = frozenset({"DescribeImages", "DescribeImageTags"})


class Refusal(enum.Enum):
    NO_IDENTITY_ALLOW = "no_identity_allow"
    NO_RESOURCE_ALLOW = "no_resource_allow"
    IDENTITY_DENY = "identity_deny"
    RESOURCE_DENY = "resource_deny"

    def reason(self, action: str) -> str:
        return {
            Refusal.NO_IDENTITY_ALLOW: f"because no identity-based policy allows the {action} action",
            Refusal.NO_RESOURCE_ALLOW: f"because no resource-based policy allows the {action} action",
            Refusal.IDENTITY_DENY: "with an explicit deny in an identity-based policy",
            Refusal.RESOURCE_DENY: "with an explicit deny in a resource-based policy",
        }[self]


def qualified(action: str) -> str:
    """ECR operation names become IAM actions (ecr-public:PutImage); qualified names stay as they are."""
    return action if ":" in action else f"{SERVICE}:{action}"


def decide(
    core: Core, caller: Caller, action: str, resource: str, owner: str, repository_policy: str | None = None
) -> Refusal | None:
    """None if `caller` may do `action` on `resource` of account `owner`, else why not."""
    action = qualified(action)
    facts = caller.facts(core.clock())
    who = caller.who
    granted = policies.evaluate(policies.parse(repository_policy), who, action, resource, facts)
    identity = policies.evaluate(caller.user.policy, who, action, resource, facts) if caller.user else None
    # The owner's word first: for another account's caller, a refusal by the repository policy is what
    # decides whether it may even learn that the repository exists.
    if granted.deny:
        return Refusal.RESOURCE_DENY
    if caller.account_id != owner and not granted.allow:
        return Refusal.NO_RESOURCE_ALLOW
    if identity is not None and identity.deny:
        return Refusal.IDENTITY_DENY
    if identity is None or identity.allow:
        return None
    if caller.account_id == owner and granted.allow_named:
        return None
    return Refusal.NO_IDENTITY_ALLOW


def denied(caller: Caller, action: str, resource: str, refusal: Refusal) -> errors.AccessDenied:
    action = qualified(action)
    return errors.AccessDenied(caller.arn, action, resource, refusal.reason(action))


def require(core: Core, caller: Caller, action: str, resource: str, owner: str | None = None) -> None:
    """AccessDenied unless the caller may do an action that no repository policy governs (on its registry,
    on a repository it creates, or for a token)."""
    refusal = decide(core, caller, action, resource, owner or caller.account_id)
    if refusal is not None:
        raise denied(caller, action, resource, refusal)


def require_registry(core: Core, caller: Caller, action: str) -> None:
    """For the registry-wide operations on the caller's own registry (DescribeRegistries, its catalog data)."""
    require(core, caller, action, registry_arn(caller.account_id))


def target_registry(core: Core, caller: Caller, registry_id: str | None) -> str:
    """The registry id a request names (by id or alias), or the caller's own when it names none."""
    if registry_id is None or registry_id in (caller.account.id, caller.account.alias):
        return caller.account.id
    account = core.accounts.by_id_or_alias(registry_id)
    if account is None:
        raise errors.RegistryNotFound(registry_id)
    return account.id


def refusal_for(core: Core, caller: Caller, row: RepositoryRow, action: str) -> Refusal | None:
    resource = repository_arn(row.registry_id, row.name)
    return decide(core, caller, action, resource, row.registry_id, row.policy_text)


def allowed(core: Core, caller: Caller, row: RepositoryRow, action: str) -> bool:
    """May `caller` do the ECR operation `action` on the repository?"""
    return refusal_for(core, caller, row, action) is None


def _hidden(caller: Caller, row: RepositoryRow, refusal: Refusal) -> bool:
    """Whether to answer "does not exist": another account's repository whose policy does not let the
    caller in (a refusal by the caller's own identity policy tells it nothing about the repository)."""
    return caller.account_id != row.registry_id and refusal in (Refusal.NO_RESOURCE_ALLOW, Refusal.RESOURCE_DENY)


def find_repository(
    core: Core,
    caller: Caller,
    registry_id: str | None,
    name: str,
    action: str,
    *,
    registry_must_exist: bool = False,
    memory_only: bool = False,
) -> RepositoryRow:
    """The repository, if the caller may do `action` (an ECR operation name) on it.

    RepositoryNotFound when it does not exist or belongs to another account whose policy does not let the
    caller in; AccessDenied when the caller is otherwise refused.

    With registry_must_exist (the operations that take a registry alias), a registry that does not
    exist at all is RegistryNotFound, as ECR answers them.

    With memory_only, NotInMemory (core/reads.py) when the answer needs the store: everything else this
    decides on (accounts, pull-through rules, the caller's policies) is in memory already.
    """
    try:
        target = target_registry(core, caller, registry_id)
    except errors.RegistryNotFound:
        if registry_must_exist:
            raise
        raise errors.RepositoryNotFound(registry_id or caller.account_id, name) from None
    if target == caller.account_id:  # another account's caches are refused as its repositories are (not found)
        pullthrough.refuse_writes(core, target, name, action)
    row: RepositoryRow | None
    if action in REMEMBERED_LISTINGS:
        key = ("repository-of", target, name)
        row = remembered(core.reads, key, lambda: core.meta.get_repository(target, name), memory_only)
    elif memory_only:
        raise NotInMemory
    else:
        row = core.meta.get_repository(target, name)
    if row is None:
        raise errors.RepositoryNotFound(target, name)
    refusal = refusal_for(core, caller, row, action)
    if refusal is not None:
        if _hidden(caller, row, refusal):
            raise errors.RepositoryNotFound(target, name)
        raise denied(caller, action, repository_arn(row.registry_id, row.name), refusal)
    if target != caller.account_id:  # the caller's own account was checked before the lookup
        pullthrough.refuse_writes(core, target, name, action)
    return row


def is_repository_path(path: str) -> bool:
    """Whether `path` has the form <alias>/<repository> with valid names (it may still not exist)."""
    alias, _, name = path.partition("/")
    return limits.is_alias(alias) and limits.is_repository_name(name)


# Reads through /v2/ (manifests, blobs, tags, referrers) need no right: ECR Public repositories are public.
PULL = None


def remembered_repository(core: Core, path: str) -> RepositoryRow | None:
    """The repository `<alias>/<name>` names for a pull, if memory still holds it (core/reads.py): what
    repository_by_path(core, caller, path, PULL) answers, without asking the store; None otherwise."""
    memory = core.repositories if core.repositories is not None else core.reads
    row: RepositoryRow | None = memory.get(("repository", path))
    return row


def repository_by_path(
    core: Core, caller: Caller | None, path: str, action: str | None, *, memory_only: bool = False
) -> RepositoryRow:
    """The repository `<alias>/<name>` names, if the caller may do `action` (an ECR operation, or PULL).

    The caller is None when anonymous. Anonymous callers who need an account learn that first (so a
    client logs in before anything else); a caller without the right gets AccessDenied, naming the action.

    The repository comes from core.repositories while no repository changed since it was read (storage:
    repository_generation), so pushes that write meanwhile do not make every push and pull ask the store
    again; the caller's rights are decided afresh each time. What a write relies on stays with the write:
    the store refuses a row for a repository deleted meanwhile (foreign keys), as it did when the
    repository was read a moment before the write. Without that memory (PostgreSQL) a push reads the store,
    and a pull too (what it reads is kept in core.reads, for remembered_repository). With memory_only,
    NotInMemory when the answer needs the store (everything else is in memory).
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
    row: RepositoryRow | None
    if core.repositories is not None:
        key = ("repository", path)
        row = remembered(core.repositories, key, lambda: core.meta.get_repository(account.id, name), memory_only)
    elif memory_only:
        raise NotInMemory
    else:
        started = core.reads.start()
        row = core.meta.get_repository(account.id, name)
        if row is not None:
            core.reads.put(started, ("repository", path), row)
    if row is None:
        raise errors.RepositoryNotFound(account.id, name)
    if action is not PULL and caller is not None:
        refusal = refusal_for(core, caller, row, action)
        if refusal is not None:
            raise denied(caller, action, repository_arn(row.registry_id, row.name), refusal)
    return row
