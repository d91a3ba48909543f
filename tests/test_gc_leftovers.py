"""`pier gc` sweeps what crashes leave behind: upload bytes without an upload row, blob bytes without a blob
row, writes in progress. Leftovers are planted where a crash leaves them (the filesystem layout is a
contract), in both blob stores, and GC runs as `pier gc` against a live server."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import threading
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.backends import BUCKET, Backend, PostgresS3, assert_blobs_are_whole
from tests.conftest import OWNER, client
from tests.images import config, digest_of, image_manifest, layer, push_blob, push_image
from tests.server import PierServer

HOUR = 3600.0
REPORT = re.compile(r"(would remove|removed) (\d+) leftover upload file\(s\), (\d+) blob file\(s\) without a row")


class Planter:
    """Puts leftovers in a server's blob store where a crash leaves them, and tells what is still there.

    Names are paths under <data-dir>/blobs, or S3 keys ("multipart:<key>" for a multipart upload)."""

    def __init__(self, backend: Backend, server: PierServer) -> None:
        self.s3 = isinstance(backend, PostgresS3)
        if isinstance(backend, PostgresS3):
            self.client = backend.s3.client()
            self.prefix = backend._prefix(server)
        self.root = server.data_dir / "blobs"

    def upload(self, upload_id: str | None = None, size: int = 1000) -> list[str]:
        """An upload's bytes, as left when its row was never committed or is gone."""
        upload_id = upload_id or str(uuid.uuid4())
        if not self.s3:
            return [self._file(f"uploads/{upload_id}", os.urandom(size))]
        tail = f"{self.prefix}uploads/{upload_id}/tail"
        self.client.put_object(Bucket=BUCKET, Key=tail, Body=os.urandom(size))
        return [tail, self._multipart(f"{self.prefix}uploads/{upload_id}/data")]

    def write_in_progress(self) -> list[str]:
        """A small blob's write (FS tmp/), or a copy into place (an S3 multipart upload on a blob's key)."""
        if not self.s3:
            return [self._file(f"tmp/{secrets.token_hex(16)}", b"half a logo")]
        return [self._multipart(f"{self.prefix}blobs/sha256/{secrets.token_hex(32)}")]

    def blob(self, data: bytes, digest: str | None = None) -> str:
        """Bytes published under a digest whose row was never committed (`digest` other than theirs: corrupt)."""
        hex_digest = (digest or digest_of(data)).removeprefix("sha256:")
        if not self.s3:
            return self._file(f"sha256/{hex_digest[:2]}/{hex_digest}", data)
        key = f"{self.prefix}blobs/sha256/{hex_digest}"
        self.client.put_object(Bucket=BUCKET, Key=key, Body=data)
        return key

    def age(self, names: list[str]) -> None:
        """Make them older than any grace window: an old mtime on disk; in S3, whose LastModified cannot be set,
        the caller waits and runs GC with --grace-seconds 0."""
        if not self.s3:
            for name in names:
                old = time.time() - HOUR
                os.utime(self.root / name, (old, old))

    def present(self, name: str) -> bool:
        if not self.s3:
            return (self.root / name).exists()
        if name.startswith("multipart:"):
            key = name.removeprefix("multipart:")
            uploads = self.client.list_multipart_uploads(Bucket=BUCKET, Prefix=key).get("Uploads", [])
            return any(upload["Key"] == key for upload in uploads)
        return bool(self.client.list_objects_v2(Bucket=BUCKET, Prefix=name).get("KeyCount"))

    def upload_path(self, upload_id: str) -> str:
        """The name of a live upload's bytes (on S3, its tail after no full part: these uploads are smaller
        than one 8 MiB part)."""
        return f"{self.prefix}uploads/{upload_id}/tail-0" if self.s3 else f"uploads/{upload_id}"

    def remove(self, name: str) -> None:
        if self.s3:
            self.client.delete_object(Bucket=BUCKET, Key=name)
        else:
            (self.root / name).unlink()

    def modified(self, name: str) -> float:
        if self.s3:
            return float(self.client.head_object(Bucket=BUCKET, Key=name)["LastModified"].timestamp())
        return (self.root / name).stat().st_mtime

    def _file(self, name: str, data: bytes) -> str:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return name

    def _multipart(self, key: str) -> str:
        started = self.client.create_multipart_upload(Bucket=BUCKET, Key=key)
        self.client.upload_part(Bucket=BUCKET, Key=key, UploadId=started["UploadId"], PartNumber=1, Body=b"part")
        return f"multipart:{key}"


def run_gc(server: PierServer, grace: float, *flags: str) -> tuple[str, int, int]:
    """(verb, upload leftovers, blob leftovers) from `pier gc`'s report."""
    output = server.run_cli("gc", "--grace-seconds", str(int(grace)), *flags)
    found = REPORT.search(output)
    assert found, output
    return found[1], int(found[2]), int(found[3])


