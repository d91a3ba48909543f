"""A full disk: pier's data dir on a 40 MiB tmpfs, filled to just under the size of the blob being pushed.

Whatever the door (monolithic /v2/, chunked /v2/, the ECR layer API, a catalog logo), pier must never
acknowledge bytes it did not store: the request fails with 507 and the body the contract fixes, nothing
published hashes to anything but its name, and once the filler is deleted the same upload resumes from
its acknowledged offset and the blob pulls back whole. Two backends: SQLite + filesystem (all of it on
the tmpfs) and PostgreSQL metadata + filesystem blobs on the tmpfs. SQLite's own file meets the full disk
too (a metadata write on a full disk answers 507, and pier recovers when space comes back).

Needs root (mount); skipped with a message otherwise.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.backends import Backend, assert_blobs_are_whole
from tests.conftest import client
from tests.faults.conftest import stop_for_good
from tests.faults.helpers import (
    MIB,
    acknowledged,
    assert_oci_error,
    client_error,
    fill,
    finish_upload,
    free_bytes,
    login,
    patch_chunk,
    pull,
    sha256,
    show,
    start_upload,
    upload_status,
    v2,
    wait_until,
)
from tests.server import PierServer

pytestmark = pytest.mark.faults

NO_RETRIES = Config(retries={"total_max_attempts": 1}, read_timeout=60)
SHORT_OF_ROOM = 64 * 1024  # the filler leaves the blob's size less this much free
REPOSITORY = "disk"


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 40 MiB tmpfs, unmounted at teardown (after the servers that use it have stopped)."""
    if os.geteuid() != 0:
        pytest.skip("the full-disk tests mount a tmpfs, which needs root (CI runs them as root)")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(mount)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode})")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "--lazy", str(mount)], capture_output=True, check=False)


@pytest.fixture(params=["sqlite-fs", "postgresql-fs"])
def on_disk(request: pytest.FixtureRequest, disk: Path, servers: Callable[..., PierServer]) -> Iterator[PierServer]:
    """pier with its data dir on the tmpfs; with PostgreSQL, only the blobs (and pier's small files) are there."""
    config = request.getfixturevalue("postgres").database_line() if request.param == "postgresql-fs" else ""
    server = servers(config, data_dir=disk)
    yield server
    stop_for_good(server)  # before the tmpfs is unmounted


def prepare(server: PierServer) -> tuple[Any, dict[str, str], str]:
    ecr = client(server, config=NO_RETRIES)
    ecr.create_repository(repositoryName=REPOSITORY)
    return ecr, login(server), v2(server, REPOSITORY)


def assert_storage_full_on_api(error: ClientError) -> None:
    code, status, headers, message = client_error(error)
    assert (status, code) == (507, "ServerException"), f"expected 507 ServerException, got {status} {code}: {message}"
    assert headers.get("x-amzn-errortype", "").startswith("ServerException"), headers
    assert "storage is full" in message, message


def assert_nothing_bad_published(server: PierServer, ecr: Any, digest: str) -> None:
    """No file under blobs/sha256/ hashes to anything but its name; the blob that did not fit is not served
    and not called AVAILABLE."""
    assert_blobs_are_whole(Backend(), server)
    head = httpx.head(f"{v2(server, REPOSITORY)}/blobs/{digest}", timeout=30)
    assert head.status_code == 404, f"a blob that did not fit is served: {show(head)}"
    layers = ecr.batch_check_layer_availability(repositoryName=REPOSITORY, layerDigests=[digest])["layers"]
    assert not [layer for layer in layers if layer.get("layerAvailability") == "AVAILABLE"], layers


def assert_disk_not_ready(server: PierServer) -> None:
    ready = httpx.get(f"{server.url}/readyz", timeout=30)
    assert ready.status_code == 503, f"/readyz on a full disk: {show(ready)}"
    assert ready.json()["checks"]["disk"]["status"] == "failing", ready.text


