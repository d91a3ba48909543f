"""SIGKILL in the middle of uploads and PutImage: acknowledged data survives, nothing half-written shows."""

from __future__ import annotations

import contextlib
import hashlib
import json
import signal
import threading
import time
from typing import Any

import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tests.backends import Backend, assert_blobs_are_whole
from tests.conftest import OWNER, client
from tests.images import MIB, config, digest_of, image_manifest, push_blob, push_image
from tests.server import PierServer
from tests.signing import CONTENT_TYPE, TARGET, signed_headers

PART = 5 * MIB
NO_RETRIES = Config(retries={"total_max_attempts": 1}, read_timeout=30)


def part_bytes(index: int) -> bytes:
    return hashlib.sha256(str(index).encode()).digest() * (PART // 32)


def kill_and_restart(server: PierServer) -> None:
    server.stop(signal.SIGKILL)
    server.start()


def test_sigkill_during_a_multi_part_upload(make_server: Any, backend: Backend) -> None:
    server = make_server()
    ecr = client(server, config=NO_RETRIES)
    ecr.create_repository(repositoryName="crash")
    upload_id = ecr.initiate_layer_upload(repositoryName="crash")["uploadId"]
    acknowledged: list[int] = []  # sizes the server acknowledged

    def keep_uploading() -> None:
        index = 0
        while True:
            try:
                ecr.upload_layer_part(
                    repositoryName="crash",
                    uploadId=upload_id,
                    partFirstByte=index * PART,
                    partLastByte=(index + 1) * PART - 1,
                    layerPartBlob=part_bytes(index),
                )
            except (BotoCoreError, ClientError):
                return
            index += 1
            acknowledged.append(index * PART)

    uploader = threading.Thread(target=keep_uploading)
    uploader.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    kill_and_restart(server)  # lands while a part is being received or written
    uploader.join()
    assert len(acknowledged) >= 3

    ecr = client(server)
    size = acknowledged[-1]
    try:  # continue after the last acknowledged part
        ecr.upload_layer_part(
            repositoryName="crash",
            uploadId=upload_id,
            partFirstByte=size,
            partLastByte=size + PART - 1,
            layerPartBlob=part_bytes(size // PART),
        )
    except ecr.exceptions.InvalidLayerPartException as error:
        # The part in flight was made durable before the kill, only its answer was lost.
        assert error.response["lastValidByteReceived"] == size + PART - 1
    size += PART
    data = b"".join(part_bytes(i) for i in range(size // PART))
    done = ecr.complete_layer_upload(repositoryName="crash", uploadId=upload_id, layerDigests=[digest_of(data)])
    assert done["layerDigest"] == digest_of(data)
    assert_blobs_are_whole(backend, server)


def slow_put_image(server: PierServer, manifest: bytes, started: threading.Event) -> None:
    """Send a PutImage whose body stops halfway: the server is killed while reading it."""
    body = json.dumps({"repositoryName": "crash", "imageManifest": manifest.decode(), "imageTag": "half"}).encode()
    headers = signed_headers(
        server.url, OWNER, body, {"Content-Type": CONTENT_TYPE, "X-Amz-Target": TARGET + "PutImage"}
    )

    def stream() -> Any:
        yield body[: len(body) // 2]
        started.set()
        time.sleep(5)
        yield body[len(body) // 2 :]

    with contextlib.suppress(httpx.HTTPError):  # the server dies mid-request
        httpx.post(server.url + "/", content=stream(), headers=headers, timeout=10)


def test_sigkill_during_put_image(make_server: Any, backend: Backend) -> None:
    server = make_server()
    ecr = client(server)
    ecr.create_repository(repositoryName="crash")
    pushed, _ = push_image(ecr, "crash", "whole")
    config_blob = config("arm64")
    push_blob(ecr, "crash", config_blob.data)
    second = image_manifest(config_blob, [])
    started = threading.Event()
    sender = threading.Thread(target=slow_put_image, args=(server, second, started))
    sender.start()
    assert started.wait(10)
    time.sleep(0.2)
    kill_and_restart(server)
    sender.join()

    ecr = client(server)
    details = ecr.describe_images(repositoryName="crash")["imageDetails"]
    assert [(d["imageDigest"], d["imageTags"]) for d in details] == [(digest_of(pushed), ["whole"])]
    ecr.put_image(repositoryName="crash", imageManifest=second.decode(), imageTag="half")  # and it can be retried
    assert len(ecr.describe_images(repositoryName="crash")["imageDetails"]) == 2
    assert_blobs_are_whole(backend, server)


@pytest.mark.parametrize("round_", range(3))
def test_sigkill_while_images_are_pushed(make_server: Any, backend: Backend, round_: int) -> None:
    """Kill at an arbitrary moment of a stream of pushes: every acknowledged image is complete after restart."""
    server = make_server()
    ecr = client(server, config=NO_RETRIES)
    ecr.create_repository(repositoryName="crash")
    done: list[bytes] = []

    def keep_pushing() -> None:
        for i in range(1000):
            try:
                manifest, _ = push_image(ecr, "crash", f"t{i}", architecture=f"arch{i}", random_bytes=64 * 1024)
            except (BotoCoreError, ClientError):
                return
            done.append(manifest)

    pusher = threading.Thread(target=keep_pushing)
    pusher.start()
    deadline = time.monotonic() + 30
    while len(done) < 2 + round_ and time.monotonic() < deadline:
        time.sleep(0.005)
    kill_and_restart(server)
    pusher.join()

    ecr = client(server)
    stored = {d["imageDigest"] for d in ecr.describe_images(repositoryName="crash")["imageDetails"]}
    assert {digest_of(m) for m in done} <= stored
    for manifest in done:  # every blob of every acknowledged image is still in the repository
        document = json.loads(manifest)
        digests = [document["config"]["digest"]] + [layer["digest"] for layer in document["layers"]]
        assert not ecr.batch_check_layer_availability(repositoryName="crash", layerDigests=digests)["failures"]
    assert_blobs_are_whole(backend, server)
