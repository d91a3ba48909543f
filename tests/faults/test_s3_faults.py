"""S3 failing under pier: moto's S3 behind a fault proxy (tests/faults/faultproxy.py), PostgreSQL metadata.

A total outage (503s, or connection resets) answers 503 + Retry-After in each door's JSON on everything
that needs the bucket, while calls that do not need it keep working and /readyz names the blob store; a
chunked upload cut by the outage resumes at its acknowledged offset once S3 is back. Flaky S3 (every
third request 503) is absorbed by retries, and a stalled S3 holds only the requests that need it.
Everything acknowledged hashes right afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config

from tests.backends import S3_KEYS, _wait_for_port
from tests.conftest import OWNER, client
from tests.faults.faultproxy import FAIL, FLAKY, PASS, RESET, STALL, FaultProxy
from tests.faults.helpers import (
    MIB,
    PrivatePostgres,
    acknowledged,
    assert_api_error,
    assert_oci_error,
    assert_retry_after,
    finish_upload,
    layer_part,
    login,
    patch_chunk,
    pull,
    sha256,
    show,
    signed_call,
    start_upload,
    upload_status,
    v2,
    wait_until,
)
from tests.images import push_blob, push_image
from tests.server import PierServer, free_port

pytestmark = pytest.mark.faults

BUCKET = "pier-faults"
NO_RETRIES = Config(retries={"total_max_attempts": 1}, read_timeout=120)
TIMEOUT = 120.0  # pier retries S3 with backoff before it gives up: a failing request takes a while
RECOVERY_BOUND = 10.0  # the contract's 5 s, and slack for a busy machine
CHUNK = 5 * MIB


class FaultyS3:
    """moto_server with a FaultProxy in front; `direct` goes around the proxy, for the test's own checks."""

    def __init__(self) -> None:
        port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(port)
        self.proxy = FaultProxy(port)
        self.direct = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        self.direct.create_bucket(Bucket=BUCKET)

    def config(self, prefix: str) -> str:
        lines = {"blob_store": f"s3://{BUCKET}/{prefix}", "s3_endpoint_url": self.proxy.url, **S3_KEYS}
        return "".join(f'{key} = "{value}"\n' for key, value in lines.items()) + "s3_presigned_redirects = false\n"

    def objects(self, prefix: str) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for page in self.direct.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            for item in page.get("Contents", []):
                found[item["Key"]] = self.direct.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
        return found

    def close(self) -> None:
        self.direct.close()
        self.proxy.close()
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture(scope="module")
def s3() -> Iterator[FaultyS3]:
    store = FaultyS3()
    yield store
    store.close()


@pytest.fixture
def on_s3(
    s3: FaultyS3, postgres: PrivatePostgres, servers: Callable[..., PierServer]
) -> Iterator[tuple[PierServer, str]]:
    """pier on PostgreSQL and the proxied S3 (streaming pulls itself); the proxy passes everything at the end."""
    s3.proxy.set(PASS)
    prefix = f"t{uuid.uuid4().hex[:12]}/"
    try:
        yield servers(postgres.database_line() + s3.config(prefix)), prefix
    finally:
        s3.proxy.set(PASS)


def assert_bucket_whole(s3: FaultyS3, prefix: str) -> None:
    """Every published object hashes to its name."""
    for key, data in s3.objects(prefix + "blobs/sha256/").items():
        assert sha256(data) == "sha256:" + key.rsplit("/", 1)[1], key


