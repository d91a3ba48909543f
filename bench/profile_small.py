"""Where one small read's CPU goes, in process: cProfile around raw ASGI calls to the app (no HTTP parser,
no sockets: what is left is pier's own Python).

    python bench/profile_small.py [--requests 5000] [--what tag|digest|head|token|login|page] [--top 30]

Starts a real `pier serve` once to push a small image (bench/small.py), stops it, opens the same data
dir in this process, and calls the app `--requests` times; prints the microseconds per request and the
top functions by cumulative time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import ACCOUNT, NAME, Pier, fill_images
from small import MANIFEST_TYPES, anonymous_token, push_small_image


async def call(
    app: Any, method: str, path: str, query: str, headers: list[tuple[bytes, bytes]], body: bytes = b""
) -> int:
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 5000),
    }
    await app(scope, receive, send)
    return status


async def profile(data_dir: Path, what: str, token: str, digest: str, requests: int, top: int) -> None:
    from pier.app import create_app
    from pier.config import load

    env = {**os.environ, **ACCOUNT, "PIER_DATA_DIR": str(data_dir), "PIER_LOG_LEVEL": "warning"}
    app = create_app(load(None, env))
    headers = [(b"host", b"127.0.0.1:5000"), (b"accept", MANIFEST_TYPES.encode())]
    headers.append((b"authorization", f"Bearer {token}".encode()))
    method, path, query = "GET", f"/v2/{NAME}/manifests/latest", ""
    if what == "digest":
        path = f"/v2/{NAME}/manifests/{digest}"
    elif what == "head":
        method = "HEAD"
    elif what == "token":
        path, query, headers = "/token", f"service=127.0.0.1:5000&scope=repository:{NAME}:pull", headers[:1]
    body = b""
    if what == "login":
        method, path, body, headers = "POST", "/", *signed_login()
    elif what == "page":
        page = {"repositoryName": "pages", "maxResults": 100}
        method, path, body, headers = "POST", "/", *signed_login("DescribeImages", page)
    async with app.router.lifespan_context(app):
        for _ in range(200):
            assert await call(app, method, path, query, headers, body) == 200
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(requests):
            await call(app, method, path, query, headers, body)
        wall, spent = time.perf_counter() - started, time.process_time() - cpu
        print(f"{what}: {wall / requests * 1e6:.0f} µs wall, {spent / requests * 1e6:.0f} µs CPU per request")
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(requests):
            await call(app, method, path, query, headers, body)
        profiler.disable()
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(top)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def signed_login(
    operation: str = "GetAuthorizationToken", payload: dict[str, Any] | None = None
) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """A SigV4-signed call (valid 15 minutes), as botocore sends it: GetAuthorizationToken unless told."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    target = f"SpencerFrontendService.{operation}"
    data = json.dumps(payload or {}).encode()
    request = AWSRequest(
        "POST",
        "http://127.0.0.1:5000/",
        data=data,
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target},
    )
    keys = Credentials(ACCOUNT["PIER_ACCESS_KEY_ID"], ACCOUNT["PIER_SECRET_ACCESS_KEY"])
    SigV4Auth(keys, "ecr-public", "us-east-1").add_auth(request)
    headers = [(k.lower().encode(), v.encode()) for k, v in request.headers.items()]
    return data, [(b"host", b"127.0.0.1:5000"), (b"content-length", str(len(data)).encode()), *headers]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--what", choices=["tag", "digest", "head", "token", "login", "page"], default="tag")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="pier-profile-"))
    try:
        pier = Pier(root, 1)
        try:
            digest = push_small_image(pier)
            token = anonymous_token(pier)
            assert token
            if args.what == "page":
                fill_images(pier, "pages", 1000)
        finally:
            pier.stop()
        asyncio.run(profile(pier.server.data_dir, args.what, token, digest, args.requests, args.top))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
