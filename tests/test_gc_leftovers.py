"""`pier gc` sweeps what crashes leave behind: upload bytes without an upload row, blob bytes without a blob
row, writes in progress. Leftovers are planted where a crash leaves them (the filesystem layout is a
contract), in both blob stores, and GC runs as `pier gc` against a live server."""

from __future__ import annotations

import os
import secrets
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.backends import BUCKET, Backend, PostgresS3
from tests.conftest import OWNER, client
from tests.images import digest_of
from tests.server import PierServer

HOUR = 3600.0


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
        """The name of a live upload's bytes (the part every upload has)."""
        return f"{self.prefix}uploads/{upload_id}/tail" if self.s3 else f"uploads/{upload_id}"

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


def pull(server: PierServer, repository: str, digest: str) -> bytes:
    response = httpx.get(f"{server.url}/v2/{OWNER.alias}/{repository}/blobs/{digest}", follow_redirects=True)
    assert response.status_code == 200, response.text
    return response.content


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