class Problems:
    """Checks that all run, failures collected: one report says everything that broke."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def check(self, name: str, check: Callable[[], Any]) -> None:
        try:
            check()
        except Exception as error:  # AssertionError, or no answer at all
            self.found.append(f"{name}: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")


def attempt(call: Callable[[], httpx.Response]) -> httpx.Response | Exception:
    try:
        return call()
    except httpx.HTTPError as error:
        return error


def answered(outcome: httpx.Response | Exception) -> httpx.Response:
    if isinstance(outcome, Exception):
        raise AssertionError(f"no answer: {outcome!r}")
    return outcome


def ready_json(outcome: httpx.Response | Exception) -> dict[str, Any]:
    response = answered(outcome)
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.slow
@pytest.mark.parametrize("fault", [FAIL, RESET])
def test_s3_outage(fault: str, on_s3: tuple[PierServer, str], s3: FaultyS3) -> None:
    server, prefix = on_s3
    ecr = client(server, config=NO_RETRIES)
    ecr.create_repository(repositoryName="s3")
    auth, url = login(server), v2(server, "s3")
    stored: dict[str, bytes] = {}

    before = os.urandom(300_000)
    pushed = httpx.post(f"{url}/blobs/uploads/", params={"digest": sha256(before)}, content=before, headers=auth)
    assert pushed.status_code == 201, show(pushed)
    stored[sha256(before)] = before
    chunked = os.urandom(12 * MIB)
    location = start_upload(url, auth)
    first = patch_chunk(location, auth, chunked[:CHUNK], 0)
    assert first.status_code == 202, show(first)
    layer = os.urandom(6 * MIB)
    upload_id = ecr.initiate_layer_upload(repositoryName="s3")["uploadId"]
    ecr.upload_layer_part(
        repositoryName="s3", uploadId=upload_id, partFirstByte=0, partLastByte=CHUNK - 1, layerPartBlob=layer[:CHUNK]
    )
    later = os.urandom(100_000)

    s3.proxy.set(fault)
    calls: dict[str, Callable[[], httpx.Response]] = {
        "monolithic push": lambda: httpx.post(
            f"{url}/blobs/uploads/", params={"digest": sha256(later)}, content=later, headers=auth, timeout=TIMEOUT
        ),
        "chunk": lambda: patch_chunk(location, auth, chunked[CHUNK : 2 * CHUNK], CHUNK, timeout=TIMEOUT),
        "blob pull": lambda: httpx.get(f"{url}/blobs/{sha256(before)}", timeout=TIMEOUT),
        "UploadLayerPart": lambda: signed_call(
            server, OWNER, "UploadLayerPart", layer_part("s3", upload_id, CHUNK, layer[CHUNK:]), TIMEOUT
        ),
        "DescribeRepositories": lambda: signed_call(server, OWNER, "DescribeRepositories", {}, TIMEOUT),
        "/healthz": lambda: httpx.get(f"{server.url}/healthz", timeout=TIMEOUT),
        "/readyz": lambda: httpx.get(f"{server.url}/readyz", timeout=TIMEOUT),
    }
    with ThreadPoolExecutor(len(calls)) as pool:  # at once: each failure waits out pier's S3 retries
        during = dict(zip(calls, pool.map(attempt, calls.values()), strict=True))
    injected = s3.proxy.injected

    problems = Problems()
    for name in ("monolithic push", "chunk", "blob pull"):
        problems.check(
            f"{name} during the outage", lambda n=name: assert_oci_error(answered(during[n]), 503, "UNAVAILABLE")
        )
        problems.check(f"{name} Retry-After", lambda n=name: assert_retry_after(answered(during[n]).headers))
    problems.check(
        "UploadLayerPart during the outage",
        lambda: assert_api_error(answered(during["UploadLayerPart"]), 503, "ServerException"),
    )
    problems.check(
        "UploadLayerPart Retry-After", lambda: assert_retry_after(answered(during["UploadLayerPart"]).headers)
    )
    problems.check(
        "DescribeRepositories (needs no S3)",
        lambda: _expect(
            answered(during["DescribeRepositories"]).status_code == 200, show(during["DescribeRepositories"])
        ),
    )
    problems.check(
        "/healthz", lambda: _expect(answered(during["/healthz"]).status_code == 200, show(during["/healthz"]))
    )
    problems.check(
        "/readyz during the outage",
        lambda: _expect(
            answered(during["/readyz"]).status_code == 503
            and ready_json(during["/readyz"])["checks"]["blob_store"]["status"] == "failing"
            and ready_json(during["/readyz"])["checks"]["database"]["status"] == "ok",
            show(during["/readyz"]),
        ),
    )

    s3.proxy.set(PASS)
    problems.check(
        "/readyz after S3 is back",
        lambda: _expect(
            wait_until(lambda: httpx.get(f"{server.url}/readyz", timeout=TIMEOUT).status_code == 200, RECOVERY_BOUND),
            f"not 200 within {RECOVERY_BOUND} s",
        ),
    )

    def resume_chunked() -> None:
        assert upload_status(location, auth) == CHUNK, "not at its acknowledged offset"
        rest = patch_chunk(location, auth, chunked[CHUNK:], CHUNK, timeout=TIMEOUT)
        assert rest.status_code == 202 and acknowledged(rest.headers["Range"]) == len(chunked), show(rest)
        done = finish_upload(location, auth, sha256(chunked))
        assert done.status_code == 201, show(done)
        stored[sha256(chunked)] = chunked

    def resume_layer() -> None:
        ecr.upload_layer_part(
            repositoryName="s3",
            uploadId=upload_id,
            partFirstByte=CHUNK,
            partLastByte=len(layer) - 1,
            layerPartBlob=layer[CHUNK:],
        )
        done = ecr.complete_layer_upload(repositoryName="s3", uploadId=upload_id, layerDigests=[sha256(layer)])
        assert done["layerDigest"] == sha256(layer)
        stored[sha256(layer)] = layer

    def push_again() -> None:
        again = httpx.post(
            f"{url}/blobs/uploads/", params={"digest": sha256(later)}, content=later, headers=auth, timeout=TIMEOUT
        )
        assert again.status_code == 201, show(again)
        stored[sha256(later)] = later

    problems.check("the chunked upload resumes after the outage", resume_chunked)
    problems.check("the layer upload resumes after the outage", resume_layer)
    problems.check("a push after the outage", push_again)
    for digest, data in stored.items():
        problems.check(
            f"pull {digest[:19]}", lambda d=digest, b=data: _expect(pull(server, "s3", d) == b, "bytes differ")
        )
    problems.check("the bucket holds only whole blobs", lambda: assert_bucket_whole(s3, prefix))
    assert injected, "the proxy injected no fault: pier never asked S3 during the outage"
    assert not problems.found, f"S3 outage ({fault}):\n" + "\n".join(problems.found)


def _expect(condition: bool, detail: str) -> None:
    assert condition, detail


def test_flaky_s3_is_absorbed(on_s3: tuple[PierServer, str], s3: FaultyS3) -> None:
    server, prefix = on_s3
    ecr = client(server, config=NO_RETRIES)  # pier must absorb the faults: the client does not retry
    ecr.create_repository(repositoryName="s3")
    auth, url = login(server), v2(server, "s3")
    stored: dict[str, bytes] = {}
    s3.proxy.set(FLAKY, every=3)

    for _ in range(3):
        data = os.urandom(200_000)
        response = httpx.post(
            f"{url}/blobs/uploads/", params={"digest": sha256(data)}, content=data, headers=auth, timeout=TIMEOUT
        )
        assert response.status_code == 201, show(response)
        stored[sha256(data)] = data
    chunked = os.urandom(6 * MIB)
    location = start_upload(url, auth)
    for offset in (0, CHUNK):
        response = patch_chunk(location, auth, chunked[offset : offset + CHUNK], offset, timeout=TIMEOUT)
        assert response.status_code == 202, show(response)
    done = finish_upload(location, auth, sha256(chunked))
    assert done.status_code == 201, show(done)
    stored[sha256(chunked)] = chunked
    layer = os.urandom(6 * MIB)
    assert push_blob(ecr, "s3", layer) == sha256(layer)
    stored[sha256(layer)] = layer
    push_image(ecr, "s3", "v1", random_bytes=100_000)
    for digest, data in stored.items():
        assert pull(server, "s3", digest) == data

    assert s3.proxy.injected > 0, "the proxy injected no fault"
    s3.proxy.set(PASS)
    assert_bucket_whole(s3, prefix)


def test_stalled_s3_holds_only_what_needs_it(on_s3: tuple[PierServer, str], s3: FaultyS3) -> None:
    server, _ = on_s3
    client(server).create_repository(repositoryName="s3")
    auth, url = login(server), v2(server, "s3")
    data = os.urandom(200_000)
    s3.proxy.set(STALL)
    with ThreadPoolExecutor(1) as pool:
        pushing = pool.submit(
            attempt,
            lambda: httpx.post(
                f"{url}/blobs/uploads/", params={"digest": sha256(data)}, content=data, headers=auth, timeout=TIMEOUT
            ),
        )
        time.sleep(2)
        health = attempt(lambda: httpx.get(f"{server.url}/healthz", timeout=10))
        listing = attempt(lambda: signed_call(server, OWNER, "DescribeRepositories", {}, 10))
        s3.proxy.set(PASS)
        pushed = answered(pushing.result(timeout=TIMEOUT))
    assert answered(health).status_code == 200, show(health)
    assert answered(listing).status_code == 200, show(listing)
    assert pushed.status_code == 201, show(pushed)
    assert pull(server, "s3", sha256(data)) == data
