"""Layer uploads: start, append parts, finish into a blob the repository may use.

The ECR layer API (InitiateLayerUpload, UploadLayerPart, CompleteLayerUpload) and /v2/ uploads share
these steps. A part is acknowledged only once its bytes are written and the upload's size is recorded,
so a crash of pier loses at most the part in flight and a restarted server continues from the recorded
size. The bytes reach the disk (fsync) once, before the blob is published: if the machine stops first,
the upload is lost, never a blob.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace

from pier import errors
from pier.core import limits
from pier.core.access import find_repository
from pier.core.accounts import Account
from pier.core.context import Core
from pier.digests import is_sha256
from pier.storage.blobs import DigestMismatch, UploadMissing
from pier.storage.metadata import RepositoryRow, UploadRow


@dataclass(frozen=True)
class LayerStatus:
    digest: str
    size: int
    media_type: str | None


def start(core: Core, repository: RepositoryRow) -> str:
    if len(core.meta.upload_ids(repository.id)) >= core.max_uploads:
        raise errors.TooManyUploads("uploads in progress in one repository", core.max_uploads)
    upload_id = str(uuid.uuid4())
    now = core.clock()
    core.blobs.start_upload(upload_id)
    core.meta.insert_upload(UploadRow(upload_id, repository.id, 0, 0, False, now, now))
    return upload_id


def find(core: Core, repository: RepositoryRow, upload_id: str) -> UploadRow:
    upload = core.meta.get_upload(upload_id)
    if upload is None or upload.repository_id != repository.id:
        raise errors.UploadNotFound(upload_id)
    return upload


def append(
    core: Core,
    repository: RepositoryRow,
    upload_id: str,
    offset: int | None,
    parts: Iterable[bytes],
    expected_length: int | None = None,
) -> int:
    """Append bytes at `offset` (None: wherever the upload stands); the new size once durable.

    With expected_length, a body of any other length is SizeInvalid and nothing of it is kept.
    """
    with core.locks.hold(upload_id):
        upload = find(core, repository, upload_id)
        new_size = _write(core, repository, upload, offset, parts, expected_length)
        _record(core, repository, upload, new_size)
        return new_size


def append_and_finish(
    core: Core,
    repository: RepositoryRow,
    upload_id: str,
    offset: int | None,
    parts: Iterable[bytes],
    expected_length: int | None,
    digest: str,
) -> bool:
    """The last bytes and the digest in one request: one transaction fewer than append() then finish().

    If finishing fails (a wrong digest, say), the bytes stay acknowledged, as if appended alone.
    """
    with core.locks.hold(upload_id):
        upload = find(core, repository, upload_id)
        new_size = _write(core, repository, upload, offset, parts, expected_length)
        try:
            return _finish(core, repository, replace(upload, size=new_size), digest, ecr_rules=False)
        except errors.PierError:
            _record(core, repository, upload, new_size)
            raise


def _write(
    core: Core,
    repository: RepositoryRow,
    upload: UploadRow,
    offset: int | None,
    parts: Iterable[bytes],
    expected_length: int | None,
) -> int:
    """Write the parts after the acknowledged bytes; the new size (not yet recorded)."""
    if offset is not None and offset != upload.size:
        raise errors.InvalidLayerPart(
            repository.registry_id,
            repository.name,
            upload.id,
            max(upload.size - 1, 0),
            f"The part starts at byte {offset}, but the upload has {upload.size} bytes: "
            f"the next part must start at byte {upload.size}",
        )
    try:
        writer = core.blobs.open_upload(upload.id, upload.size)
    except UploadMissing:
        raise errors.UploadNotFound(upload.id) from None
    size = upload.size
    try:
        for part in parts:
            size += len(part)
            if size > limits.MAX_LAYER_SIZE:
                raise errors.LimitExceeded("bytes in one layer", limits.MAX_LAYER_SIZE)
            writer.write(part)
        if expected_length is not None and size - upload.size != expected_length:
            raise errors.SizeInvalid(expected_length, size - upload.size)
    except BaseException:
        writer.abort()
        raise
    return writer.close()


def _record(core: Core, repository: RepositoryRow, upload: UploadRow, new_size: int) -> None:
    """Acknowledge the bytes written: the upload's size moves, unless another request moved it first."""
    small = upload.small_inner_part or (upload.size > 0 and upload.last_part_size < limits.MIN_PART_SIZE)
    if core.meta.advance_upload(upload.id, upload.size, new_size, core.clock(), small):
        return
    if core.meta.get_upload(upload.id) is None:
        # Cancelled or expired while we wrote: what we wrote may have brought its bytes back; remove them.
        core.blobs.cancel_upload(upload.id)
        raise errors.UploadNotFound(upload.id)
    raise errors.InvalidLayerPart(
        repository.registry_id,
        repository.name,
        upload.id,
        max(upload.size - 1, 0),
        "Another request changed the upload meanwhile",
    )


