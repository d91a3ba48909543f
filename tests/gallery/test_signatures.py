"""Signatures, SBOMs and attestations from the referrers data, and the "signed" badges they earn."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import oras.oci
import pytest

from tests.backends import Backend
from tests.conftest import OWNER, _write_config, client, owner_env
from tests.gallery.helpers import COSIGN_SIGNATURE, NOTATION_SIGNATURE, SPDX, page_json, push_artifact, push_rich_image
from tests.images import OCI_MANIFEST, digest_of, index_manifest, push_image
from tests.oci.test_oras import oras_client
from tests.server import PierServer


def card(server: PierServer, name: str) -> dict[str, Any]:
    found = [c for c in page_json(server, f"/{OWNER.alias}")["repositories"] if c["name"] == name]
    assert len(found) == 1
    return found[0]


def tag_row(server: PierServer, name: str, tag: str) -> dict[str, Any]:
    return next(t for t in page_json(server, f"/{OWNER.alias}/{name}")["tags"] if t["tag"] == tag)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, backend: Backend) -> Iterator[PierServer]:
    """One server for this module's tests (each uses repositories of its own)."""
    root = tmp_path_factory.mktemp("signatures")
    started = PierServer(root / "data", _write_config(root / "pier.toml", backend.config()), owner_env()).start()
    yield started
    started.stop()


def test_a_cosign_signature_and_an_spdx_sbom_pushed_with_oras(
    page: Any, server: PierServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ecr = client(server)
    ecr.create_repository(repositoryName="app")
    ecr.create_repository(repositoryName="sbom-only")
    manifest, _ = push_image(ecr, "app", "v1")
    unsigned, _ = push_image(ecr, "sbom-only", "v1")
    monkeypatch.chdir(tmp_path)
    Path("signature.json").write_text('{"critical": {"type": "cosign container image signature"}}')
    Path("sbom.spdx.json").write_text('{"spdxVersion": "SPDX-2.3", "name": "app"}')
    Path("config.json").write_text("{}")
    registry = oras_client(server, ecr)
    for name, subject_bytes in (("app", manifest), ("sbom-only", unsigned)):
        digest = digest_of(subject_bytes)
        subject = oras.oci.Subject(OCI_MANIFEST, digest, len(subject_bytes))
        base = f"{server.host}/{OWNER.alias}/{name}:sha256-{digest.removeprefix('sha256:')}"
        if name == "app":  # cosign's tag scheme, and its artifact type (what `cosign sign` sets with OCI 1.1)
            signed = registry.push(
                target=f"{base}.sig",
                files=[f"signature.json:{COSIGN_SIGNATURE}"],
                manifest_config=f"config.json:{COSIGN_SIGNATURE}",
                subject=subject,
            )
            assert signed.status_code == 201
        pushed = registry.push(
            target=f"{base}.sbom",
            files=[f"sbom.spdx.json:{SPDX}"],
            manifest_config=f"config.json:{SPDX}",
            subject=subject,
        )
        assert pushed.headers["OCI-Subject"] == digest
    registry.session.close()  # no idle keep-alive connection left to hold the server's stop

    page.goto(f"{server.url}/{OWNER.alias}/app:v1")
    kinds = {a.get_attribute("data-kind"): a.inner_text() for a in page.locator(".artifact").all()}
    assert set(kinds) == {"signature", "sbom"}
    assert "cosign" in kinds["signature"] and "SPDX JSON" in kinds["sbom"] and "SBOM" in kinds["sbom"]
    assert page.locator("h1 + .badges .badge.signed").is_visible()
    page.goto(f"{server.url}/{OWNER.alias}/app")
    assert page.locator("table.tags tr[data-tag=v1] .badge.signed").is_visible()
    artifact_rows = page.locator("table.tags tr", has=page.locator("th a", has_text="sha256-"))
    assert sorted(row.locator("td").first.inner_text() for row in artifact_rows.all()) == ["SBOM", "signature"]
    assert artifact_rows.count() == 2 and artifact_rows.locator(".badge.signed").count() == 0
    assert page.locator(".repo-head .badge.signed").is_visible()
    # The card says signed: the latest tagged *image* is v1 (the artifacts' own tags do not count as images).
    assert card(server, "app")["signed"] is True
    # An SBOM alone does not make an image signed.
    assert tag_row(server, "sbom-only", "v1")["signed"] is False
    assert card(server, "sbom-only")["signed"] is False
    sbom_only = page_json(server, f"/{OWNER.alias}/sbom-only:v1")
    assert [(a["kind"], a["format"]) for a in sbom_only["platforms"][0]["artifacts"]] == [("sbom", "SPDX JSON")]
    assert sbom_only["signed"] is False


def test_signed_through_a_platform_by_notation_and_what_others_are(server: PierServer) -> None:
    ecr = client(server)
    ecr.create_repository(repositoryName="multi")
    amd = push_rich_image(ecr, "multi", None, architecture="amd64")
    arm = push_rich_image(ecr, "multi", None, architecture="arm64")
    index = index_manifest([(amd, "amd64", "linux"), (arm, "arm64", "linux")])
    ecr.put_image(repositoryName="multi", imageManifest=index.decode(), imageTag="v2")
    assert tag_row(server, "multi", "v2")["signed"] is False and card(server, "multi")["signed"] is False
    push_artifact(ecr, "multi", index, "application/vnd.in-toto+json", b'{"_type": "https://in-toto.io/Statement/v1"}')
    push_artifact(ecr, "multi", index, "application/vnd.example.report+json", b'{"ok": true}')
    assert tag_row(server, "multi", "v2")["signed"] is False  # attestations and other artifacts are not signatures
    push_artifact(ecr, "multi", arm, NOTATION_SIGNATURE, hashlib.sha256(arm).digest())
    assert tag_row(server, "multi", "v2")["signed"] is True  # one of its platforms is signed
    assert card(server, "multi")["signed"] is True
    image = page_json(server, f"/{OWNER.alias}/multi:v2")
    assert [(a["kind"], a["label"]) for a in image["artifacts"]] == [
        ("attestation", "attestation"),
        ("other", "application/vnd.example.report+json"),
    ]
    arm_section = image["platforms"][1]
    assert arm_section["platform"] == "linux/arm64" and arm_section["signed"] is True
    assert [(a["label"], a["format"]) for a in arm_section["artifacts"]] == [("signature", "Notation")]
    assert image["platforms"][0]["artifacts"] == [] and image["signed"] is True
    # A newer tagged image that is not signed takes the card's badge away.
    push_image(ecr, "multi", "v3")
    assert card(server, "multi")["signed"] is False
