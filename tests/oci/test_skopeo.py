"""skopeo and umoci against a live pier: push, pull, multi-arch, v2s2, login, anonymous access."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import OWNER, aws_cli
from tests.images import (
    DOCKER_MANIFEST,
    OCI_INDEX,
    config,
    digest_of,
    image_manifest,
    index_manifest,
    layer,
    layout_blobs,
    push_image,
    write_layout,
)
from tests.oci.helpers import password
from tests.server import PierServer


def skopeo(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["skopeo", "--insecure-policy", *args], capture_output=True, text=True, timeout=120)
    if check and done.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(args)} failed:\n{done.stderr}")
    return done


def single_image_layout(path: Path, tag: str = "v1", architecture: str = "amd64") -> bytes:
    layers = [layer({"etc/hello": b"hello from a layer\n"}, random_bytes=200_000), layer({"etc/second": b"2\n"})]
    config_blob = config(architecture, layers=layers)
    manifest = image_manifest(config_blob, layers)
    write_layout(path, {tag: manifest}, [config_blob.data, *(b.data for b in layers)])
    return manifest


def test_push_and_pull_an_oci_layout_byte_identical(pier: PierServer, ecr: Any, repo: str, tmp_path: Path) -> None:
    manifest = single_image_layout(tmp_path / "src")
    target = f"docker://{pier.host}/{OWNER.alias}/{repo}:v1"
    skopeo("copy", "--dest-tls-verify=false", "--dest-creds", f"AWS:{password(ecr)}", f"oci:{tmp_path}/src:v1", target)
    skopeo("copy", "--src-tls-verify=false", target, f"oci:{tmp_path}/back:v1")  # anonymous pull
    assert layout_blobs(tmp_path / "back") == layout_blobs(tmp_path / "src")
    # umoci unpacks what came back: the files of the layers are there.
    subprocess.run(
        ["umoci", "unpack", "--rootless", "--image", f"{tmp_path}/back:v1", str(tmp_path / "bundle")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    assert (tmp_path / "bundle" / "rootfs" / "etc" / "hello").read_text() == "hello from a layer\n"
    # The API sees the same image.
    detail = ecr.describe_images(repositoryName=repo)["imageDetails"][0]
    assert detail["imageDigest"] == digest_of(manifest)
    assert detail["imageTags"] == ["v1"]
    assert detail["imageManifestMediaType"] == "application/vnd.oci.image.manifest.v1+json"
    document = json.loads(manifest)
    assert detail["imageSizeInBytes"] == document["config"]["size"] + sum(x["size"] for x in document["layers"])


def test_multi_arch_index_round_trip(pier: PierServer, ecr: Any, repo: str, tmp_path: Path) -> None:
    blobs: list[bytes] = []
    children = []
    for architecture in ("amd64", "arm64"):
        layer_blob = layer({"arch": architecture.encode()})
        config_blob = config(architecture, layers=[layer_blob])
        manifest = image_manifest(config_blob, [layer_blob])
        blobs += [layer_blob.data, config_blob.data]
        children.append((manifest, architecture, "linux"))
    index = index_manifest(children)
    write_layout(tmp_path / "src", {"multi": index}, blobs + [m for m, _, _ in children])
    target = f"docker://{pier.host}/{OWNER.alias}/{repo}:multi"
    skopeo(
        "copy",
        "--all",
        "--dest-tls-verify=false",
        "--dest-creds",
        f"AWS:{password(ecr)}",
        f"oci:{tmp_path}/src:multi",
        target,
    )
    skopeo("copy", "--all", "--src-tls-verify=false", target, f"oci:{tmp_path}/back:multi")
    assert layout_blobs(tmp_path / "back") == layout_blobs(tmp_path / "src")
    detail = ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": "multi"}])["imageDetails"][0]
    assert detail["imageDigest"] == digest_of(index)
    assert detail["imageManifestMediaType"] == OCI_INDEX
    inspected = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", target).stdout)
    assert [m["platform"]["architecture"] for m in inspected["manifests"]] == ["amd64", "arm64"]


def test_format_v2s2(pier: PierServer, ecr: Any, repo: str, tmp_path: Path) -> None:
    single_image_layout(tmp_path / "src")
    target = f"docker://{pier.host}/{OWNER.alias}/{repo}:docker"
    skopeo(
        "copy",
        "--format",
        "v2s2",
        "--dest-tls-verify=false",
        "--dest-creds",
        f"AWS:{password(ecr)}",
        f"oci:{tmp_path}/src:v1",
        target,
    )
    detail = ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": "docker"}])["imageDetails"][0]
    assert detail["imageManifestMediaType"] == DOCKER_MANIFEST
    assert detail["artifactMediaType"] == "application/vnd.docker.container.image.v1+json"
    raw = skopeo("inspect", "--raw", "--tls-verify=false", target).stdout
    assert json.loads(raw)["mediaType"] == DOCKER_MANIFEST
    assert digest_of(raw.encode()) == detail["imageDigest"]


def test_anonymous_push_fails_and_writes_nothing(pier: PierServer, ecr: Any, repo: str, tmp_path: Path) -> None:
    single_image_layout(tmp_path / "src")
    done = skopeo(
        "copy",
        "--dest-tls-verify=false",
        f"oci:{tmp_path}/src:v1",
        f"docker://{pier.host}/{OWNER.alias}/{repo}:anon",
        check=False,
    )
    assert done.returncode != 0
    assert "unauthorized" in done.stderr.lower() or "authentication required" in done.stderr.lower()
    assert ecr.describe_images(repositoryName=repo)["imageDetails"] == []


def test_other_account_cannot_push(pier: PierServer, ecr_other: Any, repo: str, tmp_path: Path) -> None:
    single_image_layout(tmp_path / "src")
    done = skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        f"AWS:{password(ecr_other)}",
        f"oci:{tmp_path}/src:v1",
        f"docker://{pier.host}/{OWNER.alias}/{repo}:foreign",
        check=False,
    )
    assert done.returncode != 0
    assert "denied" in done.stderr.lower()


def test_push_to_a_missing_repository_is_name_unknown(pier: PierServer, ecr: Any, tmp_path: Path) -> None:
    single_image_layout(tmp_path / "src")
    done = skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        f"AWS:{password(ecr)}",
        f"oci:{tmp_path}/src:v1",
        f"docker://{pier.host}/{OWNER.alias}/never/created:v1",
        check=False,
    )
    assert done.returncode != 0
    assert "name unknown" in done.stderr.lower() or "name_unknown" in done.stderr.lower()


def test_login_with_get_login_password_then_push(pier: PierServer, ecr: Any, repo: str, tmp_path: Path) -> None:
    login_password = aws_cli(pier, "get-login-password").stdout.strip()
    auth_file = tmp_path / "auth.json"
    done = subprocess.run(
        [
            "skopeo",
            "login",
            "--tls-verify=false",
            "--authfile",
            str(auth_file),
            "-u",
            "AWS",
            "--password-stdin",
            pier.host,
        ],
        input=login_password,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    single_image_layout(tmp_path / "src")
    skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--authfile",
        str(auth_file),
        f"oci:{tmp_path}/src:v1",
        f"docker://{pier.host}/{OWNER.alias}/{repo}:logged-in",
    )
    assert ecr.describe_image_tags(repositoryName=repo)["imageTagDetails"][0]["imageTag"] == "logged-in"
    bad = subprocess.run(
        [
            "skopeo",
            "login",
            "--tls-verify=false",
            "--authfile",
            str(tmp_path / "bad.json"),
            "-u",
            "AWS",
            "-p",
            "not-a-password",
            pier.host,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0


@pytest.mark.parametrize("docker", [False, True], ids=["oci", "docker"])
def test_image_put_through_the_api_is_pulled_by_skopeo(
    pier: PierServer, ecr: Any, repo: str, tmp_path: Path, docker: bool
) -> None:
    manifest, _ = push_image(ecr, repo, "api", docker=docker, layers=2)
    source = f"docker://{pier.host}/{OWNER.alias}/{repo}:api"
    raw = skopeo("inspect", "--raw", "--tls-verify=false", source).stdout
    assert raw.encode() == manifest  # byte for byte
    skopeo("copy", "--src-tls-verify=false", "--preserve-digests", source, f"oci:{tmp_path}/out:api")
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert index["manifests"][0]["digest"] == digest_of(manifest)
