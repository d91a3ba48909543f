"""Layer uploads: start, append parts, finish into a blob the repository may use.

The ECR layer API (InitiateLayerUpload, UploadLayerPart, CompleteLayerUpload) and /v2/ uploads share
these steps. A part is acknowledged only once its bytes are written and the upload's size is recorded,
so a crash of pier loses at most the part in flight and a restarted server continues from the recorded
size. The bytes reach the disk (fsync) once, before the blob is published: if the machine stops first,
the upload is lost, never a blob.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from pier import digests, errors
from pier.core import gc, limits, upload_ids
from pier.core.access import find_repository
from pier.core.blobs import check_digest
from pier.core.context import Core
from pier.core.principals import Caller
from pier.storage.blobs import DigestMismatch, UploadBusy, UploadMissing, UploadWriter
from pier.storage.metadata import UPLOAD_ENDED, RepositoryRow, UploadRow


@dataclass(frozen=True)
class LayerStatus:
    digest: str
    size: int
    media_type: str | None


def start(core: Core, repository: RepositoryRow, algorithm: str | None = None) -> str:
    """A new upload's id. Nothing is written: the id proves which repository it was issued for and when
    (core/upload_ids.py), and the upload's row and file are made with its first bytes.

    `algorithm`, when the client names one, is carried in the id: the bytes are hashed in it as they come
    (else in digests.WHILE_UNKNOWN until a digest names the algorithm)."""
    if algorithm is not None and (problem := digests.algorithm_problem(algorithm)):
        raise errors.DigestInvalid(problem)
    return upload_ids.issue(core.signer, repository.id, core.clock(), algorithm)


@dataclass(frozen=True)
class Unwritten(UploadRow):
    """An upload no bytes were acknowledged for yet: it has no row, only its id."""


def find(core: Core, repository: RepositoryRow, upload_id: str) -> UploadRow:
    upload = core.meta.get_upload(upload_id)
    if upload is not None:
        if upload.repository_id != repository.id or upload.size == UPLOAD_ENDED:
            raise errors.UploadNotFound(upload_id)
        return upload
    issued = upload_ids.issued_at(core.signer, upload_id, repository.id)
    if issued is None or issued < core.clock() - core.upload_expiry:
        raise errors.UploadNotFound(upload_id)
    return Unwritten(upload_id, repository.id, 0, 0, False, issued, issued)


class Append:
    """One request's bytes appended to an upload: opened, written batch by batch, then acknowledged.

    The door calls each step in a worker thread and waits for the client's next bytes on its event loop,
    so no thread waits for a client. Only one request writes to an upload at a time: a second one is
    refused at once (it would have to wait for a client it knows nothing of). Every step after open
    is serialised, so abort() issued while a write runs takes effect once that write returns.
    """

    def __init__(
        self,
        core: Core,
        repository: RepositoryRow,
        upload_id: str,
        offset: int | None,
        expected_length: int | None = None,
        digest: str | None = None,
    ) -> None:
        """`digest`: the blob's, when this request finishes the upload (acknowledge_and_finish); it tells the
        algorithm, so the bytes are hashed in that one only."""
        if digest is not None:
            check_digest(digest)
        self._core, self._repository, self._expected = core, repository, expected_length
        self._steps = threading.Lock()
        self._writer: UploadWriter | None = None
        self.upload_id = upload_id
        self._stored = _hold(core, repository, upload_id)
        self._held = True
        try:
            # Read while holding the upload: no other process moves it meanwhile, so writing starts from
            # what is acknowledged now, never from a stale size.
            self.upload = find(core, repository, upload_id)
            if offset is not None and offset != self.upload.size:
                raise _out_of_order(repository, self.upload, offset)
            algorithm = digests.algorithm_of(digest) if digest is not None else None
            if isinstance(self.upload, Unwritten) or not self._stored:
                if self.upload.size:
                    raise errors.UploadNotFound(upload_id)  # acknowledged bytes the store no longer has
                if digest is None and isinstance(self.upload, Unwritten):
                    _check_room(core, repository)  # refused before its bytes come, not after
                _make(core, repository, upload_id, algorithm, self._stored)  # the first bytes make its file
                self._stored = True
            try:
                self._writer = core.blobs.open_upload(upload_id, self.upload.size, algorithm)
            except UploadMissing:
                raise errors.UploadNotFound(upload_id) from None
        except BaseException:
            self._release()
            raise
        self.size = self.upload.size

    def write(self, parts: Iterable[bytes]) -> None:
        """Write the next parts (a full disk raises; what was acknowledged before stays as it was)."""
        with self._steps:
            writer = self._live()
            try:
                for part in parts:
                    if self.size + len(part) > limits.MAX_LAYER_SIZE:
                        raise errors.LimitExceeded("bytes in one layer", limits.MAX_LAYER_SIZE)
                    writer.write(part)
                    self.size += len(part)
            except BaseException:
                self._stop(writer.abort)
                raise

    def acknowledge(self) -> int:
        """Record the bytes written: the upload's new size, once it survives a crash of pier."""
        with self._steps:
            new_size = self._close()
            try:
                self._record(new_size)
            finally:
                self._release()
            return new_size

    def acknowledge_and_finish(self, digest: str) -> bool:
        """The last bytes and the digest in one request: one transaction fewer than acknowledge() then
        finish(). If finishing fails (a wrong digest, a store away), the bytes stay acknowledged, as if
        appended alone (when the metadata store can record that)."""
        with self._steps:
            new_size = self._close()
            try:
                try:
                    return _finish(
                        self._core, self._repository, replace(self.upload, size=new_size), digest, ecr_rules=False
                    )
                except BaseException:
                    # Whatever failed (a wrong digest, a commit, a store), the bytes written stay
                    # acknowledged if they can be, so the client resumes or finishes from there.
                    with contextlib.suppress(Exception):
                        self._record(new_size)
                    raise
            finally:
                self._release()

    def abort(self) -> None:
        """Keep nothing of this request (the upload stays as last acknowledged). Safe to call twice."""
        with self._steps:
            if self._writer is not None:
                self._stop(self._writer.abort)

    def _record(self, new_size: int) -> None:
        """Acknowledge the bytes written. If that fails, what this process hashed of them is forgotten: another
        process may write other bytes in their place, and finishing must hash those, not trust these."""
        try:
            _record(self._core, self._repository, self.upload, new_size)
        except BaseException:
            self._core.blobs.forget_hashes(self.upload_id)
            raise

    def _live(self) -> UploadWriter:
        if self._writer is None:
            raise errors.UploadNotFound(self.upload.id)  # aborted: this request writes no more
        return self._writer

    def _close(self) -> int:
        writer = self._live()
        if self._expected is not None and self.size - self.upload.size != self._expected:
            self._stop(writer.abort)
            raise errors.SizeInvalid(self._expected, self.size - self.upload.size)
        self._writer = None
        try:
            return writer.close()
        except BaseException:
            self._release()
            raise

    def _stop(self, how: Callable[[], None]) -> None:
        self._writer = None
        try:
            how()
            if isinstance(self.upload, Unwritten) and self._stored:
                with contextlib.suppress(Exception):  # else the expiry sweep removes them (expire)
                    _discard(self._core, self.upload_id)
        finally:
            self._release()

    def _release(self) -> None:
        """Let go of the upload, in the store and in this process (once, whichever step ends the request)."""
        if self._held:
            self._held = False
            _let_go(self._core, self.upload_id, self._stored)


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
    appending = Append(core, repository, upload_id, offset, expected_length)
    appending.write(parts)
    return appending.acknowledge()


