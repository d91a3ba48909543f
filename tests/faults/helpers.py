"""What the fault tests share: raw HTTP on sockets (stalled bodies, chosen source addresses), /v2/ uploads,
the error shapes the issue 12 contract fixes, and a PostgreSQL cluster that can be stopped and started.

Nothing here stands in for a part of pier: every helper talks to a real `pier serve` over TCP.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import glob
import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg

from tests.conftest import OTHER, OWNER, client
from tests.oci.helpers import bearer
from tests.server import Account, PierServer, free_port
from tests.signing import CONTENT_TYPE, TARGET, signed_headers

MIB = 1024 * 1024
OCI_JSON = "application/json"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def show(response: Any) -> str:
    """One line about an answer, for assertion messages."""
    if isinstance(response, BaseException):
        return f"{type(response).__name__}: {response}"
    body = response.content[:300]
    return f"{response.status_code} {response.headers.get('content-type')!r} {body!r}"


# ---------------------------------------------------------------------------------------------------------
# Raw HTTP on a socket: bodies that stall, requests from 127.0.0.2..127.0.0.6 (all of 127/8 is loopback).


@dataclass
class RawResponse:
    status_code: int
    headers: httpx.Headers
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


def connect(server: PierServer, source: str = "127.0.0.1", timeout: float = 10) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", server.port))
    except BaseException:
        sock.close()
        raise
    return sock


def request_head(method: str, target: str, host: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def read_response(sock: socket.socket, timeout: float = 15, method: str = "GET") -> RawResponse:
    """The next HTTP response on the socket (socket.timeout if none comes in `timeout` seconds)."""
    sock.settimeout(timeout)
    response = http.client.HTTPResponse(sock, method=method)
    try:
        response.begin()
        body = response.read()
        return RawResponse(response.status, httpx.Headers(response.getheaders()), body)
    finally:
        response.close()


def closed_by_server(sock: socket.socket, timeout: float = 5) -> bool:
    """True when the server closes the connection (EOF or reset) within `timeout` and sends nothing more."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


