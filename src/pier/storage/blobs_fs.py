"""Blobs on a local filesystem.

Layout under the root, drawn once here:
    <algorithm>/<first two hex>/<hex>   a published blob, never modified (sha256/..., sha512/...)
    tmp/<random>                    a write in progress; removed on cancel, swept by GC after a crash
    uploads/<upload id>             a resumable upload: its acknowledged bytes, and maybe a tail that was
                                    written but not acknowledged (dropped on the next append)
    quarantine/<algorithm>/<hex>.<UTC time>   bytes pier fsck --repair found corrupt, moved aside (never
                                    read again by pier; kept for whoever wants to look, removed by hand)
A blob is written to tmp/, fsynced, then os.replace()d to its final name and the directory fsynced,
so a crash at any moment leaves either the whole blob or nothing under <algorithm>/. A blob whose row was
never committed, and an upload whose row is gone, are leftovers GC sweeps once older than its grace
window (by modification time, which every publish refreshes). The layout is a contract: tests outside
pier plant leftovers in it.

An upload's parts are acknowledged once written (they survive pier being killed: they are in the
kernel's page cache) and fsynced once, when the upload is verified for publishing, so no part waits
for the disk on its own. If the machine itself stops before that sync, the next append finds the file
shorter than acknowledged and the upload is gone, and the digest check at the end catches anything else
the disk lost. Writeback is started beside the transfer every FLUSH_EVERY bytes, so the final fsync has
little left to wait for.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from pier import digests
from pier.digests import Hashes, is_digest, is_upload_id
from pier.files import fsync_dir, write_all
from pier.storage.blobs import (
    BlobBytes,
    DigestMismatch,
    StoredBlob,
    UploadBusy,
    UploadLeftover,
    UploadMissing,
    continue_hashes,
)

CHUNK = 1024 * 1024
FLUSH_EVERY = 32 * 1024 * 1024  # bytes an upload writes before writeback is started beside it


class FsBlobWriter:
    def __init__(self, store: FsBlobStore, algorithm: str) -> None:
        self._store = store
        self._path = store.tmp_dir / secrets.token_hex(16)
        self._file = open(self._path, "xb", buffering=0)  # noqa: SIM115 - closed by commit/cancel
        self._algorithm = algorithm
        self._hash = Hashes([algorithm])
        self._size = 0

    @property
    def size(self) -> int:
        return self._size

    def write(self, data: bytes) -> None:
        write_all(self._file.fileno(), data)
        self._hash.update(data)
        self._size += len(data)

    def digest(self) -> str:
        return self._hash.digest(self._algorithm)

    def commit(self, expected_digest: str | None = None) -> str:
        digest = self.digest()
        if expected_digest is not None and expected_digest != digest:
            self.cancel()
            raise DigestMismatch(expected_digest, digest)
        try:
            os.fsync(self._file.fileno())  # a write-back error (EIO, ENOSPC on some filesystems) surfaces here
            if os.fstat(self._file.fileno()).st_size != self._size:
                raise OSError(errno.EIO, f"{self._path.name} holds a different number of bytes than were written")
        except BaseException:
            self.cancel()
            raise
        self._file.close()
        final = self._store.path_of(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._path, final)
        fsync_dir(final.parent)
        return digest

    def cancel(self) -> None:
        if not self._file.closed:
            self._file.close()
        self._path.unlink(missing_ok=True)


class FsUploadWriter:
    """Writes after the acknowledged bytes through the descriptor the store holds the upload by (its lock)."""

    def __init__(self, store: FsBlobStore, upload_id: str, offset: int, algorithm: str | None) -> None:
        self._store = store
        self._upload_id = upload_id
        self._fd = store.held_descriptor(upload_id)
        if os.fstat(self._fd).st_size < offset:
            # The machine stopped before acknowledged bytes reached the disk: they are gone, and so is the upload.
            raise UploadMissing(upload_id)
        os.ftruncate(self._fd, offset)  # what a request before wrote and never acknowledged
        self._offset = self._size = offset
        # Continue the running hashes if this process has them at this offset; else finish re-reads the file.
        self._hash = continue_hashes(store.hashes, upload_id, offset, algorithm)

    def write(self, data: bytes) -> None:
        write_all(self._fd, data, self._size)  # raises on a full disk: nothing is counted that is not in the file
        if self._hash is not None:
            self._hash.update(data)
        self._size += len(data)
        self._store.writeback.wrote(self._upload_id, self._fd, len(data))

    def close(self) -> int:
        if self._hash is not None:
            self._store.hashes[self._upload_id] = (self._size, self._hash)
        return self._size

    def abort(self) -> None:
        with contextlib.suppress(OSError):  # the next open_upload truncates anyway
            os.ftruncate(self._fd, self._offset)  # give back the room (a full disk must not stay full of them)


class Writeback:
    """Starts writeback of an upload's file every FLUSH_EVERY bytes, beside the transfer.

    Linux would otherwise keep a big upload in the page cache until the final fsync, which would then
    wait for all of it. Counts survive from one part to the next, so 5 MiB parts are flushed too.
    """

    def __init__(self) -> None:
        self._unflushed: dict[str, int] = {}
        self._running: dict[str, threading.Thread] = {}
        # A failed flush consumes the error (the kernel reports it once), so it is kept here for the final
        # sync to find: bytes that may not have reached the disk are never published.
        self.failed: dict[str, OSError] = {}

    def wrote(self, upload_id: str, fd: int, count: int) -> None:
        unflushed = self._unflushed.get(upload_id, 0) + count
        running = self._running.get(upload_id)
        if unflushed >= FLUSH_EVERY and not (running and running.is_alive()):
            unflushed = 0
            # Its own descriptor, so the store may close its own while the flush runs.
            thread = threading.Thread(target=self._flush, args=(upload_id, os.dup(fd)), daemon=True)
            self._running[upload_id] = thread
            thread.start()
        self._unflushed[upload_id] = unflushed

    def _flush(self, upload_id: str, fd: int) -> None:
        try:
            os.fdatasync(fd)
        except OSError as error:
            self.failed[upload_id] = error
        finally:
            os.close(fd)

    def forget(self, upload_id: str) -> None:
        self._unflushed.pop(upload_id, None)
        self._running.pop(upload_id, None)
        self.failed.pop(upload_id, None)


class FsBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp_dir = root / "tmp"
        self.uploads_dir = root / "uploads"
        for folder in (self.tmp_dir, self.uploads_dir, root / digests.CANONICAL):
            folder.mkdir(parents=True, exist_ok=True)
        # upload id -> (size hashed, running hashes). Only an optimisation: lost on restart, never shared.
        self.hashes: dict[str, tuple[int, Hashes]] = {}
        self.writeback = Writeback()
        # upload id -> (descriptor holding its flock, how many times this process acquired it)
        self._held: dict[str, tuple[int, int]] = {}
        self._holding = threading.Lock()

    def ping(self) -> None:
        probe = self.tmp_dir / f"ping-{secrets.token_hex(8)}"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            write_all(fd, b"pier")
        finally:
            os.close(fd)
            probe.unlink(missing_ok=True)

    def free_bytes(self) -> int:
        stats = os.statvfs(self.root)
        return stats.f_bavail * stats.f_frsize

    def upload_path(self, upload_id: str) -> Path:
        if not is_upload_id(upload_id):
            raise ValueError(f"not an upload id: {upload_id!r}")
        return self.uploads_dir / upload_id

    def acquire_upload(self, upload_id: str) -> None:
        """An exclusive flock on the upload's file, taken without waiting, so two processes (pier serve
        --workers, or several pier processes on one disk) never write or finish one upload at once."""
        path = self.upload_path(upload_id)
        with self._holding:
            held = self._held.get(upload_id)
            if held is not None:
                self._held[upload_id] = (held[0], held[1] + 1)
                return
            try:
                fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                raise UploadMissing(upload_id) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                # Still the upload's file? One finished (renamed into place) or cancelled meanwhile is not.
                if os.stat(path).st_ino != os.fstat(fd).st_ino:
                    raise UploadMissing(upload_id)
            except BlockingIOError:
                os.close(fd)
                raise UploadBusy(upload_id) from None
            except FileNotFoundError:
                os.close(fd)
                raise UploadMissing(upload_id) from None
            except BaseException:
                os.close(fd)
                raise
            self._held[upload_id] = (fd, 1)

    def release_upload(self, upload_id: str) -> None:
        with self._holding:
            fd, count = self._held[upload_id]
            if count > 1:
                self._held[upload_id] = (fd, count - 1)
                return
            del self._held[upload_id]
        # The flock belongs to the open file, which a flush running beside the upload shares through its
        # own descriptor (Writeback): unlock it here, or it stays held until that flush ends, and the next
        # request for this upload is refused as busy meanwhile.
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def held_descriptor(self, upload_id: str) -> int:
        with self._holding:
            held = self._held.get(upload_id)
        if held is None:  # its file came back after acquire_upload found it gone: not ours to touch
            raise UploadMissing(upload_id)
        return held[0]

    def start_upload(self, upload_id: str, algorithm: str | None = None) -> None:
        with self._holding:
            held = self._held.get(upload_id)
        if held is None:
            # No fsync: an empty upload lost in a crash loses nothing, and the next bytes make it again.
            self.upload_path(upload_id).touch(exist_ok=False)  # FileExistsError: another writer made it
        else:
            os.ftruncate(held[0], 0)  # bytes the caller holds, none of them acknowledged: start again
        self.hashes[upload_id] = (0, Hashes([algorithm] if algorithm else digests.WHILE_UNKNOWN))

    def open_upload(self, upload_id: str, offset: int, algorithm: str | None = None) -> FsUploadWriter:
        return FsUploadWriter(self, upload_id, offset, algorithm)

    def verify_upload(self, upload_id: str, size: int, expected_digest: str | None) -> str:
        path = self.upload_path(upload_id)
        if not path.exists():
            published = self.local_path(expected_digest) if expected_digest else None
            if expected_digest and published and _is_blob(published, size, expected_digest):
                return expected_digest  # published before a crash; only forgetting the upload was left
            raise UploadMissing(upload_id)
        fd = self.held_descriptor(upload_id)
        on_disk = os.fstat(fd).st_size
        if on_disk < size:  # acknowledged bytes are missing (the machine stopped): never pad them
            raise UploadMissing(f"{upload_id} holds {on_disk} of its {size} acknowledged bytes")
        algorithm = digests.algorithm_of(expected_digest) if expected_digest else digests.CANONICAL
        cached = self.hashes.get(upload_id)
        if cached and cached[0] == size and cached[1].covers(algorithm):
            digest = cached[1].digest(algorithm)
        else:  # hashed in another process, before a restart, or in another algorithm: read the file again
            digest = _hash_file(path, size, algorithm)
        if expected_digest is not None and expected_digest != digest:
            raise DigestMismatch(expected_digest, digest)
        if on_disk > size:  # a tail written but never acknowledged: drop it
            os.ftruncate(fd, size)
        try:
            if failed := self.writeback.failed.get(upload_id):
                raise failed
            os.fsync(fd)  # the one sync of the upload's bytes, before they may be published
        except OSError:
            # The kernel may have dropped bytes it could not write: this upload can no longer be trusted.
            self.cancel_upload(upload_id)
            raise
        return digest

    def publish_upload(self, upload_id: str, size: int, digest: str) -> None:
        path = self.upload_path(upload_id)
        self.hashes.pop(upload_id, None)
        self.writeback.forget(upload_id)
        if not path.exists():
            if not self.path_of(digest).is_file():  # GC took the bytes verify_upload found: they had no row
                raise UploadMissing(upload_id)
            return  # published before a crash (verify_upload checked the blob is there)
        final = self.path_of(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.utime(path)  # published now: GC's grace window starts here, not at the upload's last part
        os.replace(path, final)  # the same bytes may be there already: replacing them is harmless
        fsync_dir(final.parent)  # the rename is durable before the caller commits the blob's row

    def forget_hashes(self, upload_id: str) -> None:
        self.hashes.pop(upload_id, None)

    def cancel_upload(self, upload_id: str) -> None:
        self.hashes.pop(upload_id, None)
        self.writeback.forget(upload_id)
        self.upload_path(upload_id).unlink(missing_ok=True)

    def path_of(self, digest: str) -> Path:
        # The core checks digests before they get here; this guards the path anyway.
        if not is_digest(digest):
            raise ValueError(f"not a digest: {digest!r}")
        algorithm, hex_digest = digest.split(":", 1)
        return self.root / algorithm / hex_digest[:2] / hex_digest

    def writer(self, algorithm: str = digests.CANONICAL) -> FsBlobWriter:
        return FsBlobWriter(self, algorithm)

    def exists(self, digest: str) -> bool:
        return self.path_of(digest).is_file()

    def local_path(self, digest: str) -> Path | None:
        path = self.path_of(digest)
        return path if path.is_file() else None

    def url(self, digest: str) -> None:
        return None

    def read(self, digest: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        with open(self.path_of(digest), "rb") as handle:
            handle.seek(start)
            remaining = None if end is None else end - start
            while remaining is None or remaining > 0:
                chunk = handle.read(CHUNK if remaining is None else min(CHUNK, remaining))
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    def delete(self, digest: str) -> None:
        self.path_of(digest).unlink(missing_ok=True)

    # Leftovers

    def upload_leftovers(self) -> Iterator[UploadLeftover]:
        for folder in (self.uploads_dir, self.tmp_dir):
            for name, modified in _files(folder):
                if folder is self.tmp_dir:
                    yield UploadLeftover(f"tmp/{name}", None, modified)
                elif is_upload_id(name):  # a name pier never gives is not ours to judge
                    yield UploadLeftover(f"uploads/{name}", name, modified)

    def remove_upload_leftover(self, leftover: UploadLeftover, modified_before: float) -> bool:
        folder, _, name = leftover.name.partition("/")
        if folder not in ("uploads", "tmp") or not name or "/" in name or name.startswith("."):
            raise ValueError(f"not an upload leftover: {leftover.name!r}")
        path = self.root / folder / name
        try:
            if path.stat().st_mtime >= modified_before:
                return False
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def stored_blobs(self) -> Iterator[StoredBlob]:
        for algorithm in digests.ALGORITHMS:
            folder = self.root / algorithm
            if not folder.is_dir():
                continue
            for prefix, _ in _files(folder, directories=True):
                for name, _ in _files(folder / prefix):
                    digest = f"{algorithm}:{name}"
                    if is_digest(digest) and name[:2] == prefix:
                        try:
                            stat = (folder / prefix / name).stat()
                        except FileNotFoundError:
                            continue
                        yield StoredBlob(digest, stat.st_size, stat.st_mtime)

    def remove_stored_blob(self, digest: str, modified_before: float) -> bool:
        # Moved aside first, then judged: the file judged is the file removed, even if the same blob is
        # published again this instant (that one, written now, is put back, or was not taken at all).
        path = self.path_of(digest)
        taken = self.tmp_dir / f"gc-{secrets.token_hex(16)}"
        try:
            os.rename(path, taken)
        except FileNotFoundError:
            return False
        if os.stat(taken).st_mtime < modified_before:
            taken.unlink()
            return True
        with contextlib.suppress(FileExistsError):  # published again meanwhile: the same bytes are in place
            os.link(taken, path)
        taken.unlink()
        return False

    # Scrub and backup

    @contextlib.contextmanager
    def open_blob(self, digest: str) -> Iterator[BlobBytes | None]:
        try:
            handle = open(self.path_of(digest), "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            handle = None
        if handle is None:
            yield None
            return
        with handle:
            stat = os.fstat(handle.fileno())  # of the file opened: read and fingerprinted are the same bytes
            yield BlobBytes(stat.st_size, _fingerprint(stat), _chunks(handle))

    def fingerprint(self, digest: str) -> str | None:
        try:
            return _fingerprint(os.stat(self.path_of(digest)))
        except FileNotFoundError:
            return None

    def quarantine_blob(self, digest: str, fingerprint: str) -> str | None:
        path = self.path_of(digest)
        if self.fingerprint(digest) != fingerprint:
            return None
        algorithm, hex_digest = digest.split(":", 1)
        folder = self.root / "quarantine" / algorithm
        folder.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = folder / f"{hex_digest}.{stamp}"
        if target.exists():
            target = folder / f"{hex_digest}.{stamp}.{secrets.token_hex(4)}"
        try:
            os.rename(path, target)
        except FileNotFoundError:
            return None
        fsync_dir(folder)
        fsync_dir(path.parent)
        return str(target)

    def link_blob(self, digest: str, target: Path) -> bool:
        try:
            os.link(self.path_of(digest), target)
        except OSError as error:
            if error.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                return False  # another filesystem, or one without (more) hard links: the caller copies
            raise
        return True

    def put_blob_file(self, digest: str, source: Path) -> None:
        final = self.path_of(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        staged = self.tmp_dir / secrets.token_hex(16)
        try:
            os.link(source, staged)
        except OSError as error:
            if error.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
            with open(source, "rb") as reading, open(staged, "xb") as writing:
                shutil.copyfileobj(reading, writing, CHUNK)
                writing.flush()
                os.fsync(writing.fileno())
        os.replace(staged, final)
        fsync_dir(final.parent)


def _fingerprint(stat: os.stat_result) -> str:
    """Which file, as it was last written: a publish replaces the file (a new inode), and writing it in
    place moves the modification time."""
    return f"{stat.st_dev}:{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"


def _chunks(handle: BinaryIO) -> Iterator[bytes]:
    while chunk := handle.read(CHUNK):
        yield chunk


def _is_blob(path: Path, size: int, digest: str) -> bool:
    """Whether the file holds exactly the blob (a failed publish may have left other bytes under its
    name); if so it is touched, so GC spares it while the caller records it."""
    try:
        if path.stat().st_size != size or _hash_file(path, size, digests.algorithm_of(digest)) != digest:
            return False
        os.utime(path)
    except (FileNotFoundError, UploadMissing):
        return False
    return True


def _files(folder: Path, directories: bool = False) -> Iterator[tuple[str, float]]:
    """(name, modification time) of the regular files (or the directories) in a folder."""
    with os.scandir(folder) as entries:
        for entry in entries:
            try:
                if (entry.is_dir if directories else entry.is_file)(follow_symlinks=False):
                    yield entry.name, entry.stat(follow_symlinks=False).st_mtime
            except FileNotFoundError:
                continue


def _hash_file(path: Path, size: int, algorithm: str) -> str:
    digest = Hashes([algorithm])
    with open(path, "rb") as handle:
        remaining = size
        while remaining:
            chunk = handle.read(min(CHUNK, remaining))
            if not chunk:
                raise UploadMissing(f"{path.name} is shorter than its acknowledged size")
            digest.update(chunk)
            remaining -= len(chunk)
    return digest.digest(algorithm)