def append_received(
    core: Core,
    repository: RepositoryRow,
    upload_id: str,
    offset: int | None,
    parts: list[bytes],
    expected_length: int | None,
    digest: str | None = None,
    written: Callable[[int], None] | None = None,
) -> int:
    """A body the door has received whole already (a small one): appended, and with `digest` finished, in
    one call (one thread hop instead of three). The new size once durable (0 once finished); written(n)
    is told the bytes written to the store."""
    appending = Append(core, repository, upload_id, offset, expected_length, digest)
    try:
        appending.write(parts)
        if written is not None:
            written(sum(map(len, parts)))
        if digest is not None:
            appending.acknowledge_and_finish(digest)
            return 0
        return appending.acknowledge()
    except BaseException:
        appending.abort()  # nothing of it kept unless acknowledged (a second abort does nothing)
        raise


def _hold(core: Core, repository: RepositoryRow, upload_id: str) -> bool:
    """Hold the upload in this process and in the store, never waiting: another request writing to it (here
    or in another process) means this one is refused at once. Whether the store has its bytes at all
    (False: it was published, or lost in a crash; only finishing or starting it again can tell)."""
    if not core.locks.try_acquire(upload_id):
        raise _busy(core, repository, upload_id)
    try:
        core.blobs.acquire_upload(upload_id)
    except UploadMissing:
        return False
    except UploadBusy:
        core.locks.release(upload_id)
        raise _busy(core, repository, upload_id) from None
    except BaseException:
        core.locks.release(upload_id)
        raise
    return True


