"""SigV4 verification: each way a signature can be wrong has its own error, and changes nothing."""

from __future__ import annotations

import datetime
import hashlib
import json
from typing import Any

import boto3
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pier.api import sigv4
from tests.conftest import OWNER, SESSION_TOKEN, TOKEN_ACCOUNT, Account
from tests.server import PierServer
from tests.signing import CONTENT_TYPE, TARGET, call, signed_headers


def create(name: str) -> tuple[bytes, dict[str, str]]:
    return json.dumps({"repositoryName": name}).encode(), {
        "Content-Type": CONTENT_TYPE,
        "X-Amz-Target": TARGET + "CreateRepository",
    }


def assert_not_created(ecr: Any, name: str) -> None:
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.describe_repositories(repositoryNames=[name])


def test_missing_authorization(pier: PierServer, ecr: Any) -> None:
    body, headers = create("sig/missing")
    response = httpx.post(pier.url + "/", content=body, headers=headers)
    assert response.status_code == 403
    assert response.json()["__type"] == "MissingAuthenticationTokenException"
    assert_not_created(ecr, "sig/missing")


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic dXNlcjpwYXNz",
        "AWS4-HMAC-SHA256 Credential=AKIAOWNER0000000001/20260101/us-east-1/ecr-public/aws4_request",
        "AWS4-HMAC-SHA256 Credential=x, SignedHeaders=host;x-amz-date, Signature=" + "0" * 64,
        "AWS4-HMAC-SHA256 Credential=AKIAOWNER0000000001/20260101/us-east-1/ecr-public/aws4_request, "
        "SignedHeaders=x-amz-date, Signature=" + "0" * 64,
    ],
    ids=["basic", "no-signature", "short-credential", "host-not-signed"],
)
def test_malformed_authorization(pier: PierServer, authorization: str) -> None:
    body, headers = create("sig/malformed")
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    response = httpx.post(
        pier.url + "/", content=body, headers={**headers, "Authorization": authorization, "X-Amz-Date": stamp}
    )
    assert response.status_code == 400
    assert response.json()["__type"] == "IncompleteSignatureException"


@pytest.mark.parametrize("stamp", ["20260101T000000", "2026-01-01T00:00:00Z", "20261301T000000Z", "2026011T000000Z"])
def test_malformed_date(pier: PierServer, stamp: str) -> None:
    body, headers = create("sig/date")
    authorization = (
        "AWS4-HMAC-SHA256 Credential=AKIAOWNER0000000001/20260101/us-east-1/ecr-public/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64
    )
    response = httpx.post(
        pier.url + "/", content=body, headers={**headers, "Authorization": authorization, "X-Amz-Date": stamp}
    )
    assert response.status_code == 400
    assert response.json()["__type"] == "IncompleteSignatureException"
    assert "YYYYMMDDTHHMMSSZ" in response.json()["message"]


def test_unknown_access_key(pier: PierServer, ecr: Any) -> None:
    stranger = Account("000000000000", "nobody", "AKIANOBODY000000000", "whatever-secret-0123456789")
    response = call(pier.url, stranger, "CreateRepository", {"repositoryName": "sig/stranger"})
    assert response.status_code == 403
    assert response.json()["__type"] == "UnrecognizedClientException"
    assert_not_created(ecr, "sig/stranger")


def test_wrong_secret(pier: PierServer, ecr: Any) -> None:
    impostor = Account(OWNER.id, OWNER.alias, OWNER.access_key_id, "not-the-right-secret-000000")
    response = call(pier.url, impostor, "CreateRepository", {"repositoryName": "sig/impostor"})
    assert response.status_code == 403
    assert response.json()["__type"] == "InvalidSignatureException"
    assert_not_created(ecr, "sig/impostor")


def test_tampered_body(pier: PierServer, ecr: Any) -> None:
    body, headers = create("sig/original")
    signed = signed_headers(pier.url, OWNER, body, headers)
    response = httpx.post(pier.url + "/", content=body.replace(b"original", b"tampered"), headers=signed)
    assert response.status_code == 403
    assert response.json()["__type"] == "InvalidSignatureException"
    assert_not_created(ecr, "sig/tampered")
    assert_not_created(ecr, "sig/original")