def wait_until_old(planter: Planter) -> None:
    if planter.s3:
        time.sleep(1.5)  # S3's LastModified is whole seconds: GC at grace 0 must see them in the past


def pull(server: PierServer, repository: str, digest: str) -> bytes:
    response = httpx.get(f"{server.url}/v2/{OWNER.alias}/{repository}/blobs/{digest}", follow_redirects=True)
    assert response.status_code == 200, response.text
    return response.content


def test_old_leftovers_are_swept_and_counted_live_uploads_and_blobs_kept(make_server: Any, backend: Backend) -> None:
    server = make_server()
    ecr = client(server)
    ecr.create_repository(repositoryName="kept")
    manifest, _ = push_image(ecr, "kept", "v1", layers=2)
    before = backend.blob_digests(server)
    # A live upload, idle for longer than the grace window: its row keeps it.
    live = ecr.initiate_layer_upload(repositoryName="kept")["uploadId"]
    first = os.urandom(9 * 1024 * 1024)  # more than a part: on S3, a live multipart upload too
    ecr.upload_layer_part(
        repositoryName="kept", uploadId=live, partFirstByte=0, partLastByte=len(first) - 1, layerPartBlob=first
    )
    planter = Planter(backend, server)
    uploads = [*planter.upload(), *planter.upload(), *planter.write_in_progress()]
    unrecorded = os.urandom(5000)
    blobs = [planter.blob(unrecorded), planter.blob(b"corrupt: not these bytes", digest_of(b"the real ones"))]
    planter.age([*uploads, *blobs, planter.upload_path(live)])
    wait_until_old(planter)

    assert run_gc(server, 0, "--dry-run") == ("would remove", len(uploads), len(blobs))
    assert all(planter.present(name) for name in [*uploads, *blobs])

    assert run_gc(server, 0) == ("removed", len(uploads), len(blobs))
    assert not any(planter.present(name) for name in [*uploads, *blobs])
    assert planter.present(planter.upload_path(live))
    assert backend.blob_digests(server) == before
    assert run_gc(server, 0) == ("removed", 0, 0)

    # What has rows is whole and usable: the image pulls, the live upload finishes.
    document = json.loads(manifest)
    for descriptor in [document["config"], *document["layers"]]:
        assert digest_of(pull(server, "kept", descriptor["digest"])) == descriptor["digest"]
    rest = os.urandom(1000)
    ecr.upload_layer_part(
        repositoryName="kept",
        uploadId=live,
        partFirstByte=len(first),
        partLastByte=len(first) + len(rest) - 1,
        layerPartBlob=rest,
    )
    digest = digest_of(first + rest)
    ecr.complete_layer_upload(repositoryName="kept", uploadId=live, layerDigests=[digest])
    assert pull(server, "kept", digest) == first + rest
    assert_blobs_are_whole(backend, server)


def test_young_leftovers_are_kept(make_server: Any, backend: Backend) -> None:
    server = make_server()
    planter = Planter(backend, server)
    names = [*planter.upload(), *planter.write_in_progress(), planter.blob(os.urandom(300))]
    assert run_gc(server, HOUR) == ("removed", 0, 0)
    assert all(planter.present(name) for name in names)


def test_leftover_bytes_of_a_blob_uploaded_again_are_replaced(make_server: Any, backend: Backend) -> None:
    server = make_server()
    ecr = client(server)
    ecr.create_repository(repositoryName="again")
    planter = Planter(backend, server)
    data = os.urandom(40_000)
    name = planter.blob(b"bytes a failed publish left", digest_of(data))  # corrupt, and without a row
    planter.age([name])
    assert push_blob(ecr, "again", data) == digest_of(data)
    assert pull(server, "again", digest_of(data)) == data
    assert time.time() - planter.modified(name) < 60  # the publish refreshed it: not a leftover
    wait_until_old(planter)
    assert run_gc(server, HOUR) == ("removed", 0, 0)  # it has a row now
    assert pull(server, "again", digest_of(data)) == data
    assert_blobs_are_whole(backend, server)


