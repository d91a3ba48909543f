"""Repositories: create, describe, delete, and the one place that finds a repository for a caller."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pier import errors
from pier.core import catalog, pagination, policies, resource_tags, search_index
from pier.core.access import allowed, find_repository, require, target_registry
from pier.core.accounts import repository_arn
from pier.core.context import Core
from pier.core.principals import Caller
from pier.storage.metadata import Conflict, RepositoryRow


@dataclass(frozen=True)
class Repository:
    registry_id: str
    name: str
    arn: str
    uri: str
    created_at: float


def view(core: Core, row: RepositoryRow) -> Repository:
    account = core.accounts.by_id(row.registry_id)
    alias = account.alias if account else row.registry_id
    return Repository(
        row.registry_id,
        row.name,
        repository_arn(row.registry_id, row.name),
        f"{core.public_host}/{alias}/{row.name}",
        row.created_at,
    )


def create_repository(
    core: Core, caller: Caller, name: str, catalog_input: catalog.CatalogInput | None, tags: Sequence[tuple[str, str]]
) -> tuple[Repository, catalog.CatalogData]:
    arn = repository_arn(caller.account_id, name)
    require(core, caller, "CreateRepository", arn)
    if tags:  # tagging on creation needs the right to tag, as in ECR
        require(core, caller, "TagResource", arn)
    checked_tags = resource_tags.check(tags)
    stored_catalog = catalog.prepare(core, catalog_input, catalog.EMPTY)
    try:
        row = core.meta.insert_repository(
            caller.account_id, name, core.clock(), stored_catalog, checked_tags, core.max_repositories
        )
    except Conflict:
        raise errors.RepositoryAlreadyExists(caller.account_id, name) from None
    search_index.index(core, row)
    return view(core, row), catalog.view(core, stored_catalog)


def describe_repositories(
    core: Core,
    caller: Caller,
    registry_id: str | None,
    names: Sequence[str] | None,
    max_results: int | None,
    next_token: str | None,
) -> pagination.Page[Repository]:
    if names is not None:
        if max_results is not None or next_token is not None:
            raise errors.InvalidParameter("maxResults and nextToken cannot be used when you specify repositoryNames")
        return pagination.Page(
            [
                view(core, find_repository(core, caller, registry_id, n, "DescribeRepositories"))
                for n in dict.fromkeys(names)
            ],
            None,
        )
    target = target_registry(core, caller, registry_id)
    listing = f"repositories:{target}"
    after = pagination.read_token(core.signer, listing, next_token)
    size = pagination.page_size(max_results)
    rows = core.meta.list_repositories(target, after, size + 1)
    page = pagination.make_page(core.signer, listing, rows, size, key=lambda row: row.name)
    # In another account's registry, only what its policies let the caller describe (a page may be short).
    visible = [row for row in page.items if allowed(core, caller, row, "DescribeRepositories")]
    return pagination.Page([view(core, row) for row in visible], page.next_token)


def delete_repository(core: Core, caller: Caller, registry_id: str | None, name: str, force: bool) -> Repository:
    row = find_repository(core, caller, registry_id, name, "DeleteRepository")
    if not force and core.meta.has_images(row.id):
        raise errors.RepositoryNotEmpty(row.registry_id, name)
    for upload_id in core.meta.upload_ids(row.id):
        core.blobs.cancel_upload(upload_id)
    core.meta.delete_repository(row.id)  # its images, tags and uploads go with it
    return view(core, row)


def set_repository_policy(
    core: Core, caller: Caller, registry_id: str | None, name: str, policy_text: str, force: bool
) -> tuple[str, str]:
    row = find_repository(core, caller, registry_id, name, "SetRepositoryPolicy")
    policies.check(policy_text)
    locked = policies.locks_out(
        policy_text, caller.who, repository_arn(row.registry_id, row.name), caller.facts(core.clock())
    )
    if locked and not force:
        raise errors.InvalidParameter(
            f"The policy would deny you {', '.join(locked)} on this repository, so you could not change it "
            "again. Set it with force if that is what you want."
        )
    core.meta.set_policy(row.id, policy_text)
    return row.registry_id, policy_text


def get_repository_policy(core: Core, caller: Caller, registry_id: str | None, name: str) -> tuple[str, str]:
    row = find_repository(core, caller, registry_id, name, "GetRepositoryPolicy")
    if row.policy_text is None:
        raise errors.RepositoryPolicyNotFound(row.registry_id, name)
    return row.registry_id, row.policy_text


def delete_repository_policy(core: Core, caller: Caller, registry_id: str | None, name: str) -> tuple[str, str]:
    row = find_repository(core, caller, registry_id, name, "DeleteRepositoryPolicy")
    if row.policy_text is None:
        raise errors.RepositoryPolicyNotFound(row.registry_id, name)
    core.meta.set_policy(row.id, None)
    return row.registry_id, row.policy_text