def finish(core: Core, repository: RepositoryRow, upload_id: str, digest: str, *, ecr_rules: bool) -> bool:
    """Publish the upload as blob `digest` in the repository; False if the repository already had it.

    ecr_rules adds ECR's checks on parts and duplicates (the OCI API has neither).
    """
    with core.locks.hold(upload_id):
        return _finish(core, repository, find(core, repository, upload_id), digest, ecr_rules=ecr_rules)


def _finish(core: Core, repository: RepositoryRow, upload: UploadRow, digest: str, *, ecr_rules: bool) -> bool:
    if upload.size == 0 and ecr_rules:
        raise errors.EmptyUpload(upload.id)
    if ecr_rules and upload.small_inner_part:
        raise errors.LayerPartTooSmall(limits.MIN_PART_SIZE)
    if ecr_rules and core.meta.get_repository_blobs(repository.id, [digest]):
        cancel(core, upload)
        raise errors.LayerAlreadyExists(digest)
    try:
        core.blobs.verify_upload(upload.id, upload.size, digest)
    except DigestMismatch as mismatch:
        raise errors.InvalidLayer(mismatch.expected, mismatch.actual) from None
    except UploadMissing:
        raise errors.UploadNotFound(upload.id) from None

    def publish() -> None:
        core.blobs.publish_upload(upload.id, upload.size, digest)

    return core.meta.finish_upload(upload.id, repository.id, digest, upload.size, core.clock(), publish)


def expire(core: Core) -> int:
    """Remove uploads idle for longer than the expiry, bytes and all; how many went."""
    stale = core.meta.stale_uploads(core.clock() - core.upload_expiry)
    for upload_id in stale:
        core.meta.delete_upload(upload_id)
        core.blobs.cancel_upload(upload_id)
    return len(stale)


def size_of(core: Core, repository: RepositoryRow, upload_id: str) -> int:
    return find(core, repository, upload_id).size


def cancel(core: Core, upload: UploadRow) -> None:
    core.meta.delete_upload(upload.id)
    core.blobs.cancel_upload(upload.id)


# The ECR layer operations


def initiate_layer_upload(core: Core, caller: Account, registry_id: str | None, name: str) -> tuple[str, int]:
    repository = find_repository(core, caller, registry_id, name, "InitiateLayerUpload", registry_must_exist=True)
    return start(core, repository), limits.PART_SIZE


def upload_layer_part(
    core: Core,
    caller: Account,
    registry_id: str | None,
    name: str,
    upload_id: str,
    first_byte: int,
    last_byte: int,
    data: bytes,
) -> tuple[str, int]:
    repository = find_repository(core, caller, registry_id, name, "UploadLayerPart", registry_must_exist=True)
    if not data or last_byte != first_byte + len(data) - 1:
        upload = find(core, repository, upload_id)
        raise errors.InvalidLayerPart(
            repository.registry_id,
            name,
            upload_id,
            max(upload.size - 1, 0),
            f"partLastByte must be partFirstByte + {len(data)} - 1 for a part of {len(data)} bytes"
            if data
            else "The part is empty",
        )
    append(core, repository, upload_id, first_byte, [data])
    return repository.registry_id, last_byte


def complete_layer_upload(
    core: Core, caller: Account, registry_id: str | None, name: str, upload_id: str, digests: list[str]
) -> tuple[str, str]:
    repository = find_repository(core, caller, registry_id, name, "CompleteLayerUpload", registry_must_exist=True)
    if len(digests) != 1:
        raise errors.InvalidParameter("Invalid parameter at 'layerDigests': exactly one digest is expected")
    digest = digests[0]
    if not is_sha256(digest):
        raise errors.InvalidParameter(
            f"Invalid parameter at 'layerDigests': '{digest}' is not a sha256 digest (sha256:<64 hex digits>)"
        )
    finish(core, repository, upload_id, digest, ecr_rules=True)
    return repository.registry_id, digest


def batch_check_layer_availability(
    core: Core, caller: Account, registry_id: str | None, name: str, digests: list[str]
) -> tuple[list[LayerStatus], list[tuple[str, str, str]]]:
    """(available layers, failures as (digest, code, reason))."""
    repository = find_repository(
        core, caller, registry_id, name, "BatchCheckLayerAvailability", registry_must_exist=True
    )
    valid = [d for d in dict.fromkeys(digests) if is_sha256(d)]
    found = core.meta.get_repository_blobs(repository.id, valid)
    layers: list[LayerStatus] = []
    failures: list[tuple[str, str, str]] = []
    for digest in dict.fromkeys(digests):
        if not is_sha256(digest):
            failures.append((digest, "InvalidLayerDigest", "The digest is not sha256:<64 lowercase hex digits>"))
        elif digest not in found:
            failures.append((digest, "MissingLayerDigest", "The layer is not in the repository"))
        else:
            size, media_type = found[digest]
            layers.append(LayerStatus(digest, size, media_type))
    return layers, failures
