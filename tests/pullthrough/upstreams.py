"""Upstream registries for pull-through tests: Debian's docker-registry (CNCF distribution) on loopback,
with htpasswd (Basic) authentication, token authentication (a token server of the test's own, signing
JWTs as distribution's token auth expects), or none; and a proxy in front of it that counts what pier asks
and can misbehave on purpose.

The proxy forwards each request to the registry and streams the answer back as it comes. Its modes:

    PASS     forward
    FAIL     answer 503 (a registry that is overloaded)
    DOWN     close the connection without an answer (a registry that is gone)
    CORRUPT  forward, but flip one byte in the middle of every blob body (a registry that lies)

`hold` pauses blob bodies after a number of bytes until `release()` (to see a client get bytes before the
upstream has sent them all). `seen` lists (method, path, status) of every request forwarded.
"""

from __future__ import annotations

import base64
import datetime
import http.client
import http.server
import json
import secrets
import shutil
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from tests.server import free_port

PASS, FAIL, DOWN, CORRUPT = "pass", "fail", "down", "corrupt"
USER, PASSWORD = "mirror", "upstream-secret-8c1f9e"


class Distribution:
    """docker-registry serving a folder of its own; stop() and start() again keep its content."""

    def __init__(self, root: Path, htpasswd: bool = False, token: TokenServer | None = None) -> None:
        if shutil.which("docker-registry") is None:
            pytest.skip("docker-registry is not installed (scripts/test installs Debian's docker-registry)")
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.port = free_port()
        self.htpasswd = htpasswd
        auth = ""
        if htpasswd:
            line = subprocess.run(
                ["htpasswd", "-Bbn", USER, PASSWORD], capture_output=True, text=True, check=True
            ).stdout.strip()
            (root / "htpasswd").write_text(line + "\n")
            auth = f"auth:\n  htpasswd:\n    realm: upstream\n    path: {root / 'htpasswd'}\n"
        if token is not None:
            (root / "token.pem").write_bytes(token.certificate_pem)
            auth = (
                f"auth:\n  token:\n    realm: {token.url}/token\n    service: {token.SERVICE}\n"
                f"    issuer: {token.ISSUER}\n    rootcertbundle: {root / 'token.pem'}\n"
            )
        self.authenticated = htpasswd or token is not None
        self.config = root / "config.yml"
        self.config.write_text(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n{auth}"
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> None:
        with open(self.root / "registry.log", "ab") as log:
            self.process = subprocess.Popen(
                ["docker-registry", "serve", str(self.config)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/v2/", timeout=1).status_code in (200, 401):
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"docker-registry did not start:\n{(self.root / 'registry.log').read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def creds(self) -> list[str]:
        """skopeo's flag for pushing to it directly."""
        return ["--dest-creds", f"{USER}:{PASSWORD}"] if self.authenticated else []


class Proxy(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, backend_port: int) -> None:
        self.backend_port = backend_port
        self.mode = PASS
        self.seen: list[tuple[str, str, int]] = []
        self.hold_after: int | None = None
        self._released = threading.Event()
        self._lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self.serve_forever, name="upstream-proxy", daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def hold(self, after: int) -> None:
        self._released.clear()
        self.hold_after = after

    def release(self) -> None:
        self.hold_after = None
        self._released.set()

    def record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.seen.append((method, path, status))

    def requests(self, method: str, part: str) -> list[str]:
        """Paths of the requests forwarded with `method` whose path contains `part` (answered 2xx)."""
        with self._lock:
            return [path for m, path, status in self.seen if m == method and part in path and status < 300]

    def close(self) -> None:
        self.release()
        self.shutdown()
        self.server_close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _handle(self) -> None:
        proxy: Proxy = self.server  # type: ignore[assignment]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if proxy.mode == DOWN:
            self._reset()
            return
        if proxy.mode == FAIL:
            proxy.record(self.command, self.path, 503)
            self._answer(503, b'{"errors":[{"code":"UNAVAILABLE","message":"overloaded"}]}')
            return
        connection = http.client.HTTPConnection("127.0.0.1", proxy.backend_port, timeout=60)
        try:
            connection.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for key, value in self.headers.items():
                if key.lower() not in ("content-length", "connection"):
                    connection.putheader(key, value)
            if body or self.command in ("PUT", "POST", "PATCH"):
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body or None)
            response = connection.getresponse()
        except OSError:
            self._reset()  # the registry is not there: neither is the proxy, as far as its client can tell
            return
        try:
            proxy.record(self.command, self.path, response.status)
            self.send_response(response.status)
            for key, value in response.getheaders():
                if key.lower() not in ("transfer-encoding", "connection"):
                    self.send_header(key, value)
            if response.getheader("Content-Length") is None:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command == "HEAD":
                return
            blob = "/blobs/" in self.path and response.status == 200
            total = int(response.getheader("Content-Length") or 0)
            hold = proxy.hold_after if blob else None
            sent = 0
            while chunk := response.read(64 * 1024):
                if blob and proxy.mode == CORRUPT and sent <= total // 2 < sent + len(chunk):
                    at = total // 2 - sent
                    chunk = chunk[:at] + bytes([chunk[at] ^ 0xFF]) + chunk[at + 1 :]
                if hold is not None and sent <= hold < sent + len(chunk):
                    self.wfile.write(chunk[: hold - sent])
                    self.wfile.flush()
                    sent, chunk = hold, chunk[hold - sent :]
                    proxy._released.wait(60)
                self.wfile.write(chunk)
                sent += len(chunk)
        finally:
            connection.close()

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _reset(self) -> None:
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

    def log_message(self, *args: Any) -> None:
        pass


class TokenServer(http.server.ThreadingHTTPServer):
    """The token endpoint of distribution's token authentication: GET /token?service=&scope=... with Basic
    USER:PASSWORD answers a JWT (RS256, its certificate in the x5c header) granting the scopes asked."""

    daemon_threads = True
    SERVICE, ISSUER = "upstream-registry", "pier-tests"

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pier-tests token signer")])
        now = datetime.datetime.now(datetime.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.certificate_pem = self.certificate.public_bytes(serialization.Encoding.PEM)
        self.issued: list[list[str]] = []  # the scopes of each token issued
        super().__init__(("127.0.0.1", 0), _TokenHandler)
        threading.Thread(target=self.serve_forever, name="token-server", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def token(self, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {
            "iss": self.ISSUER,
            "sub": USER,
            "aud": self.SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        certificate = base64.b64encode(self.certificate.public_bytes(serialization.Encoding.DER)).decode()
        header = {"typ": "JWT", "alg": "RS256", "x5c": [certificate]}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(signature)}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class _TokenHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        server: TokenServer = self.server  # type: ignore[assignment]
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            body = b'{"details": "wrong or no credentials"}'
            self.send_response(401)
        else:
            scopes = parse_qs(urlsplit(self.path).query).get("scope", [])
            server.issued.append(scopes)
            body = json.dumps({"token": server.token(scopes), "expires_in": 300}).encode()
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass
