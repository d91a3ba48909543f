"""Limits that protect a public registry: rate limits, header size, uploads in progress, expiry."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from botocore.config import Config

from tests.conftest import OWNER, client
from tests.oci.helpers import bearer

LIMITED = "rate_limit_anonymous = 1\nrate_limit_authenticated = 2\nrate_limit_burst = 3\n"


def test_anonymous_token_and_pull_rate_limits(make_server: Any) -> None:
    server = make_server(LIMITED)
    answers = [httpx.get(f"{server.url}/token").status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    limited = httpx.get(f"{server.url}/token")
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    time.sleep(1.1)  # one token refills per second
    assert httpx.get(f"{server.url}/token").status_code == 200


def test_manifest_reads_are_limited_but_blobs_are_not(make_server: Any) -> None:
    server = make_server(LIMITED)
    ecr = client(server)
    ecr.create_repository(repositoryName="limited")
    url = f"{server.url}/v2/{OWNER.alias}/limited"
    statuses = [httpx.get(f"{url}/manifests/latest").status_code for _ in range(4)]
    assert statuses[:3] == [404, 404, 404] and statuses[3] == 429
    assert httpx.get(f"{url}/blobs/sha256:{'0' * 64}").status_code == 404  # not counted


def test_api_calls_are_throttled(make_server: Any) -> None:
    server = make_server(LIMITED)
    ecr = client(server, config=Config(retries={"total_max_attempts": 1}))
    for _ in range(3):
        ecr.describe_registries()
    with pytest.raises(ecr.exceptions.ClientError) as info:
        ecr.describe_registries()
    assert info.value.response["Error"]["Code"] == "ThrottlingException"
    assert int(info.value.response["ResponseMetadata"]["HTTPHeaders"]["retry-after"]) >= 1


def test_rate_limits_are_off_by_default(pier: Any) -> None:
    assert {httpx.get(f"{pier.url}/token").status_code for _ in range(30)} == {200}


def test_oversized_headers_are_refused(pier: Any) -> None:
    response = httpx.get(f"{pier.url}/v2/", headers={"X-Padding": "x" * 40_000})
    assert response.status_code == 431


def test_uploads_in_progress_are_limited(make_server: Any, backend: Any) -> None:
    server = make_server("max_uploads_per_repository = 2\n")
    ecr = client(server)
    ecr.create_repository(repositoryName="busy")
    auth = bearer(server, ecr)
    url = f"{server.url}/v2/{OWNER.alias}/busy/blobs/uploads/"
    # An upload counts from its first bytes (starting one writes nothing: its id is its only state).
    first, second, third = (httpx.post(url, headers=auth) for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (202, 202, 202)
    for started in (first, second):
        assert httpx.patch(started.headers["Location"], content=b"bytes", headers=auth).status_code == 202
    refused = httpx.patch(third.headers["Location"], content=b"bytes", headers=auth)
    assert (refused.status_code, refused.json()["errors"][0]["code"]) == (429, "TOOMANYREQUESTS")
    assert httpx.get(third.headers["Location"], headers=auth).headers["Range"] == "0-0"  # nothing kept
    third_id = third.headers["Location"].rsplit("/", 1)[1]
    assert not [name for name in backend.upload_leftovers(server) if third_id in name]
    upload_id = ecr.initiate_layer_upload(repositoryName="busy")["uploadId"]
    with pytest.raises(ecr.exceptions.LimitExceededException):
        ecr.upload_layer_part(
            repositoryName="busy", uploadId=upload_id, partFirstByte=0, partLastByte=0, layerPartBlob=b"x"
        )
    httpx.delete(first.headers["Location"], headers=auth)  # finishing or cancelling frees a place
    assert httpx.patch(third.headers["Location"], content=b"bytes", headers=auth).status_code == 202


def test_idle_uploads_expire(make_server: Any, backend: Any) -> None:
    server = make_server("upload_expiry_seconds = 1\n")
    ecr = client(server)
    ecr.create_repository(repositoryName="idle")
    auth = bearer(server, ecr)
    location = httpx.post(f"{server.url}/v2/{OWNER.alias}/idle/blobs/uploads/", headers=auth).headers["Location"]
    httpx.patch(location, content=b"partial", headers=auth)
    upload_id = ecr.initiate_layer_upload(repositoryName="idle")["uploadId"]
    issued_by = time.time()
    deadline = time.monotonic() + 10
    while httpx.get(location, headers=auth).status_code != 404 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert httpx.get(location, headers=auth).status_code == 404
    # The upload never written to has no row for the sweep to remove: its id expires a second after it was
    # issued (core/upload_ids.py), however slowly this machine got here.
    time.sleep(max(0.0, issued_by + 1.5 - time.time()))
    with pytest.raises(ecr.exceptions.UploadNotFoundException):
        ecr.upload_layer_part(
            repositoryName="idle", uploadId=upload_id, partFirstByte=0, partLastByte=0, layerPartBlob=b"x"
        )
    assert backend.upload_leftovers(server) == []  # their bytes are gone too


def test_expired_bearer_tokens_are_refused(make_server: Any) -> None:
    server = make_server("token_ttl_seconds = 1\n")
    token = bearer(server)
    assert httpx.get(f"{server.url}/v2/", headers=token).status_code == 200
    time.sleep(2.1)
    expired = httpx.get(f"{server.url}/v2/", headers=token)
    assert expired.status_code == 401
    assert "WWW-Authenticate" in expired.headers
