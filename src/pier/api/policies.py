"""Set/Get/DeleteRepositoryPolicy."""

from __future__ import annotations

from typing import Any

from pier.api.operations import Params, operation
from pier.core import repositories
from pier.core.context import Core
from pier.core.principals import Caller


def _output(registry_id: str, name: str, policy_text: str) -> dict[str, Any]:
    return {"registryId": registry_id, "repositoryName": name, "policyText": policy_text}


@operation("SetRepositoryPolicy")
def set_repository_policy(core: Core, caller: Caller, params: Params) -> dict[str, Any]:
    name = params["repositoryName"]
    registry_id, text = repositories.set_repository_policy(
        core, caller, params.get("registryId"), name, params["policyText"], params.get("force", False)
    )
    return _output(registry_id, name, text)


@operation("GetRepositoryPolicy")
def get_repository_policy(core: Core, caller: Caller, params: Params) -> dict[str, Any]:
    name = params["repositoryName"]
    registry_id, text = repositories.get_repository_policy(core, caller, params.get("registryId"), name)
    return _output(registry_id, name, text)


@operation("DeleteRepositoryPolicy")
def delete_repository_policy(core: Core, caller: Caller, params: Params) -> dict[str, Any]:
    name = params["repositoryName"]
    registry_id, text = repositories.delete_repository_policy(core, caller, params.get("registryId"), name)
    return _output(registry_id, name, text)
