"""kill -9 in the middle of 8 concurrent pushers (monolithic and chunked /v2/, the ECR layer API), on both
standard backends: after the restart every blob whose push was acknowledged pulls back whole (bytes lost:
0), and nothing published hashes to anything but its name."""

from __future__ import annotations

import contextlib
import random
import signal
import sqlite3
import threading
import time
from typing import Any

import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tests.backends import Backend, assert_blobs_are_whole
from tests.conftest import client
from tests.faults.helpers import MIB, login, sha256, show, v2
from tests.images import push_blob

pytestmark = pytest.mark.faults

PUSHERS = 8
KINDS = ("monolithic", "chunked", "api")
NO_RETRIES = Config(retries={"total_max_attempts": 1}, read_timeout=30, connect_timeout=5)
ENOUGH = 16  # acknowledged pushes before the kill (or DEADLINE seconds, whichever comes first)
DEADLINE = 40.0


def test_kill9_during_concurrent_pushes(make_server: Any, backend: Backend, capsys: pytest.CaptureFixture[str]) -> None:
    server = make_server()
    client(server).create_repository(repositoryName="kill")
    auth, url = login(server), v2(server, "kill")
    acked: dict[str, tuple[str, int]] = {}  # digest -> (kind, size)
    unexpected: list[str] = []  # answers that were neither success nor caused by the kill
    lock = threading.Lock()
    killed = threading.Event()

    def push(index: int) -> None:
        kind = KINDS[index % len(KINDS)]
        rng = random.Random(index)
        ecr = client(server, config=NO_RETRIES)
        with httpx.Client(timeout=30) as http:
            for _ in range(10_000):
                if killed.is_set():
                    return
                size = rng.randint(50_000, 7 * MIB if kind == "api" else 3 * MIB)
                data = rng.randbytes(size)
                digest = sha256(data)
                try:
                    answer = _push(kind, http, ecr, url, auth, data)
                except (httpx.HTTPError, BotoCoreError, ClientError, KeyError) as error:
                    answer = repr(error)
                if answer:
                    if not killed.is_set():
                        with lock:
                            unexpected.append(f"{kind}: {answer}")
                    return
                with lock:
                    acked[digest] = (kind, size)

    threads = [threading.Thread(target=push, args=(i,), name=f"pusher-{i}") for i in range(PUSHERS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        with lock:
            kinds = {kind for kind, _ in acked.values()}
            if (len(acked) >= ENOUGH and len(kinds) == len(KINDS)) or unexpected:
                break
        time.sleep(0.05)
    killed.set()
    server.stop(signal.SIGKILL)
    for thread in threads:
        thread.join(60)
    assert not unexpected, f"pushes failed before the kill: {unexpected[:5]}"
    assert acked, "nothing was acknowledged before the kill"

    server.start()
    lost = {}
    for digest, (kind, size) in acked.items():
        response = httpx.get(f"{url}/blobs/{digest}", follow_redirects=True, timeout=60)
        if response.status_code != 200 or sha256(response.content) != digest or len(response.content) != size:
            lost[digest] = f"{kind} {size} bytes: {show(response)[:120]}"
    assert_blobs_are_whole(backend, server)
    with capsys.disabled():
        by_kind = {k: sum(1 for kind, _ in acked.values() if kind == k) for k in KINDS}
        total = sum(size for _, size in acked.values())
        lost_bytes = sum(acked[d][1] for d in lost)
        print(
            f"\nkill -9 during {PUSHERS} concurrent pushes ({backend.name}): {len(acked)} pushes acknowledged"
            f" {by_kind}, {total / MIB:.1f} MiB; after the restart, bytes lost: {lost_bytes}"
        )
    assert not lost, f"{len(lost)} acknowledged blobs did not come back whole: {list(lost.values())[:5]}"
    if backend.name == "sqlite-fs":
        server.stop()
        with contextlib.closing(sqlite3.connect(server.data_dir / "pier.db")) as database:
            assert database.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def _push(kind: str, http: httpx.Client, ecr: Any, url: str, auth: dict[str, str], data: bytes) -> str:
    """'' when the push was acknowledged, else the answer that was not."""
    digest = sha256(data)
    if kind == "monolithic":
        response = http.post(f"{url}/blobs/uploads/", params={"digest": digest}, content=data, headers=auth)
        return "" if response.status_code == 201 else show(response)
    if kind == "chunked":
        started = http.post(f"{url}/blobs/uploads/", headers=auth)
        if started.status_code != 202:
            return show(started)
        location = started.headers["Location"]
        step = len(data) // 3 + 1
        for offset in range(0, len(data), step):
            chunk = data[offset : offset + step]
            headers = {**auth, "Content-Range": f"{offset}-{offset + len(chunk) - 1}"}
            response = http.patch(location, content=chunk, headers=headers)
            if response.status_code != 202:
                return show(response)
        response = http.put(location, params={"digest": digest}, headers=auth)
        return "" if response.status_code == 201 else show(response)
    return "" if push_blob(ecr, "kill", data) == digest else "CompleteLayerUpload named another digest"