def test_finishing_an_upload_whose_bytes_were_published_before_a_crash(make_server: Any, backend: Backend) -> None:
    """The upload's bytes are gone and a blob of its size is in place: trusted only if it hashes right."""
    server = make_server()
    ecr = client(server)
    ecr.create_repository(repositoryName="crashed")
    planter = Planter(backend, server)
    for trustworthy in (False, True):
        data = os.urandom(30_000)
        upload_id = ecr.initiate_layer_upload(repositoryName="crashed")["uploadId"]
        ecr.upload_layer_part(
            repositoryName="crashed",
            uploadId=upload_id,
            partFirstByte=0,
            partLastByte=len(data) - 1,
            layerPartBlob=data,
        )
        planter.remove(planter.upload_path(upload_id))  # published, then pier died before forgetting the upload
        name = planter.blob(data if trustworthy else bytes(len(data)), digest_of(data))
        planter.age([name])
        if not trustworthy:
            with pytest.raises(ecr.exceptions.UploadNotFoundException):
                ecr.complete_layer_upload(repositoryName="crashed", uploadId=upload_id, layerDigests=[digest_of(data)])
            layers = ecr.batch_check_layer_availability(repositoryName="crashed", layerDigests=[digest_of(data)])
            assert layers["layers"] == []
            continue
        ecr.complete_layer_upload(repositoryName="crashed", uploadId=upload_id, layerDigests=[digest_of(data)])
        assert time.time() - planter.modified(name) < 60  # touched: GC spares it while it gets its row
        assert pull(server, "crashed", digest_of(data)) == data


def test_gc_while_clients_push_over_old_leftovers_loses_nothing(make_server: Any, backend: Backend) -> None:
    """Pushers publish blobs whose digests have old leftover bytes (some corrupt) while GC sweeps them."""
    grace = 10  # far longer than one push takes, as in test_scale
    server = make_server()
    ecr = client(server)
    ecr.create_repository(repositoryName="busy")
    planter = Planter(backend, server)
    shared = layer({"base": b"shared base layer" * 5000})
    own = {
        (n, r): layer({f"c{n}r{r}": hashlib.sha256(f"{n}/{r}".encode()).digest() * 700})
        for n in range(6)
        for r in range(3)
    }
    configs = {key: config(f"c{key[0]}r{key[1]}", layers=[shared, blob]) for key, blob in own.items()}
    planted = []
    for i, blob in enumerate([shared, *own.values(), *configs.values()]):
        planted.append(planter.blob(blob.data if i % 2 else b"corrupt", blob.digest))
    doomed = [planter.blob(os.urandom(2000)) for _ in range(30)]
    planted += doomed + [name for _ in range(10) for name in planter.upload()]
    planter.age(planted)
    if planter.s3:
        time.sleep(grace + 1)

    pushed: list[bytes] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def pusher(n: int) -> None:
        mine = client(server)
        try:
            for r in range(3):
                for blob in (shared, own[n, r], configs[n, r]):
                    if not mine.batch_check_layer_availability(repositoryName="busy", layerDigests=[blob.digest])[
                        "layers"
                    ]:
                        with contextlib.suppress(mine.exceptions.LayerAlreadyExistsException):
                            push_blob(mine, "busy", blob.data)
                manifest = image_manifest(configs[n, r], [shared, own[n, r]])
                mine.put_image(repositoryName="busy", imageManifest=manifest.decode(), imageTag=f"c{n}r{r}")
                pushed.append(manifest)
        except BaseException as error:  # reported below
            failures.append(error)

    swept = [0, 0]

    def collector() -> None:
        while not stop.is_set():
            _, uploads, blobs = run_gc(server, grace)
            swept[0] += uploads
            swept[1] += blobs

    gc_thread = threading.Thread(target=collector)
    gc_thread.start()
    threads = [threading.Thread(target=pusher, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    gc_thread.join()
    assert not failures, failures
    assert len(pushed) == 18
    _, uploads, blobs = run_gc(server, grace)
    swept[0] += uploads
    swept[1] += blobs

    for manifest in pushed:
        document = json.loads(manifest)
        for descriptor in [document["config"], *document["layers"]]:
            assert digest_of(pull(server, "busy", descriptor["digest"])) == descriptor["digest"]
    assert not any(planter.present(name) for name in doomed)
    assert swept[0] >= 10 * (2 if planter.s3 else 1) and swept[1] >= len(doomed)
    assert backend.upload_leftovers(server) == []
    assert_blobs_are_whole(backend, server)


def test_the_server_sweeps_leftovers_when_it_runs_gc(make_server: Any, backend: Backend) -> None:
    server = make_server("gc_interval_seconds = 1\ngc_grace_seconds = 1\n")
    planter = Planter(backend, server)
    names = [*planter.upload(), planter.blob(os.urandom(100))]
    planter.age(names)
    deadline = time.monotonic() + 30
    while any(planter.present(name) for name in names):
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.5)

    def swept() -> tuple[int, int]:
        reports = [(int(uploads), int(blobs)) for _, uploads, blobs in REPORT.findall(server.log())]
        return sum(u for u, _ in reports), sum(b for _, b in reports)

    # The report is logged once the pass has ended, a moment after the files went away.
    while swept() != (len(names) - 1, 1) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert swept() == (len(names) - 1, 1)
