"""pier serve --workers N: several processes on one port, and none left behind when the parent dies."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import client
from tests.images import push_image


def children(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(pid):
            found.append(int(status.parent.name))
    return found


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


def test_workers_serve_together_and_die_with_their_parent(make_server: Any) -> None:
    server = make_server("workers = 2\n")
    assert server.process is not None
    workers = children(server.process.pid)
    assert len(workers) >= 2
    ecr = client(server)
    ecr.create_repository(repositoryName="multi")
    for i in range(6):  # requests spread over the workers; all see one registry
        push_image(ecr, "multi", f"t{i}", architecture=f"a{i}")
    assert len(ecr.describe_images(repositoryName="multi")["imageDetails"]) == 6
    ready = httpx.get(f"{server.url}/readyz", timeout=30)
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["workers"] == {"status": "ok", "detail": "2 of 2 workers serving"}

    server.stop(signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in workers)
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", server.port)) != 0  # nobody holds the port any more


def test_readyz_counts_the_workers_serving(make_server: Any) -> None:
    """Each worker marks itself serving in the serve's own directory once started: /readyz is 503 until all
    have, so connections made once it is 200 are spread over every worker. A mark whose process is gone or
    is not a worker of this serve (a pid reused) does not count; once all have started, a worker being
    replaced (a certificate reload) leaves /readyz 200; a stop removes the directory."""
    server = make_server("workers = 2\n")
    assert server.process is not None
    marks = server.data_dir / "workers" / str(server.process.pid)
    workers = sorted(int(p.name) for p in marks.iterdir() if p.name.isdigit())
    assert workers == sorted(children(server.process.pid))
    assert (marks / "all-started").exists()
    (marks / "999999999").touch()  # no such process
    (marks / str(os.getpid())).touch()  # alive, but not a worker of this serve
    assert httpx.get(f"{server.url}/readyz", timeout=30).json()["checks"]["workers"]["detail"] == (
        "2 of 2 workers serving"
    )
    (marks / str(workers[0])).unlink()  # as while a reload replaces that worker
    answer = httpx.get(f"{server.url}/readyz", timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["checks"]["workers"] == {"status": "ok", "detail": "1 of 2 workers serving"}
    (marks / "all-started").unlink()  # as before both had started
    answer = httpx.get(f"{server.url}/readyz", timeout=30)
    assert answer.status_code == 503
    assert answer.json()["checks"]["workers"] == {"status": "failing", "detail": "1 of 2 workers serving"}
    assert answer.json()["checks"]["database"]["status"] == "ok"
    (marks / str(workers[0])).touch()
    assert httpx.get(f"{server.url}/readyz", timeout=30).status_code == 200
    server.stop()
    assert not marks.exists()
