"""Real images for tests: gzip'd tar layers, configs, and manifests of every kind pier accepts."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MIB = 1024 * 1024


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Blob:
    data: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return digest_of(self.data)

    @property
    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data)}


def layer(files: dict[str, bytes] | None = None, random_bytes: int = 0, docker: bool = False) -> Blob:
    """A gzip'd tar with the given files, plus a file of random bytes (incompressible) if asked."""
    files = dict(files or {"hello.txt": b"hello from pier\n"})
    if random_bytes:
        files["random.bin"] = os.urandom(random_bytes)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    media_type = (
        "application/vnd.docker.image.rootfs.diff.tar.gzip" if docker else "application/vnd.oci.image.layer.v1.tar+gzip"
    )
    return Blob(gzip.compress(buffer.getvalue(), mtime=0), media_type)


def config(
    architecture: str = "amd64", os_name: str = "linux", docker: bool = False, layers: list[Blob] | None = None
) -> Blob:
    """An image config; with `layers`, its rootfs lists their uncompressed digests, as runtimes require."""
    diff_ids = [digest_of(gzip.decompress(blob.data)) for blob in layers or []]
    body = {
        "architecture": architecture,
        "os": os_name,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "config": {"Cmd": ["/bin/sh"]},
    }
    media_type = (
        "application/vnd.docker.container.image.v1+json" if docker else "application/vnd.oci.image.config.v1+json"
    )
    return Blob(json.dumps(body).encode(), media_type)


def image_manifest(
    config_blob: Blob,
    layers: list[Blob],
    docker: bool = False,
    subject: dict[str, Any] | None = None,
    artifact_type: str | None = None,
    with_media_type: bool = True,
) -> bytes:
    document: dict[str, Any] = {"schemaVersion": 2}
    if with_media_type:
        document["mediaType"] = DOCKER_MANIFEST if docker else OCI_MANIFEST
    if artifact_type:
        document["artifactType"] = artifact_type
    document["config"] = config_blob.descriptor
    document["layers"] = [blob.descriptor for blob in layers]
    if subject:
        document["subject"] = subject
    return json.dumps(document, indent=2).encode()


def index_manifest(children: list[tuple[bytes, str, str]], docker: bool = False) -> bytes:
    """children: (manifest bytes, architecture, os)."""
    media_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_LIST if docker else OCI_INDEX,
            "manifests": [
                {
                    "mediaType": media_type,
                    "digest": digest_of(data),
                    "size": len(data),
                    "platform": {"architecture": arch, "os": os_name},
                }
                for data, arch, os_name in children
            ],
        }
    ).encode()


def push_blob(ecr: Any, repository: str, data: bytes, part_size: int = 5 * MIB) -> str:
    """Upload through InitiateLayerUpload / UploadLayerPart / CompleteLayerUpload."""
    upload_id = ecr.initiate_layer_upload(repositoryName=repository)["uploadId"]
    for first in range(0, len(data), part_size):
        part = data[first : first + part_size]
        ecr.upload_layer_part(
            repositoryName=repository,
            uploadId=upload_id,
            partFirstByte=first,
            partLastByte=first + len(part) - 1,
            layerPartBlob=part,
        )
    return str(
        ecr.complete_layer_upload(repositoryName=repository, uploadId=upload_id, layerDigests=[digest_of(data)])[
            "layerDigest"
        ]
    )


def push_image(
    ecr: Any,
    repository: str,
    tag: str | None = None,
    docker: bool = False,
    layers: int = 1,
    architecture: str = "amd64",
    random_bytes: int = 0,
) -> tuple[bytes, int]:
    """Push a whole single-platform image; (manifest bytes, image size)."""
    blobs = [
        layer({f"f{i}": f"{repository}:{tag}:{architecture}:{i}".encode()}, random_bytes, docker) for i in range(layers)
    ]
    config_blob = config(architecture, docker=docker, layers=blobs)
    for blob in [*blobs, config_blob]:
        existing = ecr.batch_check_layer_availability(repositoryName=repository, layerDigests=[blob.digest])
        if not existing["layers"]:
            push_blob(ecr, repository, blob.data)
    manifest = image_manifest(config_blob, blobs, docker)
    arguments: dict[str, Any] = {"repositoryName": repository, "imageManifest": manifest.decode()}
    if tag:
        arguments["imageTag"] = tag
    ecr.put_image(**arguments)
    return manifest, len(config_blob.data) + sum(len(b.data) for b in blobs)


def write_layout(path: Path, refs: dict[str, bytes], blobs: list[bytes], index_type: str = OCI_MANIFEST) -> None:
    """An OCI image layout: refs maps a tag to a manifest (or index) whose blobs are all in `blobs`."""
    (path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    for data in [*blobs, *refs.values()]:
        (path / "blobs" / "sha256" / digest_of(data)[7:]).write_bytes(data)
    entries = []
    for tag, data in refs.items():
        media_type = json.loads(data).get("mediaType", index_type)
        entries.append(
            {
                "mediaType": media_type,
                "digest": digest_of(data),
                "size": len(data),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        )
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": entries}))


def layout_blobs(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (path / "blobs" / "sha256").iterdir()}