def test_tampered_signed_header(pier: PierServer) -> None:
    body, headers = create("sig/header")
    signed = signed_headers(pier.url, OWNER, body, headers)
    signed["X-Amz-Target"] = TARGET + "DeleteRepository"
    response = httpx.post(pier.url + "/", content=body, headers=signed)
    assert response.json()["__type"] == "InvalidSignatureException"


def test_unsigned_extra_headers_are_ignored(pier: PierServer) -> None:
    body, headers = create("sig/extra-header")
    signed = signed_headers(pier.url, OWNER, body, headers)
    signed["User-Agent"] = "something-else/1.0"
    signed["X-Forwarded-For"] = "10.9.8.7"
    assert httpx.post(pier.url + "/", content=body, headers=signed).status_code == 200


@pytest.mark.parametrize("minutes", [-16, 16], ids=["too-old", "too-new"])
def test_clock_skew(pier: PierServer, ecr: Any, minutes: int) -> None:
    when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=minutes)
    response = call(pier.url, OWNER, "CreateRepository", {"repositoryName": "sig/skewed"}, when=when)
    assert response.status_code == 403
    assert response.json()["__type"] == "InvalidSignatureException"
    assert "Signature" in response.json()["message"]
    assert_not_created(ecr, "sig/skewed")


def test_slight_skew_is_fine(pier: PierServer) -> None:
    when = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=14)
    assert call(pier.url, OWNER, "DescribeRegistries", when=when).status_code == 200


def test_wrong_service_in_scope(pier: PierServer) -> None:
    response = call(pier.url, OWNER, "DescribeRegistries", service="ecr")
    assert response.status_code == 403
    assert "ecr-public" in response.json()["message"]


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-3", "pier-local"])
def test_any_region_is_accepted(pier: PierServer, region: str) -> None:
    assert call(pier.url, OWNER, "DescribeRegistries", region=region).status_code == 200
    ecr = boto3.client(
        "ecr-public",
        endpoint_url=pier.url,
        region_name=region,
        aws_access_key_id=OWNER.access_key_id,
        aws_secret_access_key=OWNER.secret_access_key,
    )
    assert ecr.describe_registries()["registries"][0]["registryId"] == OWNER.id


def test_session_token_required_when_configured(pier: PierServer) -> None:
    missing = call(pier.url, TOKEN_ACCOUNT, "DescribeRegistries")
    assert missing.status_code == 403
    assert missing.json()["__type"] == "UnrecognizedClientException"
    wrong = call(pier.url, TOKEN_ACCOUNT, "DescribeRegistries", token="another-token")
    assert wrong.json()["__type"] == "UnrecognizedClientException"
    good = call(pier.url, TOKEN_ACCOUNT, "DescribeRegistries", token=SESSION_TOKEN)
    assert good.status_code == 200
    assert good.json()["registries"][0]["registryId"] == TOKEN_ACCOUNT.id


# The canonical request pier builds itself for API calls must be botocore's, byte for byte, whatever the
# signed headers are: their case, repeats, inner whitespace, and names signed but absent.
_header_names = st.sampled_from(["host", "x-amz-date", "x-amz-target", "content-type", "x-amz-content-sha256", "x-b"])
_header_values = st.text(alphabet=" \tab,;:=/é0", max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    pairs=st.lists(st.tuples(_header_names, _header_values, st.booleans()), max_size=8),
    signed=st.sets(_header_names, min_size=1),
    method=st.sampled_from(["POST", "post", "GET"]),
)
def test_canonical_request_is_botocores(pairs: list[tuple[str, str, bool]], signed: set[str], method: str) -> None:
    headers = [(name.title() if upper else name, value) for name, value, upper in pairs]
    body_hash = hashlib.sha256(b"{}").hexdigest()
    names = sorted(signed)
    url = "http://127.0.0.1:5000/"
    assert sigv4.canonical_request(method, url, headers, names, body_hash) == sigv4._botocore_canonical_request(
        method, url, headers, names, body_hash
    )
