"""Bytes a process wrote and hashed but could not acknowledge (its database went away as it recorded them)
are never trusted later: finishing hashes what the store holds, not what that process once wrote.

Two pier processes share one PostgreSQL database and one data dir, as `pier serve --workers` or several
servers on one disk do. Process one writes a chunk whose size it cannot record (PostgreSQL is stopped while
the chunk's body is on its way); process two, once PostgreSQL is back, writes other bytes of the same
length at the same offset, acknowledged. Process one is then asked to finish the upload under the digest
of the bytes it never acknowledged: it must refuse, and publish the upload only under the digest of the
bytes stored.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import client
from tests.faults.helpers import (
    PrivatePostgres,
    finish_upload,
    login,
    patch_chunk,
    pull,
    sha256,
    stalled_patch,
    start_upload,
    target_of,
    v2,
)
from tests.server import PierServer

pytestmark = pytest.mark.faults

MIB = 1024 * 1024


def held_by_a_request(upload: Path, timeout: float = 30) -> None:
    """Wait until a request of pier holds the upload (its flock on the upload's file): the request has read
    the upload's acknowledged size and will write after it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fd = os.open(upload, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return
        finally:
            os.close(fd)  # and with it our own lock, if we got it
        time.sleep(0.02)
    raise AssertionError(f"no request took hold of {upload.name} within {timeout} s")


def test_bytes_whose_size_was_never_recorded_are_not_trusted_at_finish(
    servers: Callable[..., PierServer], postgres: PrivatePostgres
) -> None:
    database = postgres.database_line()
    one = servers(database)
    two = servers(database, data_dir=one.data_dir)
    client(one).create_repository(repositoryName="unrecorded")
    auth = login(one)
    location = start_upload(v2(one, "unrecorded"), auth)
    upload_id = target_of(location).split("?")[0].rsplit("/", 1)[1]
    elsewhere = two.url + target_of(location)  # the same upload, through process two

    first = os.urandom(MIB)
    assert patch_chunk(location, auth, first, 0).status_code == 202
    never_recorded, stored = os.urandom(2 * MIB), os.urandom(2 * MIB)

    with stalled_patch(one, location, auth, len(first), len(never_recorded), never_recorded[:100]) as stalled:
        held_by_a_request(one.data_dir / "blobs" / "uploads" / upload_id)
        postgres.stop()
        try:
            stalled.send(never_recorded[100:])
            answer = stalled.response(timeout=60)
        finally:
            postgres.start()
    assert answer.status_code >= 500, answer.status_code
    upload = one.data_dir / "blobs" / "uploads" / upload_id
    assert upload.stat().st_size == len(first) + len(never_recorded)  # written (and hashed), not acknowledged

    resumed = patch_chunk(elsewhere, auth, stored, len(first))
    assert resumed.status_code == 202, resumed.text
    assert resumed.headers["Range"] == f"0-{len(first) + len(stored) - 1}"

    refused = finish_upload(location, auth, sha256(first + never_recorded))
    assert refused.status_code == 400, refused.text
    assert refused.json()["errors"][0]["code"] == "DIGEST_INVALID"

    digest = sha256(first + stored)
    finished = finish_upload(location, auth, digest)
    assert finished.status_code == 201, finished.text
    assert pull(two, "unrecorded", digest) == first + stored
    assert httpx.head(f"{v2(one, 'unrecorded')}/blobs/{sha256(first + never_recorded)}").status_code == 404
