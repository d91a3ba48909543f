"""Put/GetRepositoryCatalogData and Put/GetRegistryCatalogData."""

from __future__ import annotations

from typing import Any

from pier.api.operations import Params, operation
from pier.core import catalog
from pier.core.context import Core
from pier.core.principals import Caller


def catalog_input(given: dict[str, Any] | None) -> catalog.CatalogInput | None:
    if given is None:
        return None
    lists = {key: tuple(given[key]) if key in given else None for key in ("architectures", "operatingSystems")}
    return catalog.CatalogInput(
        description=given.get("description"),
        architectures=lists["architectures"],
        operating_systems=lists["operatingSystems"],
        logo=given.get("logoImageBlob"),
        about_text=given.get("aboutText"),
        usage_text=given.get("usageText"),
    )


def catalog_output(data: catalog.CatalogData) -> dict[str, Any]:
    return {
        "description": data.description,
        "architectures": list(data.architectures),
        "operatingSystems": list(data.operating_systems),
        "logoUrl": data.logo_url,
        "aboutText": data.about_text,
        "usageText": data.usage_text,
        "marketplaceCertified": data.marketplace_certified,
    }


@operation("PutRepositoryCatalogData")
def put_repository_catalog_data(core: Core, caller: Caller, params: Params) -> dict[str, Any]:
    given = catalog_input(params["catalogData"]) or catalog.CatalogInput()
    data = catalog.put_repository_catalog_data(core, caller, params.get("registryId"), params["repositoryName"], given)
    return {"catalogData": catalog_output(data)}


@operation("GetRepositoryCatalogData")
def get_repository_catalog_data(core: Core, caller: Caller, params: Params) -> dict[str, Any]:
    data = catalog.get_repository_catalog_data(core, caller, params.get("registryId"), params["repositoryName"])
    return {"catalogData": catalog_output(data)}


@operation("PutRegistryCatalogData")
def put_registry_catalog_data(core: Core, caller: Caller, params: Params) -> dict[str, Any]:
    name = catalog.put_registry_display_name(core, caller, params.get("displayName"))
    return {"registryCatalogData": {"displayName": name}}


@operation("GetRegistryCatalogData")
def get_registry_catalog_data(core: Core, caller: Caller, params: Params) -> dict[str, Any]:
    return {"registryCatalogData": {"displayName": catalog.get_registry_display_name(core, caller)}}