def assert_pulls_whole(server: PierServer, digest: str, data: bytes) -> None:
    pulled = pull(server, REPOSITORY, digest)
    assert len(pulled) == len(data)
    assert sha256(pulled) == digest, "the blob pulled back does not hash to its digest"
    assert_blobs_are_whole(Backend(), server)


def test_monolithic_push_on_a_full_disk(on_disk: PierServer, disk: Path) -> None:
    server = on_disk
    ecr, auth, url = prepare(server)
    data = os.urandom(12 * MIB)
    digest = sha256(data)
    filler = fill(disk, leave=len(data) - SHORT_OF_ROOM)
    room = free_bytes(disk)

    response = httpx.post(f"{url}/blobs/uploads/", params={"digest": digest}, content=data, headers=auth, timeout=60)
    assert response.status_code != 201, f"pier acknowledged 12 MiB with {room} bytes free"
    assert_oci_error(response, 507, "INSUFFICIENT_STORAGE", "storage is full")
    assert_nothing_bad_published(server, ecr, digest)
    assert_disk_not_ready(server)
    location = response.headers.get("Location")
    assert location, "the 507 of a monolithic POST must name its upload (Location) so the client can resume it"

    filler.unlink()
    offset = upload_status(location, auth)
    assert offset == 0, "a monolithic POST that failed acknowledged nothing"
    done = httpx.put(
        location,
        params={"digest": digest},
        content=data[offset:],
        headers={**auth, "Content-Range": f"{offset}-{len(data) - 1}"},
        timeout=60,
    )
    assert done.status_code == 201, show(done)
    assert_pulls_whole(server, digest, data)


def test_chunked_push_on_a_full_disk(on_disk: PierServer, disk: Path) -> None:
    server = on_disk
    ecr, auth, url = prepare(server)
    data, chunk = os.urandom(12 * MIB), 4 * MIB
    digest = sha256(data)
    location = start_upload(url, auth)
    filler = fill(disk, leave=len(data) - SHORT_OF_ROOM)
    room = free_bytes(disk)

    acked, failed = 0, None
    for offset in range(0, len(data), chunk):
        response = patch_chunk(location, auth, data[offset : offset + chunk], offset)
        if response.status_code != 202:
            failed = response
            break
        acked = acknowledged(response.headers["Range"])
        assert acked == offset + len(data[offset : offset + chunk]), response.headers["Range"]
    if failed is None:
        failed = finish_upload(location, auth, digest)
        assert failed.status_code != 201, f"pier acknowledged 12 MiB of chunks with {room} bytes free"
    assert_oci_error(failed, 507, "INSUFFICIENT_STORAGE", "storage is full")
    assert_nothing_bad_published(server, ecr, digest)
    assert_disk_not_ready(server)
    assert upload_status(location, auth) == acked, "the upload must stay at its last acknowledged offset"

    filler.unlink()
    offset = upload_status(location, auth)
    assert offset == acked
    rest = patch_chunk(location, auth, data[offset:], offset)
    assert rest.status_code == 202, show(rest)
    assert acknowledged(rest.headers["Range"]) == len(data)
    done = finish_upload(location, auth, digest)
    assert done.status_code == 201, show(done)
    assert_pulls_whole(server, digest, data)


