"""Slow and stalled clients cost only themselves.

Upload requests whose bodies are announced, begun and then stopped (raw sockets) must not hold what other
clients need: with 500 of them open, reads, /healthz, signed API calls and new uploads answer. The bounds
on bodies in flight (per client address, per account) answer 429 / ThrottlingException with Retry-After;
body_timeout ends a stalled body with 408 and leaves the upload resumable at its acknowledged offset; a
body that keeps trickling is never cut. No timing targets here (bench/faults.py measures latency): only
generous upper bounds, so a loaded machine does not fail a correct server.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.conftest import OTHER, OWNER, client
from tests.faults.helpers import (
    MIB,
    STALL_SOURCES,
    acknowledged,
    assert_api_error,
    assert_oci_error,
    assert_retry_after,
    client_error,
    finish_upload,
    login,
    open_stalled_uploads,
    patch_chunk,
    pull,
    sha256,
    show,
    signed_call,
    stalled_layer_part,
    stalled_patch,
    start_upload,
    upload_status,
    v2,
    wait_until,
)
from tests.images import OCI_MANIFEST, push_image
from tests.server import PierServer

pytestmark = pytest.mark.faults

SOURCES = STALL_SOURCES  # client addresses the stalled bodies come from
STALLED = 500
BOUND = 10.0  # seconds: a generous upper bound for any answer, not a latency target
SETTLE = 1.0  # seconds to let pier read the headers of the bodies just opened
NO_RETRIES = Config(retries={"total_max_attempts": 1}, read_timeout=30)


def from_address(source: str) -> httpx.Client:
    """An HTTP client whose connections come from `source` (any address of 127/8)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=BOUND)


def timed(name: str, call: Callable[[], httpx.Response], expected: int, check: Callable[[httpx.Response], bool]) -> str:
    """'' when the call answers `expected` (and passes `check`) within BOUND seconds, else what went wrong."""
    started = time.monotonic()
    try:
        response = call()
    except httpx.HTTPError as error:
        return f"{name}: no answer ({type(error).__name__}) after {time.monotonic() - started:.1f} s"
    seconds = time.monotonic() - started
    if response.status_code != expected or not check(response):
        return f"{name}: {show(response)}"
    if seconds > BOUND:
        return f"{name}: answered after {seconds:.1f} s"
    return ""


@pytest.mark.slow
def test_500_stalled_bodies_do_not_stop_other_clients(servers: Callable[..., PierServer]) -> None:
    server = servers()
    owner = client(server)
    owner.create_repository(repositoryName="probe")
    manifest, _ = push_image(owner, "probe", "latest")
    layer_digest = json.loads(manifest)["layers"][0]["digest"]
    owner_auth = login(server, OWNER)

    with contextlib.ExitStack() as stack:
        stalled = open_stalled_uploads(server, STALLED, stack)
        time.sleep(SETTLE)

        url = v2(server, "probe")
        small = os.urandom(2000)
        probes = [
            (
                "anonymous manifest GET",
                lambda: httpx.get(f"{url}/manifests/latest", headers={"Accept": OCI_MANIFEST}, timeout=BOUND),
                200,
                lambda r: r.content == manifest,
            ),
            (
                "anonymous blob GET",
                lambda: httpx.get(f"{url}/blobs/{layer_digest}", follow_redirects=True, timeout=BOUND),
                200,
                lambda r: sha256(r.content) == layer_digest,
            ),
            ("/healthz", lambda: httpx.get(f"{server.url}/healthz", timeout=BOUND), 200, lambda r: True),
            (
                "signed DescribeRepositories",
                lambda: signed_call(server, OWNER, "DescribeRepositories", {}, timeout=BOUND),
                200,
                lambda r: "repositories" in r.json(),
            ),
            (
                "new upload (POST without body)",
                lambda: httpx.post(f"{url}/blobs/uploads/", headers=owner_auth, timeout=BOUND),
                202,
                lambda r: "Location" in r.headers,
            ),
            (
                "small monolithic push",
                lambda: httpx.post(
                    f"{url}/blobs/uploads/",
                    params={"digest": sha256(small)},
                    content=small,
                    headers=owner_auth,
                    timeout=BOUND,
                ),
                201,
                lambda r: True,
            ),
        ]
        problems: list[str] = []
        with ThreadPoolExecutor(len(probes)) as pool:
            for _ in range(3):  # three rounds of every probe at once, unless the first already fails
                problems += [p for p in pool.map(lambda probe: timed(*probe), probes) if p]
                if problems:
                    break
        answered = [i for i, body in enumerate(stalled) if not body.waiting()]
    assert not problems, f"with {STALLED} stalled upload bodies open:\n" + "\n".join(problems)
    assert not answered, f"{len(answered)} of {STALLED} stalled bodies were refused or closed (the defaults admit all)"


