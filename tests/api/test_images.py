"""PutImage, DescribeImages, DescribeImageTags, BatchDeleteImage, and DeleteRepository with images."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.images import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    config,
    digest_of,
    image_manifest,
    index_manifest,
    layer,
    push_blob,
    push_image,
)


def describe(ecr: Any, repo: str, **ids: str) -> dict[str, Any]:
    return dict(ecr.describe_images(repositoryName=repo, imageIds=[ids])["imageDetails"][0])


@pytest.mark.parametrize("docker", [False, True], ids=["oci", "docker-v2s2"])
def test_push_and_describe_an_image(ecr: Any, repo: str, docker: bool) -> None:
    manifest, size = push_image(ecr, repo, "v1", docker=docker, layers=2)
    detail = describe(ecr, repo, imageTag="v1")
    assert detail["imageDigest"] == digest_of(manifest)
    assert detail["imageTags"] == ["v1"]
    assert detail["imageSizeInBytes"] == size
    assert detail["imageManifestMediaType"] == (DOCKER_MANIFEST if docker else OCI_MANIFEST)
    expected_config = (
        "application/vnd.docker.container.image.v1+json" if docker else "application/vnd.oci.image.config.v1+json"
    )
    assert detail["artifactMediaType"] == expected_config
    layers = json.loads(manifest)["layers"]
    checked = ecr.batch_check_layer_availability(repositoryName=repo, layerDigests=[layers[0]["digest"]])
    assert checked["layers"][0]["mediaType"] == layers[0]["mediaType"]  # learnt from the manifest


@pytest.mark.parametrize("docker", [False, True], ids=["oci-index", "docker-manifest-list"])
def test_multi_arch_index(ecr: Any, repo: str, docker: bool) -> None:
    amd, amd_size = push_image(ecr, repo, None, docker=docker, architecture="amd64")
    arm, arm_size = push_image(ecr, repo, None, docker=docker, architecture="arm64", random_bytes=4096)
    index = index_manifest([(amd, "amd64", "linux"), (arm, "arm64", "linux")], docker=docker)
    ecr.put_image(repositoryName=repo, imageManifest=index.decode(), imageTag="multi")
    detail = describe(ecr, repo, imageTag="multi")
    assert detail["imageManifestMediaType"] == (DOCKER_LIST if docker else OCI_INDEX)
    assert detail["imageSizeInBytes"] == max(amd_size, arm_size)
    # An image an index lists cannot be deleted from under it.
    answer = ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageDigest": digest_of(amd)}])
    assert answer["failures"][0]["failureCode"] == "ImageReferencedByManifestList"
    # Delete the index first, then its images go too.
    ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": "multi"}])
    answer = ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageDigest": digest_of(amd)}])
    assert answer["imageIds"] == [{"imageDigest": digest_of(amd)}]


def test_index_needs_its_manifests(ecr: Any, repo: str) -> None:
    amd, _ = push_image(ecr, repo, None)
    ghost = image_manifest(config("riscv64"), [layer()])
    index = index_manifest([(amd, "amd64", "linux"), (ghost, "riscv64", "linux")])
    with pytest.raises(ecr.exceptions.ReferencedImagesNotFoundException) as info:
        ecr.put_image(repositoryName=repo, imageManifest=index.decode(), imageTag="broken")
    assert digest_of(ghost) in str(info.value)


def test_artifact_with_custom_config_type(ecr: Any, repo: str) -> None:
    config_blob = config()
    config_blob = type(config_blob)(b'{"kind": "helm"}', "application/vnd.cncf.helm.config.v1+json")
    chart = type(config_blob)(b"chart-bytes", "application/vnd.cncf.helm.chart.content.v1.tar+gzip")
    for blob in (config_blob, chart):
        push_blob(ecr, repo, blob.data)
    manifest = image_manifest(config_blob, [chart], artifact_type="application/vnd.cncf.helm.config.v1+json")
    ecr.put_image(repositoryName=repo, imageManifest=manifest.decode(), imageTag="chart")
    assert describe(ecr, repo, imageTag="chart")["artifactMediaType"] == "application/vnd.cncf.helm.config.v1+json"


def test_missing_layers(ecr: Any, repo: str) -> None:
    config_blob, layer_blob = config(), layer({"x": b"never uploaded"})
    push_blob(ecr, repo, config_blob.data)
    manifest = image_manifest(config_blob, [layer_blob])
    with pytest.raises(ecr.exceptions.LayersNotFoundException) as info:
        ecr.put_image(repositoryName=repo, imageManifest=manifest.decode())
    assert layer_blob.digest in str(info.value)


def test_descriptor_size_must_match_the_blob(ecr: Any, repo: str) -> None:
    config_blob = config()
    push_blob(ecr, repo, config_blob.data)
    manifest = json.loads(image_manifest(config_blob, []))
    manifest["config"]["size"] += 1
    with pytest.raises(ecr.exceptions.InvalidParameterException) as info:
        ecr.put_image(repositoryName=repo, imageManifest=json.dumps(manifest))
    assert "bytes" in str(info.value)


def test_media_type_from_the_parameter_or_an_error(ecr: Any, repo: str) -> None:
    config_blob = config()
    push_blob(ecr, repo, config_blob.data)
    bare = image_manifest(config_blob, [], with_media_type=False).decode()
    with pytest.raises(ecr.exceptions.InvalidParameterException) as info:
        ecr.put_image(repositoryName=repo, imageManifest=bare)
    assert "imageManifestMediaType" in str(info.value)
    put = ecr.put_image(repositoryName=repo, imageManifest=bare, imageManifestMediaType=OCI_MANIFEST)
    assert put["image"]["imageManifestMediaType"] == OCI_MANIFEST
    with pytest.raises(ecr.exceptions.InvalidParameterException):  # declared and inner types disagree
        ecr.put_image(
            repositoryName=repo,
            imageManifest=image_manifest(config_blob, []).decode(),
            imageManifestMediaType=DOCKER_MANIFEST,
        )


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"schemaVersion": 1, "name": "x"}',
        '{"schemaVersion": 2, "mediaType": "application/x-unknown"}',
        '{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "layers": []}',
        '{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": '
        '{"mediaType": "a", "digest": "sha256:short", "size": 1}, "layers": []}',
        '{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [{}]}',
    ],
    ids=["not-json", "array", "schema-1", "unknown-type", "no-config", "bad-digest", "bad-index-entry"],
)
def test_invalid_manifests(ecr: Any, repo: str, text: str) -> None:
    with pytest.raises(ecr.exceptions.InvalidParameterException) as info:
        ecr.put_image(repositoryName=repo, imageManifest=text)
    assert "imageManifest" in str(info.value) or "mediaType" in str(info.value)
    assert ecr.describe_images(repositoryName=repo)["imageDetails"] == []


def test_digest_parameter_must_match(ecr: Any, repo: str) -> None:
    config_blob = config()
    push_blob(ecr, repo, config_blob.data)
    manifest = image_manifest(config_blob, []).decode()
    with pytest.raises(ecr.exceptions.ImageDigestDoesNotMatchException):
        ecr.put_image(repositoryName=repo, imageManifest=manifest, imageDigest=digest_of(b"other"))
    put = ecr.put_image(repositoryName=repo, imageManifest=manifest, imageDigest=digest_of(manifest.encode()))
    assert put["image"]["imageId"]["imageDigest"] == digest_of(manifest.encode())
    assert put["image"]["imageManifest"] == manifest  # byte for byte


def test_same_image_again_and_tag_moves(ecr: Any, repo: str) -> None:
    first, _ = push_image(ecr, repo, "latest")
    with pytest.raises(ecr.exceptions.ImageAlreadyExistsException):
        ecr.put_image(repositoryName=repo, imageManifest=first.decode(), imageTag="latest")
    ecr.put_image(repositoryName=repo, imageManifest=first.decode(), imageTag="stable")  # a new tag is a change
    assert describe(ecr, repo, imageTag="stable")["imageTags"] == ["latest", "stable"]
    second, _ = push_image(ecr, repo, "latest", architecture="arm64")
    assert describe(ecr, repo, imageTag="latest")["imageDigest"] == digest_of(second)
    assert describe(ecr, repo, imageDigest=digest_of(first))["imageTags"] == ["stable"]


def test_describe_unknown_image(ecr: Any, repo: str) -> None:
    with pytest.raises(ecr.exceptions.ImageNotFoundException):
        ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": "nope"}])
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.describe_images(repositoryName="test/nowhere")


def test_bad_tag_is_rejected(ecr: Any, repo: str) -> None:
    config_blob = config()
    push_blob(ecr, repo, config_blob.data)
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.put_image(repositoryName=repo, imageManifest=image_manifest(config_blob, []).decode(), imageTag="-bad")


def test_pagination_of_images_and_tags(ecr: Any, repo: str) -> None:
    config_blob = config()
    push_blob(ecr, repo, config_blob.data)
    digests = []
    for i in range(7):
        manifest = image_manifest(config_blob, [], artifact_type=f"application/x-test-{i}")
        ecr.put_image(repositoryName=repo, imageManifest=manifest.decode(), imageTag=f"t{i}")
        digests.append(digest_of(manifest))
    pages = list(ecr.get_paginator("describe_images").paginate(repositoryName=repo, PaginationConfig={"PageSize": 3}))
    assert [len(p["imageDetails"]) for p in pages] == [3, 3, 1]
    assert [d["imageDigest"] for p in pages for d in p["imageDetails"]] == digests  # push order, once each
    assert "nextToken" not in pages[-1]
    tag_pages = list(
        ecr.get_paginator("describe_image_tags").paginate(repositoryName=repo, PaginationConfig={"PageSize": 4})
    )
    rows = [row for page in tag_pages for row in page["imageTagDetails"]]
    assert [row["imageTag"] for row in rows] == [f"t{i}" for i in range(7)]
    assert rows[0]["imageDetail"]["imageDigest"] == digests[0]
    assert "createdAt" in rows[0]
    with pytest.raises(ecr.exceptions.InvalidParameterException):  # a token of another listing
        ecr.describe_image_tags(repositoryName=repo, nextToken=pages[0]["nextToken"])


def test_batch_delete_by_tag_and_digest(ecr: Any, repo: str) -> None:
    manifest, _ = push_image(ecr, repo, "a")
    ecr.put_image(repositoryName=repo, imageManifest=manifest.decode(), imageTag="b")
    digest = digest_of(manifest)
    answer = ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": "a"}])
    assert answer["imageIds"] == [{"imageDigest": digest, "imageTag": "a"}]
    assert describe(ecr, repo, imageDigest=digest)["imageTags"] == ["b"]  # the image stays with its other tag
    answer = ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": "b"}])
    with pytest.raises(ecr.exceptions.ImageNotFoundException):  # last tag gone: the image went with it
        describe(ecr, repo, imageDigest=digest)
    again, _ = push_image(ecr, repo, "c")
    ecr.put_image(repositoryName=repo, imageManifest=again.decode(), imageTag="d")
    answer = ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageDigest": digest_of(again)}])
    assert sorted(i["imageTag"] for i in answer["imageIds"]) == ["c", "d"]


def test_batch_delete_failures(ecr: Any, repo: str) -> None:
    manifest, _ = push_image(ecr, repo, "here")
    other, _ = push_image(ecr, repo, "there", architecture="arm64")
    answer = ecr.batch_delete_image(
        repositoryName=repo,
        imageIds=[
            {},
            {"imageDigest": "sha256:nothex"},
            {"imageTag": "bad tag!"},
            {"imageTag": "absent"},
            {"imageDigest": digest_of(other), "imageTag": "here"},
        ],
    )
    assert answer["imageIds"] == []
    assert [f["failureCode"] for f in answer["failures"]] == [
        "MissingDigestAndTag",
        "InvalidImageDigest",
        "InvalidImageTag",
        "ImageNotFound",
        "ImageTagDoesNotMatchDigest",
    ]
    assert describe(ecr, repo, imageTag="here")["imageDigest"] == digest_of(manifest)


def test_delete_repository_with_images(ecr: Any, repo: str) -> None:
    push_image(ecr, repo, "v1")
    with pytest.raises(ecr.exceptions.RepositoryNotEmptyException):
        ecr.delete_repository(repositoryName=repo)
    assert ecr.describe_images(repositoryName=repo)["imageDetails"]
    ecr.delete_repository(repositoryName=repo, force=True)
    ecr.create_repository(repositoryName=repo)
    assert ecr.describe_images(repositoryName=repo)["imageDetails"] == []  # nothing came back with the name
    assert ecr.batch_check_layer_availability(repositoryName=repo, layerDigests=[config().digest])["failures"]


def test_image_quota(make_server: Any) -> None:
    from tests.conftest import client

    ecr = client(make_server("max_images_per_repository = 2\n"))
    ecr.create_repository(repositoryName="small")
    push_image(ecr, "small", "one")
    push_image(ecr, "small", "two", architecture="arm64")
    with pytest.raises(ecr.exceptions.LimitExceededException):
        push_image(ecr, "small", "three", architecture="s390x")
