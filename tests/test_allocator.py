"""A request body's memory is reused by the next request, not mapped and faulted in afresh for each one
(server.py sets glibc's thresholds). Counted in the serving process's page faults, which are not timings:
a MiB mapped afresh is 256 faults of 4 KiB pages, whatever the machine's speed. Two workers: Granian's
multi-process server hands a worker a 1 MiB body as one block (measured: 216 faults per push before)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import OWNER, client, owner_env
from tests.oci.helpers import bearer
from tests.test_workers import children

MIB = 1024 * 1024
WARM = 10  # pushes that let the heap grow to what a request needs
COUNTED = 20


def minor_faults(pid: int) -> int:
    """Of the process and its children (the workers of `pier serve`)."""
    total = 0
    for each in [pid, *children(pid)]:
        try:
            total += int(Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()[7])
        except OSError:
            continue
    return total


def faults_per_push(server: Any) -> float:
    """Page faults of the serving process per 1 MiB blob pushed through /v2/ in one request."""
    ecr = client(server)
    ecr.create_repository(repositoryName="heap")
    url = f"{server.url}/v2/{OWNER.alias}/heap/blobs/uploads/"
    head = os.urandom(MIB - 8)
    with httpx.Client(headers=bearer(server, ecr), timeout=60) as http:

        def push(i: int) -> None:
            data = head + i.to_bytes(8, "big")
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            assert http.post(url, params={"digest": digest}, content=data).status_code == 201

        for i in range(WARM):
            push(i)
        before = minor_faults(server.process.pid)
        for i in range(WARM, WARM + COUNTED):
            push(i)
        return (minor_faults(server.process.pid) - before) / COUNTED


def test_request_bodies_reuse_the_heap(make_plain_server: Any) -> None:
    server = make_plain_server("workers = 2\n")
    per_push = faults_per_push(server)
    assert per_push < 64, f"{per_push:.0f} page faults per 1 MiB push: its body was mapped afresh"


def test_glibc_tunables_of_the_operator_win(make_plain_server: Any) -> None:
    """GLIBC_TUNABLES naming a threshold leaves glibc as the operator set it: here every block of a MiB or more
    mapped on its own, so each body is faulted in afresh (which also shows the count above can see it)."""
    env = {**owner_env(), "GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=1048576"}
    server = make_plain_server("workers = 2\n", env=env)
    per_push = faults_per_push(server)
    assert per_push > 128, f"{per_push:.0f} page faults per 1 MiB push: the operator's threshold was not kept"