def test_layer_api_push_on_a_full_disk(on_disk: PierServer, disk: Path) -> None:
    server = on_disk
    ecr, _, _ = prepare(server)
    data, part = os.urandom(15 * MIB), 5 * MIB
    digest = sha256(data)
    upload_id = ecr.initiate_layer_upload(repositoryName=REPOSITORY)["uploadId"]
    filler = fill(disk, leave=len(data) - SHORT_OF_ROOM)
    room = free_bytes(disk)

    def send_part(first: int) -> None:
        piece = data[first : first + part]
        ecr.upload_layer_part(
            repositoryName=REPOSITORY,
            uploadId=upload_id,
            partFirstByte=first,
            partLastByte=first + len(piece) - 1,
            layerPartBlob=piece,
        )

    acked, failure = 0, None
    for first in range(0, len(data), part):
        try:
            send_part(first)
        except ClientError as error:
            failure = error
            break
        acked = first + len(data[first : first + part])
    if failure is None:
        try:
            ecr.complete_layer_upload(repositoryName=REPOSITORY, uploadId=upload_id, layerDigests=[digest])
        except ClientError as error:
            failure = error
        else:
            pytest.fail(f"pier acknowledged a 15 MiB layer (its parts and CompleteLayerUpload) with {room} bytes free")
    assert_storage_full_on_api(failure)
    assert_nothing_bad_published(server, ecr, digest)

    filler.unlink()
    for first in range(acked, len(data), part):  # the next part after the last acknowledged one
        send_part(first)
    done = ecr.complete_layer_upload(repositoryName=REPOSITORY, uploadId=upload_id, layerDigests=[digest])
    assert done["layerDigest"] == digest
    assert_pulls_whole(server, digest, data)


def test_logo_on_a_full_disk(on_disk: PierServer, disk: Path) -> None:
    server = on_disk
    ecr, _, _ = prepare(server)
    logo = b"\x89PNG\r\n\x1a\n" + os.urandom(100_000)
    filler = fill(disk)  # completely

    failure = None
    try:
        ecr.put_repository_catalog_data(repositoryName=REPOSITORY, catalogData={"logoImageBlob": logo})
    except ClientError as error:
        failure = error
    if failure is None:
        pytest.fail(f"pier acknowledged a 100 kB logo with {free_bytes(disk)} bytes free")
    assert_storage_full_on_api(failure)
    catalog = ecr.get_repository_catalog_data(repositoryName=REPOSITORY)["catalogData"]
    assert "logoUrl" not in catalog, f"a logo that was not stored is named: {catalog}"
    assert_blobs_are_whole(Backend(), server)

    filler.unlink()
    stored = ecr.put_repository_catalog_data(repositoryName=REPOSITORY, catalogData={"logoImageBlob": logo})
    served = httpx.get(stored["catalogData"]["logoUrl"], timeout=30)
    assert served.status_code == 200 and served.content == logo
    assert_blobs_are_whole(Backend(), server)


def test_sqlite_cannot_grow(disk: Path, servers: Callable[..., PierServer]) -> None:
    """Metadata writes on a full disk: SQLite's file (and its WAL) cannot grow. 507, then normal service."""
    server = servers(data_dir=disk)
    ecr = client(server, config=NO_RETRIES)
    ecr.create_repository(repositoryName="before")
    about = "a full disk " * 1500  # ~18 kB a row: the WAL outgrows the room it has within a few hundred
    filler = fill(disk)

    created: list[str] = []
    failure = None
    for index in range(2000):
        name = f"full/r{index:04d}"
        try:
            ecr.create_repository(repositoryName=name, catalogData={"aboutText": about})
        except ClientError as error:
            failure = error
            break
        created.append(name)
    assert failure is not None, f"{len(created)} repositories created on a full disk, {free_bytes(disk)} bytes free"
    assert_storage_full_on_api(failure)
    assert_disk_not_ready(server)

    filler.unlink()

    def creates() -> bool:
        try:
            ecr.create_repository(repositoryName="after")
            return True
        except ClientError as error:
            return error.response["Error"]["Code"] == "RepositoryAlreadyExistsException"

    assert wait_until(creates, timeout=10, interval=0.5), "pier does not write again after space is freed"

    def names() -> set[str]:
        pages = ecr.get_paginator("describe_repositories").paginate()
        return {r["repositoryName"] for page in pages for r in page["repositories"]}

    assert {"before", "after", *created} <= names()
    server.restart()  # what was acknowledged on the full disk is durable
    assert {"before", "after", *created} <= names()
    stop_for_good(server)
    with contextlib.closing(sqlite3.connect(disk / "pier.db")) as database:
        assert database.execute("PRAGMA integrity_check").fetchone() == ("ok",)
