"""The AWS SDK for JavaScript v3 (@aws-sdk/client-ecr-public) against pier: a second SDK, which signs,
retries, paginates and parses errors its own way. tests/js/ecr.mjs runs the calls; the package is
installed from npm into tests/js/node_modules (pinned in tests/js/package.json) the first time, and the
tests are skipped, saying why, when node is missing or npm cannot reach its registry."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.test_catalog import tiny_png
from tests.conftest import OTHER, OWNER
from tests.images import config, image_manifest
from tests.jssdk import installed_js_sdk
from tests.server import Account, PierServer


@pytest.fixture(scope="session")
def js_sdk() -> Path:
    return installed_js_sdk()


def run_js(js: Path, server: PierServer, calls: list[dict[str, Any]], account: Account = OWNER) -> list[dict[str, Any]]:
    request = {
        "endpoint": server.url,
        "accessKeyId": account.access_key_id,
        "secretAccessKey": account.secret_access_key,
        "calls": calls,
    }
    done = subprocess.run(
        ["node", str(js / "ecr.mjs")],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")},  # only what the script is given
    )
    assert done.returncode == 0, done.stderr
    results: list[dict[str, Any]] = json.loads(done.stdout)
    assert len(results) == len(calls)
    return results


def blob(data: bytes) -> dict[str, str]:
    return {"$base64": base64.b64encode(data).decode()}


def ok(result: dict[str, Any]) -> dict[str, Any]:
    assert result["ok"], result
    output: dict[str, Any] = result["output"]
    return output


def failed(result: dict[str, Any], name: str, status: int = 400) -> str:
    assert not result["ok"], result
    error = result["error"]
    assert (error["name"], error["status"], error["code"]) == (name, status, None), error
    message: str = error["message"]
    return message


def layer_upload(repository: str, data: bytes, digest: str, upload_id: str) -> list[dict[str, Any]]:
    """The calls of a one-part layer upload (the upload id comes from an InitiateLayerUpload before)."""
    return [
        {
            "op": "UploadLayerPart",
            "input": {
                "repositoryName": repository,
                "uploadId": upload_id,
                "partFirstByte": 0,
                "partLastByte": len(data) - 1,
                "layerPartBlob": blob(data),
            },
        },
        {
            "op": "CompleteLayerUpload",
            "input": {"repositoryName": repository, "uploadId": upload_id, "layerDigests": [digest]},
        },
    ]


def test_operations_through_the_js_sdk(js_sdk: Path, pier: PierServer) -> None:
    name = f"js/{uuid.uuid4().hex[:10]}"
    logo = tiny_png()
    created = run_js(
        js_sdk,
        pier,
        [
            {
                "op": "CreateRepository",
                "input": {
                    "repositoryName": name,
                    "catalogData": {"description": "from JavaScript", "architectures": ["ARM 64"]},
                    "tags": [{"Key": "sdk", "Value": "js"}],
                },
            },
            {"op": "CreateRepository", "input": {"repositoryName": f"{name}-b"}},
            {"op": "DescribeRepositories", "input": {}, "paginate": {"pageSize": 1}},
            {"op": "GetAuthorizationToken", "input": {}},
            {"op": "DescribeRegistries", "input": {}},
            {"op": "PutRegistryCatalogData", "input": {"displayName": "pier via js"}},
            {"op": "GetRegistryCatalogData", "input": {}},
            {
                "op": "PutRepositoryCatalogData",
                "input": {"repositoryName": name, "catalogData": {"aboutText": "# About", "logoImageBlob": blob(logo)}},
            },
            {"op": "GetRepositoryCatalogData", "input": {"repositoryName": name}},
            {"op": "InitiateLayerUpload", "input": {"repositoryName": name}},
            {"op": "InitiateLayerUpload", "input": {"repositoryName": name}},
        ],
    )
    repository = ok(created[0])["repository"]
    assert repository["repositoryUri"] == f"{pier.host}/{OWNER.alias}/{name}"
    assert ok(created[0])["catalogData"]["description"] == "from JavaScript"
    assert isinstance(repository["createdAt"], float)  # a date the SDK parsed
    pages = created[2]["pages"]
    listed = [r["repositoryName"] for page in pages for r in page["repositories"]]
    assert {name, f"{name}-b"} <= set(listed)
    assert all(len(page["repositories"]) <= 1 for page in pages) and len(pages) >= 2
    token = base64.b64decode(ok(created[3])["authorizationData"]["authorizationToken"]).decode()
    assert token.startswith("AWS:")
    assert ok(created[4])["registries"][0]["registryId"] == OWNER.id
    assert ok(created[6])["registryCatalogData"]["displayName"] == "pier via js"
    logo_url = ok(created[7])["catalogData"]["logoUrl"]
    assert httpx.get(logo_url).content == logo  # the blob the SDK sent, byte for byte
    assert ok(created[8])["catalogData"]["aboutText"] == "# About"
    layer_id, config_id = ok(created[9])["uploadId"], ok(created[10])["uploadId"]

    layer_data = os.urandom(100_000)
    layer_digest = "sha512:" + hashlib.sha512(layer_data).hexdigest()  # the layer API carries sha512 too
    configs = [config(architecture) for architecture in ("amd64", "arm64", "s390x", "ppc64le", "riscv64")]
    first_config = configs[0]
    manifests = [image_manifest(c, []) for c in configs]
    arn = f"arn:aws:ecr-public::{OWNER.id}:repository/{name}"
    policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": OTHER.id}, "Action": "ecr-public:*"}],
        }
    )
    calls: list[dict[str, Any]] = [
        *layer_upload(name, layer_data, layer_digest, layer_id),
        *layer_upload(name, first_config.data, first_config.digest, config_id),
        {
            "op": "BatchCheckLayerAvailability",
            "input": {"repositoryName": name, "layerDigests": [layer_digest, first_config.digest]},
        },
    ]
    for _ in configs[1:]:  # the other configs, as the ECR API pushes them: a layer upload each
        calls.append({"op": "InitiateLayerUpload", "input": {"repositoryName": name}})
    uploaded = run_js(js_sdk, pier, calls)
    assert ok(uploaded[1])["layerDigest"] == layer_digest
    assert ok(uploaded[3])["layerDigest"] == first_config.digest
    available = {layer["layerDigest"]: layer["layerSize"] for layer in ok(uploaded[4])["layers"]}
    assert available == {layer_digest: len(layer_data), first_config.digest: len(first_config.data)}
    more_ids = [ok(result)["uploadId"] for result in uploaded[5:]]

    calls = []
    for upload_id, blob_config in zip(more_ids, configs[1:], strict=True):
        calls += layer_upload(name, blob_config.data, blob_config.digest, upload_id)
    for i, manifest in enumerate(manifests):
        calls.append(
            {
                "op": "PutImage",
                "input": {"repositoryName": name, "imageManifest": manifest.decode(), "imageTag": f"t{i}"},
            }
        )
    calls += [
        {"op": "DescribeImages", "input": {"repositoryName": name}, "paginate": {"pageSize": 2}},
        {"op": "DescribeImageTags", "input": {"repositoryName": name}, "paginate": {"pageSize": 3}},
        {"op": "BatchDeleteImage", "input": {"repositoryName": name, "imageIds": [{"imageTag": "t0"}]}},
        {"op": "SetRepositoryPolicy", "input": {"repositoryName": name, "policyText": policy}},
        {"op": "GetRepositoryPolicy", "input": {"repositoryName": name}},
        {"op": "DeleteRepositoryPolicy", "input": {"repositoryName": name}},
        {"op": "TagResource", "input": {"resourceArn": arn, "tags": [{"Key": "team", "Value": "core"}]}},
        {"op": "UntagResource", "input": {"resourceArn": arn, "tagKeys": ["sdk"]}},
        {"op": "ListTagsForResource", "input": {"resourceArn": arn}},
        {"op": "DeleteRepository", "input": {"repositoryName": name, "force": True}},
        {"op": "DeleteRepository", "input": {"repositoryName": f"{name}-b"}},
    ]
    results = run_js(js_sdk, pier, calls)
    for result in results[: 2 * len(more_ids) + len(manifests)]:
        ok(result)
    rest = results[2 * len(more_ids) + len(manifests) :]
    image_pages = rest[0]["pages"]
    assert [len(page["imageDetails"]) for page in image_pages] == [2, 2, 1]  # pages of 2, by nextToken
    digests = {d["imageDigest"] for page in image_pages for d in page["imageDetails"]}
    assert digests == {"sha256:" + hashlib.sha256(m).hexdigest() for m in manifests}
    tag_pages = rest[1]["pages"]
    assert [len(page["imageTagDetails"]) for page in tag_pages] == [3, 2]
    assert ok(rest[2])["imageIds"][0]["imageTag"] == "t0"
    assert ok(rest[4])["policyText"] == policy
    assert ok(rest[5])["policyText"] == policy
    assert ok(rest[8])["tags"] == [{"Key": "team", "Value": "core"}]
    assert ok(rest[9])["repository"]["repositoryName"] == name
    ok(rest[10])


def test_errors_through_the_js_sdk(js_sdk: Path, pier: PierServer, ecr: Any, repo: str) -> None:
    oversized = os.urandom(22 * 1024 * 1024)  # 29 MiB once base64'd in JSON: past the 28 MiB API limit
    results = run_js(
        js_sdk,
        pier,
        [
            {"op": "DescribeRepositories", "input": {"repositoryNames": [f"{repo}-missing"]}},
            {"op": "DescribeImages", "input": {"repositoryName": f"{repo}-missing"}},
            {"op": "CreateRepository", "input": {"repositoryName": "Bad_Name"}},
            {"op": "DescribeImages", "input": {"repositoryName": repo, "maxResults": 5000}},
            {"op": "DescribeImages", "input": {"repositoryName": repo, "nextToken": "forged"}},
            {"op": "CreateRepository", "input": {"repositoryName": repo}},
            {
                "op": "UploadLayerPart",
                "input": {
                    "repositoryName": repo,
                    "uploadId": str(uuid.uuid4()),
                    "partFirstByte": 0,
                    "partLastByte": 2,
                    "layerPartBlob": blob(b"abc"),
                },
            },
            {
                "op": "CompleteLayerUpload",
                "input": {"repositoryName": repo, "uploadId": str(uuid.uuid4()), "layerDigests": ["md5:" + "0" * 32]},
            },
            {
                "op": "UploadLayerPart",
                "input": {
                    "repositoryName": repo,
                    "uploadId": str(uuid.uuid4()),
                    "partFirstByte": 0,
                    "partLastByte": len(oversized) - 1,
                    "layerPartBlob": blob(oversized),
                },
            },
            {"op": "DescribeRegistries", "input": {}},  # the connection after the 413 still serves
        ],
    )
    assert f"{repo}-missing" in failed(results[0], "RepositoryNotFoundException")
    failed(results[1], "RepositoryNotFoundException")
    assert "repositoryName" in failed(results[2], "InvalidParameterException")
    assert "maxResults" in failed(results[3], "InvalidParameterException")
    assert "nextToken" in failed(results[4], "InvalidParameterException")
    failed(results[5], "RepositoryAlreadyExistsException")
    failed(results[6], "UploadNotFoundException")
    message = failed(results[7], "InvalidParameterException")
    assert "layerDigests" in message and "sha512" in message
    # An oversized body is read (and dropped) before the answer: the SDK sees the 413, not a broken pipe.
    too_large = results[8]["error"]
    assert (too_large["name"], too_large["status"], too_large["code"]) == ("RequestEntityTooLargeException", 413, None)
    assert too_large["attempts"] == 1  # a client error is not retried
    ok(results[9])
    # A key pier does not know, and a wrong secret: the SDK reads AWS's own error names.
    stranger = Account("000000000000", "nobody", "AKIANOBODY000000000X", "not-a-secret")
    unknown = run_js(js_sdk, pier, [{"op": "DescribeRegistries", "input": {}}], stranger)[0]
    failed(unknown, "UnrecognizedClientException", 403)
    wrong = Account(OWNER.id, OWNER.alias, OWNER.access_key_id, "a-wrong-secret")
    bad_signature = run_js(js_sdk, pier, [{"op": "DescribeRegistries", "input": {}}], wrong)[0]
    failed(bad_signature, "InvalidSignatureException", 403)
