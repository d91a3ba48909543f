"""Repository and registry catalog data, and the logo served at logoUrl."""

from __future__ import annotations

import struct
import zlib
from typing import Any

import httpx
import pytest


def tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0\xff\0\0"))
        + chunk(b"IEND", b"")
    )


def test_put_then_get_merges_and_serves_the_logo(ecr: Any, repo: str) -> None:
    logo = tiny_png()
    put = ecr.put_repository_catalog_data(
        repositoryName=repo,
        catalogData={
            "description": "first",
            "architectures": ["x86-64", "ARM 64"],
            "operatingSystems": ["Linux"],
            "logoImageBlob": logo,
            "aboutText": "## About\n| a | b |",
            "usageText": "```\nrun\n```",
        },
    )["catalogData"]
    assert put["description"] == "first"
    response = httpx.get(put["logoUrl"])
    assert response.status_code == 200
    assert response.content == logo
    assert response.headers["content-type"] == "image/png"

    # A later put changes only what it names; an empty string clears.
    ecr.put_repository_catalog_data(repositoryName=repo, catalogData={"description": "second", "usageText": ""})
    got = ecr.get_repository_catalog_data(repositoryName=repo)["catalogData"]
    assert got["description"] == "second"
    assert got["architectures"] == ["x86-64", "ARM 64"]
    assert got["logoUrl"] == put["logoUrl"]
    assert "usageText" not in got
    assert got["aboutText"] == "## About\n| a | b |"


def test_a_new_repository_has_empty_catalog_data(ecr: Any, repo: str) -> None:
    got = ecr.get_repository_catalog_data(repositoryName=repo)["catalogData"]
    assert got == {"architectures": [], "operatingSystems": [], "marketplaceCertified": False}


@pytest.mark.parametrize(
    "data",
    [
        {"architectures": ["sparc"]},
        {"operatingSystems": ["Plan9"]},
        {"logoImageBlob": b"<svg onload=alert(1)>"},
        {"description": "x" * 1025},
        {"architectures": ["ARM"] * 51},
    ],
    ids=["unknown-architecture", "unknown-os", "not-an-image", "description-too-long", "too-many-badges"],
)
def test_bad_catalog_data_is_rejected(ecr: Any, repo: str, data: dict[str, Any]) -> None:
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.put_repository_catalog_data(repositoryName=repo, catalogData=data)
    assert "description" not in ecr.get_repository_catalog_data(repositoryName=repo)["catalogData"]


def test_catalog_of_a_missing_repository(ecr: Any) -> None:
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.get_repository_catalog_data(repositoryName="test/nowhere")
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.put_repository_catalog_data(repositoryName="test/nowhere", catalogData={"description": "x"})


def test_unknown_logo_is_404(pier: Any) -> None:
    assert httpx.get(f"{pier.url}/logos/sha256:{'0' * 64}").status_code == 404
    assert httpx.get(f"{pier.url}/logos/..%2F..%2Fpier.db").status_code == 404


def test_registry_catalog_data(ecr_other: Any) -> None:
    assert ecr_other.get_registry_catalog_data()["registryCatalogData"] == {"displayName": ""}
    put = ecr_other.put_registry_catalog_data(displayName="Other Org")
    assert put["registryCatalogData"] == {"displayName": "Other Org"}
    assert ecr_other.get_registry_catalog_data()["registryCatalogData"] == {"displayName": "Other Org"}
    with pytest.raises(ecr_other.exceptions.InvalidParameterException):
        ecr_other.put_registry_catalog_data(displayName="x" * 101)