def test_bodies_in_flight_per_client_address_on_v2(servers: Callable[..., PierServer]) -> None:
    server = servers("max_upload_bodies_per_client = 3\n")
    client(server).create_repository(repositoryName="bound")
    auth, url = login(server), v2(server, "bound")
    locations = [start_upload(url, auth) for _ in range(5)]
    chunk = os.urandom(1000)
    with contextlib.ExitStack() as stack:
        held = [stack.enter_context(stalled_patch(server, loc, auth, source="127.0.0.2")) for loc in locations[:3]]
        time.sleep(SETTLE)
        with from_address("127.0.0.2") as same, from_address("127.0.0.3") as elsewhere:
            fourth = same.patch(locations[3], content=chunk, headers={**auth, "Content-Range": "0-999"})
            assert_oci_error(fourth, 429, "TOOMANYREQUESTS")
            assert_retry_after(fourth.headers)
            monolithic = same.post(
                f"{url}/blobs/uploads/", params={"digest": sha256(chunk)}, content=chunk, headers=auth
            )
            assert_oci_error(monolithic, 429, "TOOMANYREQUESTS")
            assert_retry_after(monolithic.headers)
            no_body = same.post(f"{url}/blobs/uploads/", headers=auth)
            assert no_body.status_code == 202, f"a POST without a body is never refused: {show(no_body)}"
            other_address = elsewhere.patch(locations[4], content=chunk, headers={**auth, "Content-Range": "0-999"})
            assert other_address.status_code == 202, f"the bound is per client address: {show(other_address)}"

            held[0].close()  # one body ends: its place is free again

            def admitted() -> bool:
                response = same.patch(locations[3], content=chunk, headers={**auth, "Content-Range": "0-999"})
                return response.status_code == 202

            assert wait_until(admitted, timeout=BOUND, interval=0.5), "a closed stalled body still counts"


def test_bodies_in_flight_per_client_address_on_the_api(servers: Callable[..., PierServer]) -> None:
    server = servers("max_upload_bodies_per_client = 3\n")
    ecr = client(server, config=NO_RETRIES)
    ecr.create_repository(repositoryName="bound")
    upload_ids = [ecr.initiate_layer_upload(repositoryName="bound")["uploadId"] for _ in range(4)]
    with contextlib.ExitStack() as stack:
        for upload_id in upload_ids[:3]:  # from 127.0.0.1, as boto3's requests below
            stack.enter_context(stalled_layer_part(server, OWNER, "bound", upload_id))
        time.sleep(SETTLE)
        try:
            ecr.upload_layer_part(
                repositoryName="bound",
                uploadId=upload_ids[3],
                partFirstByte=0,
                partLastByte=999,
                layerPartBlob=os.urandom(1000),
            )
        except ClientError as error:
            code, status, headers, message = client_error(error)
        else:
            pytest.fail("a 4th UploadLayerPart body from one address was admitted (max_upload_bodies_per_client = 3)")
        assert (status, code) == (400, "ThrottlingException"), f"{status} {code}: {message}"
        assert_retry_after(headers)
        assert ecr.describe_repositories()["repositories"], "calls without an upload body are not bounded"


def test_bodies_in_flight_per_account(servers: Callable[..., PierServer]) -> None:
    server = servers("max_upload_bodies_per_account = 3\n")
    owner, other = client(server, config=NO_RETRIES), client(server, OTHER, config=NO_RETRIES)
    owner.create_repository(repositoryName="bound")
    other.create_repository(repositoryName="bound")
    owner_auth, other_auth = login(server, OWNER), login(server, OTHER)
    owner_url, other_url = v2(server, "bound", OWNER), v2(server, "bound", OTHER)
    locations = [start_upload(owner_url, owner_auth) for _ in range(4)]
    chunk = os.urandom(1000)
    with contextlib.ExitStack() as stack:
        for location, source in zip(locations[:3], SOURCES[:3], strict=True):  # three addresses, one account
            stack.enter_context(stalled_patch(server, location, owner_auth, source=source))
        time.sleep(SETTLE)
        with from_address(SOURCES[3]) as fresh:
            fourth = fresh.patch(locations[3], content=chunk, headers={**owner_auth, "Content-Range": "0-999"})
            assert_oci_error(fourth, 429, "TOOMANYREQUESTS")
            assert_retry_after(fourth.headers)
            other_location = start_upload(other_url, other_auth, fresh)
            others = fresh.patch(other_location, content=chunk, headers={**other_auth, "Content-Range": "0-999"})
            assert others.status_code == 202, f"the bound is per account: {show(others)}"

        upload_id = owner.initiate_layer_upload(repositoryName="bound")["uploadId"]
        part = {"partFirstByte": 0, "partLastByte": 999, "layerPartBlob": chunk}
        try:
            owner.upload_layer_part(repositoryName="bound", uploadId=upload_id, **part)
        except ClientError as error:
            code, status, headers, message = client_error(error)
        else:
            pytest.fail("a 4th upload body of one account was admitted (max_upload_bodies_per_account = 3)")
        assert (status, code) == (400, "ThrottlingException"), f"{status} {code}: {message}"
        assert_retry_after(headers)
        other_id = other.initiate_layer_upload(repositoryName="bound")["uploadId"]
        other.upload_layer_part(repositoryName="bound", uploadId=other_id, **part)  # the other account is free