def _make(core: Core, repository: RepositoryRow, upload_id: str, algorithm: str | None, held: bool) -> None:
    """Start, in the store, an upload nothing was acknowledged for (its first bytes), and hold it (`held`:
    _hold found bytes of it already, which are not acknowledged: they start again)."""
    try:
        core.blobs.start_upload(upload_id, algorithm or upload_ids.declared_algorithm(upload_id))
        if not held:
            core.blobs.acquire_upload(upload_id)
    except (FileExistsError, UploadBusy):  # another request made it at this moment, and is writing to it
        raise _busy(core, repository, upload_id) from None
    except UploadMissing:  # cancelled at this moment
        raise errors.UploadNotFound(upload_id) from None


def _check_room(core: Core, repository: RepositoryRow) -> None:
    """TooManyUploads if the repository has max_uploads in progress (counted again when the row is written)."""
    if len(core.meta.upload_ids(repository.id)) >= core.max_uploads:
        raise errors.TooManyUploads("uploads in progress in one repository", core.max_uploads)


def _discard(core: Core, upload_id: str) -> None:
    """Remove the bytes of an upload that has no row: nothing of them was acknowledged (unless another
    request recorded some meanwhile, which a store without locks (S3) allows: then they stay)."""
    if core.meta.get_upload(upload_id) is None:
        core.blobs.cancel_upload(upload_id)


def _let_go(core: Core, upload_id: str, stored: bool) -> None:
    try:
        if stored:
            core.blobs.release_upload(upload_id)
    finally:
        core.locks.release(upload_id)


def _busy(core: Core, repository: RepositoryRow, upload_id: str) -> errors.InvalidLayerPart:
    upload = find(core, repository, upload_id)
    return errors.InvalidLayerPart(
        repository.registry_id,
        repository.name,
        upload_id,
        max(upload.size - 1, 0),
        "Another request is writing to this upload; send the next part once it has been answered",
    )


def _out_of_order(repository: RepositoryRow, upload: UploadRow, offset: int) -> errors.InvalidLayerPart:
    return errors.InvalidLayerPart(
        repository.registry_id,
        repository.name,
        upload.id,
        max(upload.size - 1, 0),
        f"The part starts at byte {offset}, but the upload has {upload.size} bytes: "
        f"the next part must start at byte {upload.size}",
    )


def _record(core: Core, repository: RepositoryRow, upload: UploadRow, new_size: int) -> None:
    """Acknowledge the bytes written: the upload's size moves, unless another request moved it first. An
    upload's first bytes write its row, and count against the repository's uploads in progress."""
    if isinstance(upload, Unwritten):
        now = core.clock()
        row = UploadRow(upload.id, repository.id, new_size, new_size, False, now, now)
        try:
            inserted = core.meta.insert_upload(row, core.max_uploads)
        except BaseException:
            with contextlib.suppress(Exception):  # else the expiry sweep removes them (expire)
                _discard(core, upload.id)  # nothing of it is acknowledged
            raise
        if inserted:
            return
        if core.meta.get_upload(upload.id) is None:
            core.blobs.cancel_upload(upload.id)  # nothing of it was acknowledged
            _check_room(core, repository)
            raise errors.UploadNotFound(upload.id)  # the repository was deleted meanwhile
    else:
        small = upload.small_inner_part or (upload.size > 0 and upload.last_part_size < limits.MIN_PART_SIZE)
        if core.meta.advance_upload(upload.id, upload.size, new_size, core.clock(), small):
            return
    now_row = core.meta.get_upload(upload.id)
    if now_row is None or now_row.size == UPLOAD_ENDED:
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
    stored = _hold(core, repository, upload_id)
    try:
        upload = find(core, repository, upload_id)
        if not isinstance(upload, Unwritten) or ecr_rules:
            return _finish(core, repository, upload, digest, ecr_rules=ecr_rules)
        _make(core, repository, upload_id, None, stored)  # no bytes at all: an empty blob (ECR refuses it)
        stored = True
        try:
            return _finish(core, repository, upload, digest, ecr_rules=ecr_rules)
        except BaseException:
            with contextlib.suppress(Exception):  # else the expiry sweep removes them (expire)
                _discard(core, upload_id)
            raise
    finally:
        _let_go(core, upload_id, stored)


