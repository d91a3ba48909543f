"""oras-py and python-dxf: artifacts, subjects and referrers, and the library clients' push/pull."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import dxf
import httpx
import oras.client
import oras.oci

from tests.conftest import OWNER
from tests.oci.helpers import bearer, password
from tests.server import PierServer


def oras_client(pier: PierServer, ecr: Any) -> oras.client.OrasClient:
    client = oras.client.OrasClient(hostname=pier.host, insecure=True)
    # What login() does, minus its call to a Docker daemon (whose socket it leaks when there is none).
    client.auth.set_basic_auth("AWS", password(ecr))
    return client


def test_oras_pushes_and_pulls_an_artifact(
    pier: PierServer, ecr: Any, repo: str, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("model.bin").write_bytes(os.urandom(300_000))
    client = oras_client(pier, ecr)
    target = f"{pier.host}/{OWNER.alias}/{repo}:model"
    assert client.push(target=target, files=["model.bin"]).status_code == 201
    out = tmp_path / "out"
    out.mkdir()
    pulled = client.pull(target=target, outdir=str(out))
    assert Path(pulled[0]).read_bytes() == Path("model.bin").read_bytes()
    detail = ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": "model"}])["imageDetails"][0]
    assert detail["imageManifestMediaType"] == "application/vnd.oci.image.manifest.v1+json"


def test_artifact_with_subject_is_listed_by_referrers(
    pier: PierServer, ecr: Any, repo: str, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("image.txt").write_text("the image")
    Path("signature.txt").write_text("a signature")
    client = oras_client(pier, ecr)
    base = f"{pier.host}/{OWNER.alias}/{repo}"
    pushed = client.push(target=f"{base}:image", files=["image.txt"])
    subject_digest = pushed.headers["Docker-Content-Digest"]
    manifest = httpx.get(f"{pier.url}/v2/{OWNER.alias}/{repo}/manifests/{subject_digest}").content
    subject = oras.oci.Subject("application/vnd.oci.image.manifest.v1+json", subject_digest, len(manifest))
    # Chunked, in 5-byte chunks, as oras-py does when asked.
    signed = client.push(target=f"{base}:sig", files=["signature.txt"], subject=subject, do_chunked=True, chunk_size=5)
    assert signed.headers["OCI-Subject"] == subject_digest
    listing = httpx.get(f"{pier.url}/v2/{OWNER.alias}/{repo}/referrers/{subject_digest}")
    assert listing.status_code == 200
    assert listing.headers["content-type"] == "application/vnd.oci.image.index.v1+json"
    referrers = listing.json()["manifests"]
    assert [r["digest"] for r in referrers] == [signed.headers["Docker-Content-Digest"]]
    assert referrers[0]["artifactType"]
    filtered = httpx.get(
        f"{pier.url}/v2/{OWNER.alias}/{repo}/referrers/{subject_digest}", params={"artifactType": "application/x-none"}
    )
    assert filtered.json()["manifests"] == []
    assert filtered.headers["OCI-Filters-Applied"] == "artifactType"


def test_python_dxf_push_pull_and_tags(pier: PierServer, ecr: Any, repo: str, tmp_path: Path) -> None:
    # python-dxf will not send a password over plain HTTP, but takes a bearer token as it is.
    client = dxf.DXF(pier.host, f"{OWNER.alias}/{repo}", insecure=True)
    client.token = bearer(pier, ecr)["Authorization"].removeprefix("Bearer ")
    data = os.urandom(2 * 1024 * 1024 + 17)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    digest = client.push_blob(str(path))
    assert digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert client.blob_size(digest) == len(data)
    assert b"".join(client.pull_blob(digest)) == data
    client.set_alias("dxf-tag", digest)
    assert "dxf-tag" in client.list_aliases()
    manifest = json.loads(client.get_manifest("dxf-tag"))
    assert manifest["layers"][0]["digest"] == digest