def test_a_stalled_patch_ends_with_408_and_the_upload_resumes(servers: Callable[..., PierServer]) -> None:
    server = servers("body_timeout = 2\n")
    client(server).create_repository(repositoryName="idle")
    auth, url = login(server), v2(server, "idle")
    data = os.urandom(300_000)
    location = start_upload(url, auth)
    first = patch_chunk(location, auth, data[:100_000], 0)
    assert first.status_code == 202, show(first)

    with stalled_patch(server, location, auth, 100_000, 200_000, data[100_000:101_000]) as stalled:
        try:
            response = stalled.response(timeout=15)
        except TimeoutError:
            response = None
    if response is None:
        pytest.fail("no answer 15 s after the body stalled (body_timeout = 2)")
    assert_oci_error(response, 408, "BLOB_UPLOAD_INVALID")
    assert response.headers.get("connection", "").lower() == "close", dict(response.headers)

    assert upload_status(location, auth) == 100_000, "the upload must stay at its acknowledged offset"
    rest = patch_chunk(location, auth, data[100_000:], 100_000)
    assert rest.status_code == 202, show(rest)
    done = finish_upload(location, auth, sha256(data))
    assert done.status_code == 201, show(done)
    assert pull(server, "idle", sha256(data)) == data


def test_a_stalled_layer_part_ends_with_408_and_the_upload_resumes(servers: Callable[..., PierServer]) -> None:
    server = servers("body_timeout = 2\n")
    ecr = client(server, config=NO_RETRIES)
    ecr.create_repository(repositoryName="idle")
    data = os.urandom(6 * MIB)
    upload_id = ecr.initiate_layer_upload(repositoryName="idle")["uploadId"]
    part: dict[str, Any] = {"repositoryName": "idle", "uploadId": upload_id}
    ecr.upload_layer_part(**part, partFirstByte=0, partLastByte=5 * MIB - 1, layerPartBlob=data[: 5 * MIB])

    with stalled_layer_part(server, OWNER, "idle", upload_id, 5 * MIB, data[5 * MIB :]) as stalled:
        try:
            response = stalled.response(timeout=15)
        except TimeoutError:
            response = None
    if response is None:
        pytest.fail("no answer 15 s after the body stalled (body_timeout = 2)")
    assert_api_error(response, 408, "RequestTimeoutException")

    ecr.upload_layer_part(**part, partFirstByte=5 * MIB, partLastByte=len(data) - 1, layerPartBlob=data[5 * MIB :])
    done = ecr.complete_layer_upload(**part, layerDigests=[sha256(data)])
    assert done["layerDigest"] == sha256(data)
    assert pull(server, "idle", sha256(data)) == data


def test_a_slow_body_that_keeps_sending_is_not_cut(servers: Callable[..., PierServer]) -> None:
    server = servers("body_timeout = 2\n")
    client(server).create_repository(repositoryName="slow")
    auth, url = login(server), v2(server, "slow")
    data = os.urandom(11)
    location = start_upload(url, auth)
    with stalled_patch(server, location, auth, 0, len(data), data[:1]) as trickle:
        for index in range(1, len(data)):  # one byte every 0.5 s: 5 s in all, longer than body_timeout
            time.sleep(0.5)
            assert trickle.waiting(), "pier answered (or closed) a body that was still sending"
            trickle.send(data[index : index + 1])
        response = trickle.response(timeout=BOUND)
    assert response.status_code == 202, show(response)
    assert acknowledged(response.headers["Range"]) == len(data)
    done = finish_upload(location, auth, sha256(data))
    assert done.status_code == 201, show(done)
    assert pull(server, "slow", sha256(data)) == data


def test_a_client_that_goes_away_is_not_an_error(servers: Callable[..., PierServer]) -> None:
    """A client hanging up mid-body is logged at INFO, without a traceback, and its upload stays resumable."""
    server = servers()
    client(server).create_repository(repositoryName="gone")
    auth, url = login(server), v2(server, "gone")
    data = os.urandom(200_000)
    location = start_upload(url, auth)
    first = patch_chunk(location, auth, data[:100_000], 0)
    assert first.status_code == 202, show(first)
    logged = len(server.log())
    for _ in range(3):
        with stalled_patch(server, location, auth, 100_000, 100_000, data[100_000:150_000]):
            time.sleep(SETTLE)
    assert upload_status(location, auth) == 100_000
    time.sleep(SETTLE)
    new_lines = server.log()[logged:].splitlines()
    noisy = [line for line in new_lines if "Traceback" in line or " ERROR " in line]
    assert not noisy, f"a client going away was logged as an error: {noisy[:3]}"
    rest = patch_chunk(location, auth, data[100_000:], 100_000)
    assert rest.status_code == 202, show(rest)
    assert finish_upload(location, auth, sha256(data)).status_code == 201
    assert pull(server, "gone", sha256(data)) == data
