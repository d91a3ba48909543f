"""The storage backends tests run on: SQLite + filesystem, and PostgreSQL + S3 (moto's S3 server).

PostgreSQL is Debian's server, started for the session in a temporary cluster on a free port (as the
postgres user when the tests run as root). S3 is moto_server behind a proxy that serialises requests,
because moto answers 500 to concurrent PUTs of one key, which real S3 does not.
"""

from __future__ import annotations

import glob
import hashlib
import http.client
import http.server
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import psycopg

from tests.roundrobin import relay, send
from tests.server import PierServer, free_port

BUCKET = "pier-tests"
ALGORITHMS = ("sha256", "sha512")  # the folders (and key prefixes) blobs are published in
S3_KEYS = {"s3_access_key_id": "testing", "s3_secret_access_key": "testing", "s3_region": "us-east-1"}


class Backend:
    name = "sqlite-fs"

    def config(self) -> str:
        """pier.toml lines for one new server (each gets its own database and blob prefix)."""
        return ""

    def blob_digests(self, server: PierServer) -> dict[str, bytes]:
        """Every published blob, by the digest its name says (blobs/<algorithm>/<2 hex>/<hex>), with its bytes."""
        found = {}
        for algorithm in ALGORITHMS:
            root = server.data_dir / "blobs" / algorithm
            if root.is_dir():
                found |= {f"{algorithm}:{p.name}": p.read_bytes() for p in root.rglob("*") if p.is_file()}
        return found

    def upload_leftovers(self, server: PierServer) -> list[str]:
        return [p.name for p in (server.data_dir / "blobs" / "uploads").iterdir()]

    def stop(self) -> None:
        pass


class PostgresS3(Backend):
    name = "postgresql-s3"

    def __init__(self) -> None:
        self.postgres = Postgres()
        self.s3 = MotoS3()
        self._servers: dict[str, str] = {}

    def config(self) -> str:
        name = f"pier_{uuid.uuid4().hex[:12]}"
        self.postgres.create_database(name)
        prefix = f"{name}/"
        lines = {
            "database_url": f"{self.postgres.url}/{name}",
            "blob_store": f"s3://{BUCKET}/{prefix}",
            "s3_endpoint_url": self.s3.url,
            **S3_KEYS,
        }
        return "".join(f'{key} = "{value}"\n' for key, value in lines.items())

    def _prefix(self, server: PierServer) -> str:
        text = server.config_file.read_text() if server.config_file else ""
        return text.split(f"s3://{BUCKET}/", 1)[1].split('"', 1)[0]

    def _objects(self, prefix: str) -> list[str]:
        client = self.s3.client()
        keys: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            keys += [item["Key"] for item in page.get("Contents", [])]
        return keys

    def blob_digests(self, server: PierServer) -> dict[str, bytes]:
        client = self.s3.client()
        found = {}
        for algorithm in ALGORITHMS:  # blobs/<algorithm>/<hex>
            for key in self._objects(f"{self._prefix(server)}blobs/{algorithm}/"):
                found[f"{algorithm}:{key.rsplit('/', 1)[1]}"] = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        return found

    def upload_leftovers(self, server: PierServer) -> list[str]:
        return self._objects(self._prefix(server) + "uploads/")

    def stop(self) -> None:
        self.s3.stop()
        self.postgres.stop()


def assert_blobs_are_whole(backend: Backend, server: PierServer) -> None:
    """Every published blob hashes to its own name: no partial blob is ever visible."""
    for digest, data in backend.blob_digests(server).items():
        algorithm = digest.split(":", 1)[0]
        assert f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}" == digest, digest


class Postgres:
    def __init__(self) -> None:
        binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not binaries:
            raise RuntimeError("PostgreSQL is not installed (scripts/test installs Debian's postgresql)")
        bindir = Path(binaries[-1]).parent
        self.dir = Path(tempfile.mkdtemp(prefix="pier-pg-"))
        self.port = free_port()
        as_postgres: list[str] = []
        if os.geteuid() == 0:  # the server refuses to run as root
            shutil.chown(self.dir, "postgres")
            as_postgres = ["runuser", "-u", "postgres", "--"]
        data = self.dir / "data"
        subprocess.run(
            [*as_postgres, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
        )
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
        subprocess.run(
            [
                *as_postgres,
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(self.dir / "log"),
                "-w",
                "start",
            ],
            check=True,
            capture_output=True,
        )
        self._stop = [*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}"

    def create_database(self, name: str) -> None:
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')

    def stop(self) -> None:
        subprocess.run(self._stop, capture_output=True, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


class MotoS3:
    def __init__(self) -> None:
        self._client: Any = None
        self.moto_port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.moto_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.moto_port)
        self.proxy = SerialProxy(("127.0.0.1", 0), "127.0.0.1", self.moto_port)
        threading.Thread(target=self.proxy.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.proxy.server_address[1]}"
        deadline = time.monotonic() + 30
        while True:
            try:
                self.client().create_bucket(Bucket=BUCKET)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def client(self) -> Any:
        if self._client is None:
            self._client = boto3.client(
                "s3",
                endpoint_url=self.url,
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
        return self._client

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
        self.proxy.shutdown()
        self.proxy.server_close()
        self.process.terminate()
        self.process.wait(10)


def _wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class SerialProxy(http.server.ThreadingHTTPServer):
    """Forwards HTTP requests to one backend, one at a time."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up; nothing to report

    def __init__(self, address: tuple[str, int], host: str, port: int) -> None:
        self.backend = (host, port)
        self.lock = threading.Lock()
        super().__init__(address, _ProxyHandler)


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        server: SerialProxy = self.server  # type: ignore[assignment]
        with server.lock:
            connection = http.client.HTTPConnection(*server.backend, timeout=120)
            send(connection, self.command, self.path, self.headers.items(), body or b"")
            response = connection.getresponse()
            data = response.read()
            connection.close()
        relay(self, response, data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

    def log_message(self, *args: Any) -> None:
        pass
