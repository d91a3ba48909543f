"""Blobs on S3-compatible object storage, through boto3. Nothing keeps a whole layer on local disk.

Layout under the prefix, drawn once here:
    blobs/<algorithm>/<hex>     a published blob (blobs/sha256/..., blobs/sha512/...)
    uploads/<id>/tail-<k>       the upload's bytes past its k full parts (a few MiB at most); one per k,
                                so a request that wrote past a part boundary and was never acknowledged
                                leaves the acknowledged tail as it was
    uploads/<id>/data           the upload's multipart upload, then (once assembled) its bytes
    quarantine/<algorithm>/<hex>.<UTC time>   bytes pier fsck --repair found corrupt, moved aside
A pier upload is one S3 multipart upload with fixed parts of PART bytes: part k always holds bytes
[(k-1)*PART, k*PART), so a part re-sent after a crash simply replaces itself, and S3's rules (at least
5 MiB a part but the last, at most 10,000 parts) hold whatever chunk sizes clients send: small chunks
gather in the tail object until a part is full. The acknowledged size lives in the metadata store, as
for the filesystem store; whatever lies past it is ignored and overwritten.
Objects and multipart uploads a crash left behind (an upload without a row, a blob without a row, a
copy into place that never finished) are swept by GC once older than its grace window.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from pier import digests
from pier.digests import Hashes, is_digest, is_upload_id
from pier.storage.blobs import (
    BlobBytes,
    DigestMismatch,
    StoredBlob,
    UploadLeftover,
    UploadMissing,
    continue_hashes,
)

PART = 8 * 1024 * 1024
CHUNK = 1024 * 1024
SMALL_BLOB_MAX = 16 * 1024 * 1024  # writer() is for small blobs (logos); layers come through uploads
URL_SECONDS = 900


class S3Location:
    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    def blob(self, digest: str) -> str:
        if not is_digest(digest):
            raise ValueError(f"not a digest: {digest!r}")
        algorithm, hex_digest = digest.split(":", 1)
        return f"{self.prefix}blobs/{algorithm}/{hex_digest}"

    def upload(self, upload_id: str, part: str) -> str:
        if not is_upload_id(upload_id):
            raise ValueError(f"not an upload id: {upload_id!r}")
        return f"{self.prefix}uploads/{upload_id}/{part}"

    def put(self, key: str, data: bytes) -> None:
        """Store an object; S3 checks the bytes it received against their MD5 and refuses any others."""
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentMD5=_md5(data))


class S3BlobWriter:
    """A small blob, written at once on commit (logos; layers arrive as uploads)."""

    def __init__(self, where: S3Location, algorithm: str) -> None:
        self._where = where
        self._buffer = io.BytesIO()
        self._algorithm = algorithm
        self._hash = Hashes([algorithm])

    @property
    def size(self) -> int:
        return self._buffer.tell()

    def write(self, data: bytes) -> None:
        if self._buffer.tell() + len(data) > SMALL_BLOB_MAX:
            raise ValueError("writer() is for small blobs; use an upload")
        self._buffer.write(data)
        self._hash.update(data)

    def digest(self) -> str:
        return self._hash.digest(self._algorithm)

    def commit(self, expected_digest: str | None = None) -> str:
        digest = self.digest()
        if expected_digest is not None and expected_digest != digest:
            raise DigestMismatch(expected_digest, digest)
        self._where.put(self._where.blob(digest), self._buffer.getvalue())
        return digest

    def cancel(self) -> None:
        self._buffer = io.BytesIO()


class S3UploadWriter:
    def __init__(self, store: S3BlobStore, upload_id: str, offset: int, algorithm: str | None) -> None:
        self._store, self._where, self._id = store, store.where, upload_id
        self._parts = offset // PART  # full parts already in the multipart upload
        tail = store.tail(upload_id, self._parts)
        if tail is None or len(tail) < offset % PART:
            raise UploadMissing(upload_id)
        self._tail = bytearray(tail[: offset % PART])
        self._size = offset
        self._hash = continue_hashes(store.hashes, upload_id, offset, algorithm)

    def write(self, data: bytes) -> None:
        self._tail += data
        self._size += len(data)
        if self._hash is not None:
            self._hash.update(data)
        while len(self._tail) >= PART:
            self._store.put_part(self._id, self._parts + 1, bytes(self._tail[:PART]))
            self._parts += 1
            del self._tail[:PART]

    def close(self) -> int:
        tail = bytes(self._tail)
        self._where.put(self._where.upload(self._id, f"tail-{self._parts}"), tail)
        if self._hash is not None:
            self._store.hashes[self._id] = (self._size, self._hash)
            self._store.sent_tails[self._id] = (self._size, _md5_hex(tail))
        return self._size

    def abort(self) -> None:
        pass  # parts and tails past the acknowledged size are replaced when those bytes come again


class S3BlobStore:
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        redirects: bool = True,
    ) -> None:
        # Plain SigV4 and checksums only where S3 requires them: what every S3-compatible store speaks.
        # A few quick retries absorb a flaky store; an outage is answered 503 within seconds, not minutes.
        settings = BotoConfig(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"max_attempts": 4, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
        )
        client = boto3.client(
            "s3",
            endpoint_url=endpoint_url or None,
            region_name=region or "us-east-1",
            aws_access_key_id=access_key_id or None,
            aws_secret_access_key=secret_access_key or None,
            config=settings,
        )
        self.where = S3Location(client, bucket, prefix)
        # For health checks: one attempt, short timeouts, so a check says "failing" instead of waiting.
        self._probe = boto3.client(
            "s3",
            endpoint_url=endpoint_url or None,
            region_name=region or "us-east-1",
            aws_access_key_id=access_key_id or None,
            aws_secret_access_key=secret_access_key or None,
            config=settings.merge(BotoConfig(retries={"total_max_attempts": 1}, connect_timeout=2, read_timeout=3)),
        )
        self.redirects = redirects
        self.hashes: dict[str, tuple[int, Hashes]] = {}  # as in FsBlobStore: an optimisation, never shared
        # What this process sent, so a running hash is trusted only where S3 holds those very bytes (another
        # process that started from a stale size may have replaced a part): upload id -> part number -> MD5,
        # and upload id -> (size, MD5 of the tail at that size).
        self.sent_parts: dict[str, dict[int, str]] = {}
        self.sent_tails: dict[str, tuple[int, str]] = {}

    # Helpers

    def get_bytes(self, key: str) -> bytes | None:
        try:
            return bytes(self.where.client.get_object(Bucket=self.where.bucket, Key=key)["Body"].read())
        except ClientError as error:
            if _missing(error):
                return None
            raise

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            return dict(self.where.client.head_object(Bucket=self.where.bucket, Key=key))
        except ClientError as error:
            if _missing(error):
                return None
            raise

    def _multipart(self, upload_id: str, create: bool) -> str | None:
        """The S3 multipart upload behind a pier upload (the oldest, should two processes race to make one)."""
        w = self.where
        key = w.upload(upload_id, "data")
        found = w.client.list_multipart_uploads(Bucket=w.bucket, Prefix=key).get("Uploads", [])
        found = sorted((u for u in found if u["Key"] == key), key=lambda u: (u["Initiated"], u["UploadId"]))
        if found:
            return str(found[0]["UploadId"])
        if not create:
            return None
        return str(w.client.create_multipart_upload(Bucket=w.bucket, Key=key)["UploadId"])

    def put_part(self, upload_id: str, number: int, data: bytes) -> None:
        w = self.where
        multipart = self._multipart(upload_id, create=True)
        md5 = hashlib.md5(data, usedforsecurity=False).digest()
        w.client.upload_part(
            Bucket=w.bucket,
            Key=w.upload(upload_id, "data"),
            UploadId=multipart,
            PartNumber=number,
            Body=data,
            ContentMD5=base64.b64encode(md5).decode(),  # S3 refuses a part whose bytes arrived other than sent
        )
        self.sent_parts.setdefault(upload_id, {})[number] = md5.hex()

    def tail(self, upload_id: str, parts: int) -> bytes | None:
        """The tail kept after `parts` full parts (an upload begun before tails were numbered has one)."""
        found = self.get_bytes(self.where.upload(upload_id, f"tail-{parts}"))
        return found if found is not None else self.get_bytes(self.where.upload(upload_id, "tail"))

    def _tails(self, upload_id: str) -> list[str]:
        return [item["Key"] for item in self._list(self.where.upload(upload_id, "tail"))]

    # BlobStore

    def ping(self) -> None:
        """The bucket answers (a missing key or a refusal is an answer too; 5xx and no answer are not)."""
        try:
            self._probe.head_object(Bucket=self.where.bucket, Key=f"{self.where.prefix}readyz")
        except ClientError as error:
            status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if status >= 500 or not status:
                raise

    def free_bytes(self) -> None:
        return None

    def writer(self, algorithm: str = digests.CANONICAL) -> S3BlobWriter:
        return S3BlobWriter(self.where, algorithm)

    def exists(self, digest: str) -> bool:
        return self._head(self.where.blob(digest)) is not None

    def local_path(self, digest: str) -> None:
        return None

    def url(self, digest: str) -> str | None:
        """A presigned GET clients may be redirected to, when redirects are on."""
        if not self.redirects:
            return None
        w = self.where
        return str(
            w.client.generate_presigned_url(
                "get_object", Params={"Bucket": w.bucket, "Key": w.blob(digest)}, ExpiresIn=URL_SECONDS
            )
        )

    def read(self, digest: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        w = self.where
        extra = {"Range": f"bytes={start}-{'' if end is None else end - 1}"} if start or end is not None else {}
        body = w.client.get_object(Bucket=w.bucket, Key=w.blob(digest), **extra)["Body"]
        try:
            yield from body.iter_chunks(CHUNK)
        finally:
            body.close()

    def delete(self, digest: str) -> None:
        self.where.client.delete_object(Bucket=self.where.bucket, Key=self.where.blob(digest))

    def _is_blob(self, digest: str) -> bool:
        """Whether the object holds exactly the blob (a failed publish may have left other bytes under its
        name); if so it is touched (copied onto itself), so GC spares it while the caller records it."""
        w = self.where
        try:
            if self._hash_object(w.blob(digest), digests.algorithm_of(digest)) != digest:
                return False
            key = {"Bucket": w.bucket, "Key": w.blob(digest)}
            w.client.copy(key, w.bucket, w.blob(digest), ExtraArgs={"MetadataDirective": "REPLACE"})
        except ClientError as error:
            if _missing(error):
                return False
            raise
        return True

    # Leftovers

    def upload_leftovers(self) -> Iterator[UploadLeftover]:
        w = self.where
        for item in self._list(w.prefix + "uploads/"):
            upload_id, _, part = item["Key"][len(w.prefix + "uploads/") :].partition("/")
            # other names are not ours to judge
            if is_upload_id(upload_id) and (part in ("tail", "data") or _numbered_tail(part)):
                yield UploadLeftover(item["Key"], upload_id, item["LastModified"].timestamp())
        for page in w.client.get_paginator("list_multipart_uploads").paginate(Bucket=w.bucket, Prefix=w.prefix):
            for upload in page.get("Uploads", []):
                key = upload["Key"]
                upload_id, _, part = key[len(w.prefix + "uploads/") :].partition("/")
                if key.startswith(w.prefix + "uploads/") and is_upload_id(upload_id) and part == "data":
                    owner: str | None = upload_id
                elif self._digest_of_key(key) is not None:
                    owner = None  # a copy into place (publish_upload) that never finished
                else:
                    continue
                yield UploadLeftover(key, owner, upload["Initiated"].timestamp(), upload["UploadId"])

    def remove_upload_leftover(self, leftover: UploadLeftover, modified_before: float) -> bool:
        w = self.where
        if not leftover.name.startswith((w.prefix + "uploads/", w.prefix + "blobs/")):
            raise ValueError(f"not an upload leftover: {leftover.name!r}")
        try:
            if leftover.multipart_id is not None:
                # Written since? Its parts say (some S3-compatible stores report no true Initiated time).
                where = {"Bucket": w.bucket, "Key": leftover.name, "UploadId": leftover.multipart_id}
                for page in w.client.get_paginator("list_parts").paginate(**where):
                    if any(part["LastModified"].timestamp() >= modified_before for part in page.get("Parts", [])):
                        return False
                w.client.abort_multipart_upload(**where)
                return True
        except ClientError as error:
            if _missing(error):
                return False
            raise
        return self._remove_if_older(leftover.name, modified_before)

    def stored_blobs(self) -> Iterator[StoredBlob]:
        for algorithm in digests.ALGORITHMS:
            for item in self._list(f"{self.where.prefix}blobs/{algorithm}/"):
                digest = self._digest_of_key(item["Key"])
                if digest is not None:
                    yield StoredBlob(digest, item["Size"], item["LastModified"].timestamp())

    def _digest_of_key(self, key: str) -> str | None:
        """The digest a key under blobs/ names, or None for any other key."""
        folder, _, name = key.removeprefix(self.where.prefix + "blobs/").partition("/")
        digest = f"{folder}:{name}"
        return digest if key.startswith(self.where.prefix + "blobs/") and is_digest(digest) else None

    def _hash_object(self, key: str, algorithm: str) -> str:
        """The digest of an object's bytes in `algorithm`, read by streaming."""
        hashed = Hashes([algorithm])
        body = self.where.client.get_object(Bucket=self.where.bucket, Key=key)["Body"]
        try:
            for chunk in body.iter_chunks(CHUNK):
                hashed.update(chunk)
        finally:
            body.close()
        return hashed.digest(algorithm)

    def remove_stored_blob(self, digest: str, modified_before: float) -> bool:
        # Not atomic, as S3 cannot be: safe because the caller holds the blob's row (every publish happens
        # while its row is written), and a publish refreshes LastModified besides.
        return self._remove_if_older(self.where.blob(digest), modified_before)

    def _list(self, prefix: str) -> Iterator[dict[str, Any]]:
        w = self.where
        for page in w.client.get_paginator("list_objects_v2").paginate(Bucket=w.bucket, Prefix=prefix):
            yield from page.get("Contents", [])

    def _remove_if_older(self, key: str, modified_before: float) -> bool:
        head = self._head(key)
        if head is None or head["LastModified"].timestamp() >= modified_before:
            return False
        self.where.client.delete_object(Bucket=self.where.bucket, Key=key)
        return True

    def acquire_upload(self, upload_id: str) -> None:
        """S3 has no lock to take: a writer that started from a stale size can only replace parts with other
        bytes, which verify_upload notices (it trusts a running hash only where every part's checksum is
        the one this process sent)."""

    def release_upload(self, upload_id: str) -> None:
        pass

    def start_upload(self, upload_id: str, algorithm: str | None = None) -> None:
        self.where.put(self.where.upload(upload_id, "tail-0"), b"")
        self.hashes[upload_id] = (0, Hashes([algorithm] if algorithm else digests.WHILE_UNKNOWN))

    def open_upload(self, upload_id: str, offset: int, algorithm: str | None = None) -> S3UploadWriter:
        if self._head(self.where.upload(upload_id, "data")) is not None:
            raise UploadMissing(upload_id)  # already assembled for completion: it takes no more bytes
        return S3UploadWriter(self, upload_id, offset, algorithm)

    def _assemble(self, upload_id: str, size: int) -> bool:
        """Turn the parts and the tail into the object uploads/<id>/data (done once; then it is there).
        Whether S3 holds, in every part, exactly the bytes this process sent (so a running hash of them
        can be trusted); False when another process sent some, or the upload was assembled before."""
        w = self.where
        data_key = w.upload(upload_id, "data")
        if self._head(data_key) is not None:
            return False
        parts = size // PART
        tail = self.tail(upload_id, parts)
        if tail is None or len(tail) < size % PART:
            raise UploadMissing(upload_id)
        tail = tail[: size % PART]
        trusted = self.sent_tails.get(upload_id) == (size, _md5_hex(tail))
        multipart = self._multipart(upload_id, create=False)
        if parts == 0:
            w.put(data_key, tail)
            if multipart:
                w.client.abort_multipart_upload(Bucket=w.bucket, Key=data_key, UploadId=multipart)
            return trusted
        if multipart is None:
            raise UploadMissing(upload_id)
        if tail:
            self.put_part(upload_id, parts + 1, tail)
        listed = w.client.list_parts(Bucket=w.bucket, Key=data_key, UploadId=multipart, MaxParts=10_000)
        wanted = parts + (1 if tail else 0)
        chosen = [p for p in listed.get("Parts", []) if p["PartNumber"] <= wanted]
        if len(chosen) != wanted:
            raise UploadMissing(upload_id)
        sent = self.sent_parts.get(upload_id, {})
        trusted = trusted and all(str(p["ETag"]).strip('"') == sent.get(p["PartNumber"]) for p in chosen)
        w.client.complete_multipart_upload(
            Bucket=w.bucket,
            Key=data_key,
            UploadId=multipart,
            MultipartUpload={"Parts": [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in chosen]},
        )
        assembled = self._head(data_key)
        if assembled is None or assembled["ContentLength"] != size:
            w.client.delete_object(Bucket=w.bucket, Key=data_key)  # assembled wrong: the next try starts over
            raise UploadMissing(
                f"{upload_id} assembled to {assembled and assembled['ContentLength']} bytes, not {size}"
            )
        return trusted

    def verify_upload(self, upload_id: str, size: int, expected_digest: str | None) -> str:
        w = self.where
        if not self._tails(upload_id):
            head = self._head(w.blob(expected_digest)) if expected_digest else None
            if expected_digest and head and head["ContentLength"] == size and self._is_blob(expected_digest):
                return expected_digest  # published before a crash; only forgetting the upload was left
            raise UploadMissing(upload_id)
        trusted = self._assemble(upload_id, size)
        algorithm = digests.algorithm_of(expected_digest) if expected_digest else digests.CANONICAL
        cached = self.hashes.get(upload_id)
        if trusted and cached and cached[0] == size and cached[1].covers(algorithm):
            digest = cached[1].digest(algorithm)
        else:  # re-read from S3, streaming: correct whichever processes sent the parts
            digest = self._hash_object(w.upload(upload_id, "data"), algorithm)
        if expected_digest is not None and expected_digest != digest:
            raise DigestMismatch(expected_digest, digest)
        return digest

    def publish_upload(self, upload_id: str, size: int, digest: str) -> None:
        w = self.where
        self.hashes.pop(upload_id, None)
        data_key = w.upload(upload_id, "data")
        if self._head(data_key) is not None:
            # Managed copy: a multipart copy above 5 GB, on the server side, no bytes through pier.
            w.client.copy({"Bucket": w.bucket, "Key": data_key}, w.bucket, w.blob(digest))
        published = self._head(w.blob(digest))
        if published is None or published["ContentLength"] != size:
            raise UploadMissing(f"{upload_id}: the blob {digest} is not in place with {size} bytes")
        self._forget(upload_id)

    def forget_hashes(self, upload_id: str) -> None:
        self.hashes.pop(upload_id, None)
        self.sent_tails.pop(upload_id, None)

    def cancel_upload(self, upload_id: str) -> None:
        self.hashes.pop(upload_id, None)
        multipart = self._multipart(upload_id, create=False)
        if multipart:
            w = self.where
            w.client.abort_multipart_upload(Bucket=w.bucket, Key=w.upload(upload_id, "data"), UploadId=multipart)
        self._forget(upload_id)

    def _forget(self, upload_id: str) -> None:
        w = self.where
        self.sent_parts.pop(upload_id, None)
        self.sent_tails.pop(upload_id, None)
        keys = [*self._tails(upload_id), w.upload(upload_id, "data")]
        w.client.delete_objects(Bucket=w.bucket, Delete={"Objects": [{"Key": key} for key in keys]})

    # Scrub and backup

    @contextlib.contextmanager
    def open_blob(self, digest: str) -> Iterator[BlobBytes | None]:
        w = self.where
        try:
            response = w.client.get_object(Bucket=w.bucket, Key=w.blob(digest))
        except ClientError as error:
            if not _missing(error):
                raise
            response = None
        if response is None:
            yield None
            return
        body = response["Body"]
        try:  # the answer's own ETag and time: read and fingerprinted are the same bytes
            yield BlobBytes(int(response["ContentLength"]), _fingerprint(response), body.iter_chunks(CHUNK))
        finally:
            body.close()

    def fingerprint(self, digest: str) -> str | None:
        head = self._head(self.where.blob(digest))
        return None if head is None else _fingerprint(head)

    def quarantine_blob(self, digest: str, fingerprint: str) -> str | None:
        w = self.where
        key = w.blob(digest)
        head = self._head(key)
        if head is None or _fingerprint(head) != fingerprint:
            return None
        algorithm, hex_digest = digest.split(":", 1)
        target = f"{w.prefix}quarantine/{algorithm}/{hex_digest}.{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        # Copied on the server side (a managed copy: multipart above 5 GB), then removed from under the digest.
        w.client.copy({"Bucket": w.bucket, "Key": key}, w.bucket, target)
        w.client.delete_object(Bucket=w.bucket, Key=key)
        return f"s3://{w.bucket}/{target}"

    def link_blob(self, digest: str, target: Path) -> bool:
        if self._head(self.where.blob(digest)) is None:
            raise FileNotFoundError(digest)
        return False  # objects are copied

    def put_blob_file(self, digest: str, source: Path) -> None:
        w = self.where
        # A managed upload (multipart for big files); S3 checks each part against its checksum.
        w.client.upload_file(str(source), w.bucket, w.blob(digest))
        head = self._head(w.blob(digest))
        if head is None or head["ContentLength"] != source.stat().st_size:
            raise OSError(f"{digest} is not in place in s3://{w.bucket} after its upload")


def _fingerprint(answer: dict[str, Any]) -> str:
    """Which object: its ETag (the bytes' MD5 for a single-part object), size and last write."""
    return f"{answer['ETag']}:{answer['ContentLength']}:{answer['LastModified'].timestamp()}"


def _md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


def _missing(error: ClientError) -> bool:
    return str(error.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound", "NoSuchUpload")


def _numbered_tail(name: str) -> bool:
    return name.startswith("tail-") and name[5:].isdigit()
