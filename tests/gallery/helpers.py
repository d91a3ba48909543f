"""Images with a full runtime config, artifacts that refer to images, and waiting for batched counts."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from tests.backends import BUCKET, Backend, PostgresS3
from tests.images import Blob, digest_of, image_manifest, layer, push_blob
from tests.server import PierServer

T = TypeVar("T")
SECRET = "hunter2-s3cr3t-value-7f3a"  # the value of secret-looking variables: must never be shown
SOURCE_URL = "https://github.com/example/web"
EMPTY_CONFIG = Blob(b"{}", "application/vnd.oci.empty.v1+json")
COSIGN_SIGNATURE = "application/vnd.dev.cosign.artifact.sig.v1+json"
SPDX = "application/spdx+json"
NOTATION_SIGNATURE = "application/vnd.cncf.notary.signature"


def rich_config(architecture: str, layers: list[Blob]) -> Blob:
    """An image config with everything the image page shows, and secrets it must not."""
    body = {
        "architecture": architecture,
        "os": "linux",
        "created": "2026-01-02T03:04:05Z",
        "rootfs": {"type": "layers", "diff_ids": [digest_of(gzip.decompress(b.data)) for b in layers]},
        "config": {
            "Entrypoint": ["/usr/sbin/nginx"],
            "Cmd": ["-g", "daemon off;"],
            "Env": [
                "PATH=/usr/local/sbin:/usr/bin:/bin",
                "NGINX_VERSION=1.27.0",
                f"API_TOKEN={SECRET}",
                f"db_password={SECRET}",
                f"AWS_SECRET_ACCESS_KEY={SECRET}",
            ],
            "ExposedPorts": {"80/tcp": {}, "443/tcp": {}},
            "WorkingDir": "/srv/www",
            "User": "www-data",
            "Labels": {
                "org.opencontainers.image.source": SOURCE_URL,
                "org.opencontainers.image.revision": "0f1e2d3c",
                "org.opencontainers.image.licenses": "Apache-2.0",
                "org.opencontainers.image.version": "1.27.0",
                "org.opencontainers.image.created": "2026-01-02T03:04:05Z",
                "org.opencontainers.image.url": "javascript:alert(document.domain)",
                "com.example.private-key": SECRET,
            },
        },
        "history": [
            {"created": "2026-01-02T03:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:0abc in / "},
            {"created": "2026-01-02T03:01:00Z", "created_by": f"ENV API_TOKEN={SECRET}", "empty_layer": True},
            {"created": "2026-01-02T03:02:00Z", "created_by": f"RUN |1 SIGNING_KEY={SECRET} /bin/sh -c make install"},
        ],
    }
    return Blob(json.dumps(body).encode(), "application/vnd.oci.image.config.v1+json")


def push_rich_image(ecr: Any, repository: str, tag: str | None, architecture: str = "amd64") -> bytes:
    """A whole image with rich_config through the ECR API; its manifest."""
    layers = [layer({f"srv/www/{architecture}.html": f"<h1>{repository} {architecture}</h1>".encode()})]
    config_blob = rich_config(architecture, layers)
    for blob in [*layers, config_blob]:
        if not ecr.batch_check_layer_availability(repositoryName=repository, layerDigests=[blob.digest])["layers"]:
            push_blob(ecr, repository, blob.data)
    manifest = image_manifest(config_blob, layers)
    arguments: dict[str, Any] = {"repositoryName": repository, "imageManifest": manifest.decode()}
    if tag:
        arguments["imageTag"] = tag
    ecr.put_image(**arguments)
    return manifest


def push_artifact(ecr: Any, repository: str, subject: bytes, artifact_type: str, payload: bytes) -> bytes:
    """An artifact that refers to `subject` (an OCI 1.1 manifest with artifactType and subject), untagged."""
    blob = Blob(payload, artifact_type)
    for part in (blob, EMPTY_CONFIG):
        if not ecr.batch_check_layer_availability(repositoryName=repository, layerDigests=[part.digest])["layers"]:
            push_blob(ecr, repository, part.data)
    subject_descriptor = {
        "mediaType": json.loads(subject).get("mediaType", "application/vnd.oci.image.manifest.v1+json"),
        "digest": digest_of(subject),
        "size": len(subject),
    }
    manifest = image_manifest(EMPTY_CONFIG, [blob], subject=subject_descriptor, artifact_type=artifact_type)
    ecr.put_image(repositoryName=repository, imageManifest=manifest.decode())
    return manifest


def page_json(server: PierServer, path: str, **params: Any) -> Any:
    response = httpx.get(server.url + path, params=params, headers={"Accept": "application/json"}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["vary"] == "Accept"
    return response.json()


def wait_for(probe: Callable[[], T], done: Callable[[T], bool], timeout: float = 20.0) -> T:
    """Poll `probe` until `done` says yes (counts are written in batches); its last value either way."""
    deadline = time.monotonic() + timeout
    value = probe()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(0.2)
        value = probe()
    return value


def repository_downloads(server: PierServer, alias: str, name: str) -> int:
    return int(page_json(server, f"/{alias}/{name}")["downloads"])


def delete_blob(backend: Backend, server: PierServer, digest: str) -> None:
    """Remove a blob's bytes from the store behind pier's back (its row stays)."""
    algorithm, hexes = digest.split(":", 1)
    if isinstance(backend, PostgresS3):
        key = f"{backend._prefix(server)}blobs/{algorithm}/{hexes}"
        backend.s3.client().delete_object(Bucket=BUCKET, Key=key)
    else:
        (server.data_dir / "blobs" / algorithm / hexes[:2] / hexes).unlink()