def _finish(core: Core, repository: RepositoryRow, upload: UploadRow, digest: str, *, ecr_rules: bool) -> bool:
    check_digest(digest, "layerDigests" if ecr_rules else None)
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

    try:
        recorded = not isinstance(upload, Unwritten)
        return core.meta.finish_upload(upload.id, repository.id, digest, upload.size, core.clock(), publish, recorded)
    except UploadMissing:  # the bytes went between verifying and publishing (GC took unrecorded bytes)
        raise errors.UploadNotFound(upload.id) from None


def expire(core: Core) -> int:
    """Remove uploads idle for longer than the expiry, bytes and all; how many went. The rows of uploads that
    ended go too, once their ids have expired (an id issued before its row was written is older), and so do
    bytes no row stands for that were last written before the expiry: those of an upload whose first
    request failed (or whose process stopped) before its row was written, whose id has expired since."""
    before = core.clock() - core.upload_expiry
    stale = core.meta.stale_uploads(before)
    for upload_id in stale:
        core.meta.delete_upload(upload_id)
        core.blobs.cancel_upload(upload_id)
    core.meta.forget_ended_uploads(before)
    for leftover in gc.upload_leftovers(core, before):
        gc.remove_upload_leftover(core, leftover, before)
    return len(stale)


def size_of(core: Core, repository: RepositoryRow, upload_id: str) -> int:
    return find(core, repository, upload_id).size


def cancel(core: Core, upload: UploadRow) -> None:
    core.meta.end_upload(upload.id, upload.repository_id, core.clock())
    core.blobs.cancel_upload(upload.id)


# The ECR layer operations


def initiate_layer_upload(core: Core, caller: Caller, registry_id: str | None, name: str) -> tuple[str, int]:
    repository = find_repository(core, caller, registry_id, name, "InitiateLayerUpload", registry_must_exist=True)
    return start(core, repository), limits.PART_SIZE


def upload_layer_part(
    core: Core,
    caller: Caller,
    registry_id: str | None,
    name: str,
    upload_id: str,
    first_byte: int,
    last_byte: int,
    parts: Iterable[bytes],
    length: int,
) -> tuple[str, int]:
    """Append a part of `length` bytes (`parts`, which may be made as they are written: an exception
    raised while they are leaves the upload as it was)."""
    repository = find_repository(core, caller, registry_id, name, "UploadLayerPart", registry_must_exist=True)
    if not length or last_byte != first_byte + length - 1:
        upload = find(core, repository, upload_id)
        raise errors.InvalidLayerPart(
            repository.registry_id,
            name,
            upload_id,
            max(upload.size - 1, 0),
            f"partLastByte must be partFirstByte + {length} - 1 for a part of {length} bytes"
            if length
            else "The part is empty",
        )
    append(core, repository, upload_id, first_byte, parts, expected_length=length)
    return repository.registry_id, last_byte


def complete_layer_upload(
    core: Core, caller: Caller, registry_id: str | None, name: str, upload_id: str, layer_digests: list[str]
) -> tuple[str, str]:
    repository = find_repository(core, caller, registry_id, name, "CompleteLayerUpload", registry_must_exist=True)
    if len(layer_digests) != 1:
        raise errors.InvalidParameter("Invalid parameter at 'layerDigests': exactly one digest is expected")
    digest = layer_digests[0]
    check_digest(digest, "layerDigests")
    finish(core, repository, upload_id, digest, ecr_rules=True)
    return repository.registry_id, digest


def batch_check_layer_availability(
    core: Core, caller: Caller, registry_id: str | None, name: str, layer_digests: list[str]
) -> tuple[list[LayerStatus], list[tuple[str, str, str]]]:
    """(available layers, failures as (digest, code, reason))."""
    repository = find_repository(
        core, caller, registry_id, name, "BatchCheckLayerAvailability", registry_must_exist=True
    )
    valid = [d for d in dict.fromkeys(layer_digests) if digests.is_digest(d)]
    found = core.meta.get_repository_blobs(repository.id, valid)
    layers: list[LayerStatus] = []
    failures: list[tuple[str, str, str]] = []
    for digest in dict.fromkeys(layer_digests):
        if (problem := digests.problem(digest)) is not None:
            failures.append((digest, "InvalidLayerDigest", problem))
        elif digest not in found:
            failures.append((digest, "MissingLayerDigest", "The layer is not in the repository"))
        else:
            size, media_type = found[digest]
            layers.append(LayerStatus(digest, size, media_type))
    return layers, failures
