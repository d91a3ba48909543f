"""413 the client can read: pier reads and discards an oversized body (up to twice the limit) before it
answers 413 with Connection: close, so SDKs see RequestEntityTooLargeException or the OCI 413, never a
broken pipe, and do not send the body again."""

from __future__ import annotations

import base64
import json
import socket
import struct
import subprocess
import threading
from collections.abc import Callable, Iterator

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.conftest import OWNER, client
from tests.faults.helpers import MIB, client_error, layer_part, login, show, v2
from tests.images import OCI_MANIFEST
from tests.jssdk import installed_js_sdk
from tests.server import PierServer
from tests.signing import CONTENT_TYPE, TARGET, signed_headers

pytestmark = pytest.mark.faults

API_LIMIT = 28 * MIB
# MiB of layer in one UploadLayerPart: ~30 MiB of JSON once base64 encoded, over the limit and under twice it.
OVERSIZED_PART = 22.5


def counted(body: bytes, sent: list[int], piece: int = MIB) -> Iterator[bytes]:
    """The body in pieces, counting what the client handed to the connection."""
    for start in range(0, len(body), piece):
        sent[0] += len(body[start : start + piece])
        yield body[start : start + piece]


def oversized_upload_part(server: PierServer) -> bytes:
    upload_id = client(server).initiate_layer_upload(repositoryName="big")["uploadId"]
    blob = bytes(int(OVERSIZED_PART * MIB))
    body = json.dumps(layer_part("big", upload_id, 0, blob)).encode()
    assert API_LIMIT < len(body) < 2 * API_LIMIT
    return body


def attempt(call: Callable[[], httpx.Response]) -> httpx.Response | httpx.HTTPError:
    try:
        return call()
    except httpx.HTTPError as error:
        return error


@pytest.fixture
def server(servers: Callable[..., PierServer]) -> PierServer:
    started = servers()
    client(started).create_repository(repositoryName="big")
    return started


def test_boto3_sees_request_entity_too_large(server: PierServer) -> None:
    upload_id = client(server).initiate_layer_upload(repositoryName="big")["uploadId"]
    blob = bytes(int(OVERSIZED_PART * MIB))
    assert len(base64.b64encode(blob)) > API_LIMIT
    failure: Exception | None = None
    try:
        client(server).upload_layer_part(
            repositoryName="big", uploadId=upload_id, partFirstByte=0, partLastByte=len(blob) - 1, layerPartBlob=blob
        )
    except Exception as error:  # ClientError, or a connection error when the body was not read
        failure = error
    assert failure is not None, "a 30 MiB API request was accepted"
    assert isinstance(failure, ClientError), f"botocore saw {type(failure).__name__} instead of the 413: {failure}"
    code, status, _, message = client_error(failure)
    assert (status, code) == (413, "RequestEntityTooLargeException"), f"{status} {code}: {message}"


def test_an_oversized_api_body_is_read_then_answered_413(server: PierServer) -> None:
    body = oversized_upload_part(server)
    headers = signed_headers(
        server.url, OWNER, body, {"Content-Type": CONTENT_TYPE, "X-Amz-Target": TARGET + "UploadLayerPart"}
    )
    headers["Content-Length"] = str(len(body))
    sent = [0]
    response = attempt(lambda: httpx.post(server.url + "/", content=counted(body, sent), headers=headers, timeout=60))
    assert isinstance(response, httpx.Response), f"no answer ({response!r}) after {sent[0]} of {len(body)} bytes"
    total = len(body)
    assert sent[0] == total, f"pier answered {response.status_code} having taken {sent[0]} of {total} bytes"
    assert response.status_code == 413, show(response)
    assert response.json()["__type"] == "RequestEntityTooLargeException", show(response)
    assert response.headers.get("x-amzn-errortype", "").startswith("RequestEntityTooLargeException")
    assert response.headers.get("connection", "").lower() == "close", dict(response.headers)


def test_an_oversized_manifest_is_read_then_answered_413(server: PierServer) -> None:
    manifest = b'{"schemaVersion": 2, "padding": "' + b"x" * (5 * MIB) + b'"}'
    headers = {**login(server), "Content-Type": OCI_MANIFEST, "Content-Length": str(len(manifest))}
    sent = [0]
    url = f"{v2(server, 'big')}/manifests/latest"
    response = attempt(lambda: httpx.put(url, content=counted(manifest, sent), headers=headers, timeout=60))
    assert isinstance(response, httpx.Response), f"no answer ({response!r}) after {sent[0]} of {len(manifest)} bytes"
    total = len(manifest)
    assert sent[0] == total, f"pier answered {response.status_code} having taken {sent[0]} of {total} bytes"
    assert response.status_code == 413, show(response)
    assert response.headers.get("content-type", "").startswith("application/json"), show(response)
    assert response.json()["errors"][0]["code"], show(response)
    assert response.headers.get("connection", "").lower() == "close", dict(response.headers)


class CountingRelay:
    """A TCP relay in front of pier that counts connections and the bytes clients send through it. When pier
    closes or resets its side, the relay does the same to the client, so the client sees what it would see."""

    def __init__(self, port: int) -> None:
        self.target = ("127.0.0.1", port)
        self.connections = 0
        self.client_bytes = 0
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                downstream.close()
                continue
            with self._lock:
                self.connections += 1
                self._sockets += [downstream, upstream]
            threading.Thread(target=self._pump, args=(downstream, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, downstream, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        try:
            while data := source.recv(65536):
                if from_client:
                    with self._lock:
                        self.client_bytes += len(data)
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)  # an orderly end, passed on
        except OSError:  # a reset (or a send to a closed peer), passed on as a reset
            for end in (source, sink):
                try:
                    end.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    end.close()
                except OSError:
                    pass

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                sock.close()


def test_the_javascript_sdk_sees_the_413_and_sends_the_body_once(server: PierServer) -> None:
    js = installed_js_sdk()
    relay = CountingRelay(server.port)
    try:
        done = subprocess.run(
            [
                "node",
                "oversized_part.mjs",
                relay.url,
                OWNER.access_key_id,
                OWNER.secret_access_key,
                "big",
                str(OVERSIZED_PART),
            ],
            cwd=js,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        relay.close()
    lines = done.stdout.strip().splitlines()
    seen = json.loads(lines[-1]) if lines else {}
    errors = [line.strip() for line in done.stderr.splitlines() if "Error" in line and " at " not in line]
    assert done.returncode == 0, f"node exited {done.returncode}: {errors[:3]}; the SDK reported {seen}"
    part_body = len(base64.b64encode(bytes(int(OVERSIZED_PART * MIB))))
    assert seen["outcome"] == "error", seen
    assert "EPIPE" not in seen["message"] and "ECONNRESET" not in seen["message"], seen
    assert (seen["status"], seen["name"]) == (413, "RequestEntityTooLargeException"), seen
    assert seen["attempts"] == 1, seen
    assert relay.client_bytes < 1.5 * part_body, (
        f"the SDK sent {relay.client_bytes / MIB:.0f} MiB over {relay.connections} connection(s) for one"
        f" {part_body / MIB:.0f} MiB request: it sent the body again"
    )
