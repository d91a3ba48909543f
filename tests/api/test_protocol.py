"""The AWS JSON 1.1 envelope: targets, content types, bodies, model constraints, error form."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from tests.conftest import OWNER
from tests.server import PierServer
from tests.signing import call, signed_headers


def assert_error(response: object, status: int, code: str) -> dict[str, str]:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["x-amzn-ErrorType"] == code  # type: ignore[attr-defined]
    assert response.headers["x-amzn-RequestId"]  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["__type"] == code
    assert body["message"]
    return dict(body)


def test_success_carries_request_id_and_content_type(pier: PierServer) -> None:
    response = call(pier.url, OWNER, "DescribeRegistries")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-amz-json-1.1"
    assert len(response.headers["x-amzn-RequestId"]) == 36


def test_unknown_operation(pier: PierServer) -> None:
    assert_error(call(pier.url, OWNER, "LaunchRockets"), 400, "UnknownOperationException")


def test_missing_target(pier: PierServer) -> None:
    headers = signed_headers(pier.url, OWNER, b"{}", {"Content-Type": "application/x-amz-json-1.1"})
    assert_error(httpx.post(pier.url + "/", content=b"{}", headers=headers), 400, "UnknownOperationException")


@pytest.mark.parametrize(
    "body",
    [b"{", b"[1, 2]", b'"text"', b"\xff\xfe", b"[" * 100_000],
    ids=["truncated", "array", "string", "not-utf8", "deep-nesting"],
)
def test_malformed_json(pier: PierServer, body: bytes) -> None:
    assert_error(call(pier.url, OWNER, "DescribeRepositories", body=body), 400, "SerializationException")


def test_wrong_content_type(pier: PierServer) -> None:
    response = call(pier.url, OWNER, "DescribeRepositories", {}, content_type="text/plain")
    assert_error(response, 415, "UnsupportedMediaTypeException")


def test_oversized_body_is_refused(pier: PierServer) -> None:
    body = b'{"repositoryName": "' + b"a" * (29 * 1024 * 1024) + b'"}'
    assert_error(call(pier.url, OWNER, "CreateRepository", body=body), 413, "RequestEntityTooLargeException")


VALIDATION = {
    "missing-required": ("CreateRepository", {}, "Value null at 'repositoryName'"),
    "wrong-type": ("CreateRepository", {"repositoryName": 5}, "Member must be a string"),
    "pattern": ("CreateRepository", {"repositoryName": "Nope"}, "regular expression pattern"),
    "min-length": ("CreateRepository", {"repositoryName": "a"}, "length greater than or equal to 2"),
    "max-length": ("CreateRepository", {"repositoryName": "a" * 206}, "length less than or equal to 205"),
    "nested-max": (
        "CreateRepository",
        {"repositoryName": "ok", "catalogData": {"aboutText": "x" * 25601}},
        "'catalogData.aboutText'",
    ),
    "list-max": ("DescribeRepositories", {"repositoryNames": ["ab"] * 101}, "length less than or equal to 100"),
    "list-member": ("DescribeRepositories", {"repositoryNames": ["ok", "B"]}, "'repositoryNames.2.member'"),
    "int-range": ("DescribeRepositories", {"maxResults": 5000}, "value less than or equal to 1000"),
    "bool-type": ("DeleteRepository", {"repositoryName": "ab", "force": "yes"}, "Member must be a boolean"),
    "registry-id": ("DescribeRepositories", {"registryId": "12"}, "'registryId'"),
    "bad-base64": (
        "PutRepositoryCatalogData",
        {"repositoryName": "ab", "catalogData": {"logoImageBlob": "!!"}},
        "valid base64",
    ),
    "blob-max": (
        "PutRepositoryCatalogData",
        {"repositoryName": "ab", "catalogData": {"logoImageBlob": base64.b64encode(b"x" * 512_001).decode()}},
        "length less than or equal to 512000",
    ),
}


@pytest.mark.parametrize("operation, payload, expected", VALIDATION.values(), ids=VALIDATION.keys())
def test_model_constraints_are_enforced(
    pier: PierServer, operation: str, payload: dict[str, object], expected: str
) -> None:
    body = assert_error(call(pier.url, OWNER, operation, payload), 400, "InvalidParameterException")
    assert "validation error" in body["message"]
    assert expected in body["message"]


def test_several_violations_are_reported_together(pier: PierServer) -> None:
    body = assert_error(
        call(pier.url, OWNER, "DescribeRepositories", {"maxResults": 0, "repositoryNames": ["AB"]}),
        400,
        "InvalidParameterException",
    )
    assert body["message"].startswith("2 validation errors detected")


def test_json_content_type_variants_are_accepted(pier: PierServer) -> None:
    response = call(pier.url, OWNER, "DescribeRegistries", {}, content_type="application/json")
    assert response.status_code == 200
    assert json.loads(response.text)["registries"][0]["registryId"] == OWNER.id
