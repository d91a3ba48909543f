"""DescribeRegistries and GetAuthorizationToken."""

from __future__ import annotations

from typing import Any

from pier.api.operations import Params, from_memory, operation
from pier.core import pagination, registries
from pier.core.context import Core
from pier.core.principals import Caller


@operation("DescribeRegistries")
def describe_registries(core: Core, caller: Caller, params: Params) -> dict[str, Any]:
    pagination.page_size(params.get("maxResults"))
    # One registry per account, so there is never a second page; a token is checked all the same.
    pagination.read_token(core.signer, "registries", params.get("nextToken"))
    return {
        "registries": [
            {
                "registryId": r.registry_id,
                "registryArn": r.arn,
                "registryUri": r.uri,
                "verified": r.verified,
                "aliases": [
                    {"name": r.alias, "status": "ACTIVE", "primaryRegistryAlias": True, "defaultRegistryAlias": True}
                ],
            }
            for r in registries.describe_registries(core, caller)
        ]
    }


@operation("GetAuthorizationToken")
def get_authorization_token(core: Core, caller: Caller, params: Params) -> dict[str, Any]:
    return _authorization_data(*registries.get_authorization_token(core, caller))


@from_memory("GetAuthorizationToken")
def get_authorization_token_from_memory(core: Core, caller: Caller, params: Params) -> dict[str, Any]:
    return _authorization_data(*registries.get_authorization_token(core, caller, memory_only=True))


def _authorization_data(token: str, expires_at: float) -> dict[str, Any]:
    return {"authorizationData": {"authorizationToken": token, "expiresAt": expires_at}}
