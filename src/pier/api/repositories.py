"""CreateRepository, DescribeRepositories, DeleteRepository."""

from __future__ import annotations

from typing import Any

from pier.api.catalog import catalog_input, catalog_output
from pier.api.operations import Params, operation
from pier.core import repositories
from pier.core.context import Core
from pier.core.principals import Caller


def repository_output(repository: repositories.Repository) -> dict[str, Any]:
    return {
        "repositoryArn": repository.arn,
        "registryId": repository.registry_id,
        "repositoryName": repository.name,
        "repositoryUri": repository.uri,
        "createdAt": repository.created_at,
    }


@operation("CreateRepository")
def create_repository(core: Core, caller: Caller, params: Params) -> dict[str, Any]:
    repository, catalog = repositories.create_repository(
        core,
        caller,
        params["repositoryName"],
        catalog_input(params.get("catalogData")),
        [(tag.get("Key", ""), tag.get("Value", "")) for tag in params.get("tags", [])],
    )
    return {"repository": repository_output(repository), "catalogData": catalog_output(catalog)}


@operation("DescribeRepositories")
def describe_repositories(core: Core, caller: Caller, params: Params) -> dict[str, Any]:
    page = repositories.describe_repositories(
        core,
        caller,
        params.get("registryId"),
        params.get("repositoryNames"),
        params.get("maxResults"),
        params.get("nextToken"),
    )
    return {"repositories": [repository_output(r) for r in page.items], "nextToken": page.next_token}


@operation("DeleteRepository")
def delete_repository(core: Core, caller: Caller, params: Params) -> dict[str, Any]:
    repository = repositories.delete_repository(
        core, caller, params.get("registryId"), params["repositoryName"], params.get("force", False)
    )
    return {"repository": repository_output(repository)}
