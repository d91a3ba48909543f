"""Catalog data: what the gallery shows about a repository (and a registry's display name).

Put merges: members a request leaves out keep their value; an empty string or list clears one.
The logo is stored as a blob and served over HTTP at logoUrl.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from pier import errors
from pier.core import limits, search_index
from pier.core.access import find_repository, require_registry
from pier.core.context import Core
from pier.core.principals import Caller
from pier.storage.metadata import CatalogRow

# The badges ECR Public accepts (its console and API reject anything else).
ARCHITECTURES = ("ARM", "ARM 64", "x86", "x86-64")
OPERATING_SYSTEMS = ("Linux", "Windows")

# Logos are images a browser shows: PNG, JPEG, GIF or WebP, told apart by their first bytes.
# (No SVG: it can carry script.)
LOGO_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
    b"GIF87a": "image/gif",
    b"GIF89a": "image/gif",
}

EMPTY = CatalogRow()


@dataclass(frozen=True)
class CatalogInput:
    """What a request sent; None means the member was left out."""

    description: str | None = None
    architectures: tuple[str, ...] | None = None
    operating_systems: tuple[str, ...] | None = None
    logo: bytes | None = None
    about_text: str | None = None
    usage_text: str | None = None


@dataclass(frozen=True)
class CatalogData:
    description: str | None
    architectures: tuple[str, ...]
    operating_systems: tuple[str, ...]
    logo_url: str | None
    about_text: str | None
    usage_text: str | None
    marketplace_certified: bool = False


def logo_media_type(data: bytes) -> str | None:
    for signature, media_type in LOGO_SIGNATURES.items():
        if data.startswith(signature):
            return media_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def prepare(core: Core, given: CatalogInput | None, current: CatalogRow) -> CatalogRow:
    """Check the input, store a new logo, and return the catalog row to save."""
    if given is None:
        return current
    _check_badges("architectures", given.architectures, ARCHITECTURES)
    _check_badges("operatingSystems", given.operating_systems, OPERATING_SYSTEMS)
    logo_digest = current.logo_digest
    if given.logo is not None:
        logo_digest = _store_logo(core, given.logo) if given.logo else None
    return CatalogRow(
        description=_pick(given.description, current.description),
        about_text=_pick(given.about_text, current.about_text),
        usage_text=_pick(given.usage_text, current.usage_text),
        architectures=current.architectures if given.architectures is None else tuple(given.architectures),
        operating_systems=(
            current.operating_systems if given.operating_systems is None else tuple(given.operating_systems)
        ),
        logo_digest=logo_digest,
        is_set=True,
    )


def view(core: Core, row: CatalogRow) -> CatalogData:
    logo_url = f"{core.public_url}/logos/{row.logo_digest}" if row.logo_digest else None
    return CatalogData(
        row.description, row.architectures, row.operating_systems, logo_url, row.about_text, row.usage_text
    )


def put_repository_catalog_data(
    core: Core, caller: Caller, registry_id: str | None, name: str, given: CatalogInput
) -> CatalogData:
    row = find_repository(core, caller, registry_id, name, "PutRepositoryCatalogData")
    updated = prepare(core, given, row.catalog)
    core.meta.set_catalog(row.id, updated)
    search_index.index(core, replace(row, catalog=updated))
    return view(core, updated)


def get_repository_catalog_data(core: Core, caller: Caller, registry_id: str | None, name: str) -> CatalogData:
    return view(core, find_repository(core, caller, registry_id, name, "GetRepositoryCatalogData").catalog)


def get_registry_display_name(core: Core, caller: Caller) -> str:
    require_registry(core, caller, "GetRegistryCatalogData")
    return core.meta.get_registry_display_name(caller.account_id) or ""


def put_registry_display_name(core: Core, caller: Caller, display_name: str | None) -> str:
    require_registry(core, caller, "PutRegistryCatalogData")
    if display_name is not None:
        core.meta.set_registry_display_name(caller.account_id, display_name)
    return core.meta.get_registry_display_name(caller.account_id) or ""


def _pick(given: str | None, current: str | None) -> str | None:
    if given is None:
        return current
    return given or None


def _check_badges(member: str, values: tuple[str, ...] | None, allowed: tuple[str, ...]) -> None:
    for value in values or ():
        if value not in allowed:
            raise errors.InvalidParameter(
                f"Invalid parameter at '{member}' failed to satisfy constraint: "
                f"'{value}' is not one of {', '.join(repr(a) for a in allowed)}"
            )


def _store_logo(core: Core, data: bytes) -> str:
    if len(data) > limits.LOGO_MAX_BYTES:
        raise errors.InvalidParameter(f"The logo image must be at most {limits.LOGO_MAX_BYTES} bytes")
    if logo_media_type(data) is None:
        raise errors.InvalidParameter(
            "Invalid parameter at 'logoImageBlob' failed to satisfy constraint: "
            "'the logo must be a PNG, JPEG, GIF or WebP image'"
        )
    writer = core.blobs.writer()
    try:
        writer.write(data)
        digest = writer.digest()
        # Published once its row is written, in that transaction: GC never takes the bytes in between.
        core.meta.add_blob(digest, len(data), core.clock(), publish=writer.commit)
    except BaseException:
        writer.cancel()
        raise
    return digest