class Stalled:
    """A request whose body was announced and begun, then stopped: the client sends nothing more."""

    def __init__(self, server: PierServer, head: bytes, first: bytes, source: str = "127.0.0.1") -> None:
        self.sock = connect(server, source)
        try:
            self.sock.sendall(head + first)
        except BaseException:
            self.sock.close()
            raise

    def waiting(self) -> bool:
        """Still open and unanswered: the server has neither answered nor closed."""
        timeout = self.sock.gettimeout()
        self.sock.settimeout(0)  # non-blocking: a socket with a timeout would wait for data
        try:
            self.sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return True
        except OSError:
            return False
        finally:
            self.sock.settimeout(timeout)
        return False  # an answer (data) or the end of the connection (b"")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def response(self, timeout: float = 15) -> RawResponse:
        return read_response(self.sock, timeout)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Stalled:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def target_of(url: str) -> str:
    """The request target (path and query) of an absolute URL pier answered with."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def stalled_patch(
    server: PierServer,
    location: str,
    auth: dict[str, str],
    offset: int = 0,
    announced: int = MIB,
    first: bytes = b"x" * 100,
    source: str = "127.0.0.1",
) -> Stalled:
    """PATCH a chunk: headers announce `announced` bytes from `offset`, then only `first` comes."""
    headers = {
        **auth,
        "Content-Type": "application/octet-stream",
        "Content-Length": str(announced),
        "Content-Range": f"{offset}-{offset + announced - 1}",
    }
    return Stalled(server, request_head("PATCH", target_of(location), server.host, headers), first, source)


def stalled_monolithic_post(
    server: PierServer, name: str, auth: dict[str, str], announced: int = MIB, source: str = "127.0.0.1"
) -> Stalled:
    """POST /v2/<name>/blobs/uploads/?digest=... with a body that stops after 100 bytes."""
    body = bytes(announced)
    headers = {**auth, "Content-Type": "application/octet-stream", "Content-Length": str(announced)}
    head = request_head("POST", f"/v2/{name}/blobs/uploads/?digest={sha256(body)}", server.host, headers)
    return Stalled(server, head, body[:100], source)


STALL_SOURCES = tuple(f"127.0.0.{i}" for i in range(2, 7))


def open_stalled_uploads(server: PierServer, count: int, stack: contextlib.ExitStack) -> list[Stalled]:
    """`count` upload bodies that stall, kept open until `stack` closes: half PATCHes to uploads started first,
    half monolithic POSTs; both test accounts (logged in to /v2/); spread evenly over 127.0.0.2..127.0.0.6, so
    500 stay within the default bounds (400 per account, 100 per address). Repositories stall/0..n per account,
    at most 50 uploads each (a repository allows 100 at once)."""
    repositories = max(1, -(-count // 100))
    auths = {}
    for account in (OWNER, OTHER):
        ecr = client(server, account)
        for index in range(repositories):
            with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
                ecr.create_repository(repositoryName=f"stall/{index}")
        auths[account.alias] = login(server, account)
    plan = []  # every upload started before any body stalls: starting one never waits behind them
    for i in range(count):
        account = OWNER if i % 2 == 0 else OTHER
        repository = f"stall/{(i // 2) % repositories}"
        location = start_upload(v2(server, repository, account), auths[account.alias]) if i % 4 < 2 else None
        plan.append((account, repository, location, STALL_SOURCES[i % len(STALL_SOURCES)]))
    stalled = []
    for account, repository, location, source in plan:
        auth = auths[account.alias]
        if location is not None:
            opened = stalled_patch(server, location, auth, source=source)
        else:
            opened = stalled_monolithic_post(server, f"{account.alias}/{repository}", auth, source=source)
        stalled.append(stack.enter_context(opened))
    return stalled


# ---------------------------------------------------------------------------------------------------------
# The API, signed by hand (for bodies boto3 would send whole).


def api_request(server: PierServer, account: Account, operation: str, payload: dict[str, Any]) -> tuple[bytes, bytes]:
    """(request head, body) of a signed ecr-public call."""
    body = json.dumps(payload).encode()
    headers = signed_headers(
        server.url, account, body, {"Content-Type": CONTENT_TYPE, "X-Amz-Target": TARGET + operation}
    )
    headers["Content-Length"] = str(len(body))
    return request_head("POST", "/", server.host, headers), body


def signed_call(
    server: PierServer, account: Account, operation: str, payload: dict[str, Any], timeout: float = 30, **kw: Any
) -> httpx.Response:
    """An ecr-public call signed by hand, with the answer as it came (status, headers, body)."""
    body = json.dumps(payload).encode()
    headers = signed_headers(
        server.url, account, body, {"Content-Type": CONTENT_TYPE, "X-Amz-Target": TARGET + operation}
    )
    return httpx.post(server.url + "/", content=body, headers=headers, timeout=timeout, **kw)


def layer_part(repository: str, upload_id: str, first_byte: int, data: bytes) -> dict[str, Any]:
    return {
        "repositoryName": repository,
        "uploadId": upload_id,
        "partFirstByte": first_byte,
        "partLastByte": first_byte + len(data) - 1,
        "layerPartBlob": base64.b64encode(data).decode(),
    }


def stalled_layer_part(
    server: PierServer,
    account: Account,
    repository: str,
    upload_id: str,
    first_byte: int = 0,
    data: bytes = bytes(MIB),
    source: str = "127.0.0.1",
) -> Stalled:
    """UploadLayerPart whose signed body stops after its first 100 bytes."""
    payload = layer_part(repository, upload_id, first_byte, data)
    head, body = api_request(server, account, "UploadLayerPart", payload)
    return Stalled(server, head, body[:100], source)


def client_error(error: Any) -> tuple[str, int, dict[str, str], str]:
    """(error code, HTTP status, headers, message) of a botocore ClientError."""
    response = error.response
    metadata = response.get("ResponseMetadata", {})
    return (
        response.get("Error", {}).get("Code", ""),
        metadata.get("HTTPStatusCode", 0),
        metadata.get("HTTPHeaders", {}),
        response.get("Error", {}).get("Message", ""),
    )


# ---------------------------------------------------------------------------------------------------------
# /v2/


def v2(server: PierServer, repository: str, account: Account = OWNER) -> str:
    return f"{server.url}/v2/{account.alias}/{repository}"


def login(server: PierServer, account: Account = OWNER) -> dict[str, str]:
    """A bearer token of the account for /v2/, as docker gets one."""
    return bearer(server, client(server, account))


def acknowledged(range_header: str) -> int:
    """Bytes an upload holds, from its Range header ("0-0" is an empty upload in pier's answers)."""
    first, _, last = range_header.partition("-")
    assert first == "0", range_header
    return 0 if last == "0" else int(last) + 1


def start_upload(url: str, auth: dict[str, str], http: Any = httpx) -> str:
    response = http.post(f"{url}/blobs/uploads/", headers=auth, timeout=30)
    assert response.status_code == 202, show(response)
    return str(response.headers["Location"])


def upload_status(location: str, auth: dict[str, str]) -> int:
    response = httpx.get(location, headers=auth, timeout=30)
    assert response.status_code == 204, show(response)
    return acknowledged(response.headers["Range"])


def patch_chunk(location: str, auth: dict[str, str], data: bytes, offset: int, **kw: Any) -> httpx.Response:
    headers = {**auth, "Content-Range": f"{offset}-{offset + len(data) - 1}"}
    return httpx.patch(location, content=data, headers=headers, timeout=kw.pop("timeout", 60), **kw)


def finish_upload(location: str, auth: dict[str, str], digest: str) -> httpx.Response:
    return httpx.put(location, params={"digest": digest}, headers=auth, timeout=60)


def pull(server: PierServer, repository: str, digest: str, account: Account = OWNER) -> bytes:
    """The blob as an anonymous client gets it through /v2/ (S3 redirects followed)."""
    response = httpx.get(f"{v2(server, repository, account)}/blobs/{digest}", follow_redirects=True, timeout=60)
    assert response.status_code == 200, f"pulling {digest}: {show(response)}"
    return response.content


# ---------------------------------------------------------------------------------------------------------
# The answers issue 12's contract fixes.


def assert_oci_error(response: Any, status: int, code: str, message: str = "") -> None:
    assert response.status_code == status, f"expected {status} {code}, got {show(response)}"
    assert response.headers.get("content-type", "").startswith(OCI_JSON), show(response)
    errors = response.json()["errors"]
    assert errors[0]["code"] == code, show(response)
    assert message in errors[0]["message"], show(response)


def assert_api_error(response: Any, status: int, kind: str, message: str = "") -> None:
    assert response.status_code == status, f"expected {status} {kind}, got {show(response)}"
    body = response.json()
    assert body["__type"] == kind, show(response)
    assert message in body["message"], show(response)


def assert_retry_after(headers: Any) -> None:
    value = headers.get("retry-after") or headers.get("Retry-After")
    assert value is not None and value.strip().isdigit(), f"Retry-After missing or not seconds: {value!r}"


# ---------------------------------------------------------------------------------------------------------
# PostgreSQL that can be stopped and started again on the same port and data directory.


class PrivatePostgres:
    """A PostgreSQL cluster of its own (Debian's server, as tests/backends.Postgres), with stop and start."""

    def __init__(self) -> None:
        binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not binaries:
            raise RuntimeError("PostgreSQL is not installed (scripts/test installs Debian's postgresql)")
        self.bindir = Path(binaries[-1]).parent
        self.dir = Path(tempfile.mkdtemp(prefix="pier-faults-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.as_postgres: list[str] = []
        if os.geteuid() == 0:  # the server refuses to run as root
            shutil.chown(self.dir, "postgres")
            self.as_postgres = ["runuser", "-u", "postgres", "--"]
        initdb = [str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
        subprocess.run(
            [*self.as_postgres, *initdb],
            check=True,
            capture_output=True,
        )
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}"
        self.start()

    def _pg_ctl(self, *args: str, check: bool = True) -> None:
        subprocess.run(
            [*self.as_postgres, str(self.bindir / "pg_ctl"), "-D", str(self.data), *args],
            check=check,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        """Start (again) on the same port and data directory; returns once it accepts connections."""
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
        self._pg_ctl("-o", options, "-l", str(self.dir / "log"), "-w", "start")

    def stop(self) -> None:
        """pg_ctl stop -m fast: clients are disconnected, the port closes."""
        self._pg_ctl("-m", "fast", "-w", "stop")

    def create_database(self, name: str) -> None:
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')

    def database_line(self) -> str:
        """pier.toml's database_url line for a new database of this cluster."""
        name = f"pier_{uuid.uuid4().hex[:12]}"
        self.create_database(name)
        return f'database_url = "{self.url}/{name}"\n'

    def remove(self) -> None:
        self._pg_ctl("-m", "immediate", "stop", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------------
# Disks.


def free_bytes(path: Path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def fill(directory: Path, leave: int = 0) -> Path:
    """Write a filler file so that about `leave` bytes stay free (0: until the file system is full)."""
    filler = directory / f"filler-{uuid.uuid4().hex[:8]}"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        chunk = bytes(MIB)
        if leave:
            remaining = free_bytes(directory) - leave
            while remaining > 0:
                remaining -= os.write(fd, chunk[: min(remaining, MIB)])
        else:
            for size in (MIB, 4096, 1):  # then the last partial page, byte by byte
                while True:
                    try:
                        if os.write(fd, chunk[:size]) < size:
                            break
                    except OSError as error:
                        if error.errno != errno.ENOSPC:
                            raise
                        break
    finally:
        os.close(fd)
    return filler


def wait_until(condition: Any, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())
