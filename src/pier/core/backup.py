"""Backup and restore (`pier backup DEST`, `pier restore SRC --data-dir NEW`), taken while pier serves.

The metadata first, as of one moment (MetadataStore.snapshot: SQLite's online backup), then the bytes of
every blob that copy records. Published blobs never change, so bytes copied a little later are the bytes
of that moment, and what is pushed after it is simply not in the backup: a restored pier serves every
image that was committed when the backup began, byte for byte. The one thing that can go meanwhile is a
blob GC frees after the snapshot (only an image deleted since can have needed it): the backup's copy
marks it lost, as fsck --repair would, and says so.

Blobs are hard links where the backup is on the blob store's filesystem (the same bytes, no copy: a
backup against deletion and mistakes, not against the disk failing), else copies, hashed as they are
written and checked against their digest; from S3 they are downloaded the same way, so a backup is always
self-contained. A restore hashes every blob again before it publishes it into the new data dir's store
(its folder, or a bucket).

Layout of a backup (DEST must be absent or empty):
    pier-backup.json                   written last: what it holds; a folder without it is no backup
    pier.db                            the metadata, one SQLite file (uploads in progress left out)
    blobs/<algorithm>/<2 hex>/<hex>    the blobs the metadata records
    <name>                             the data dir's own files that matter: default-account.json (with
                                       its mode, 0600), audit.log
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pier import __version__, digests
from pier.core.context import Core
from pier.digests import Hashes
from pier.files import fsync_dir, write_all
from pier.storage.blobs import BlobStore
from pier.storage.metadata import BlobRecord, MetadataStore

FORMAT = 1
MANIFEST = "pier-backup.json"
DATABASE = "pier.db"
BLOBS = "blobs"
BATCH = 500
CHUNK = 1024 * 1024

# Opens a copy of the metadata (a backup's pier.db) as a store, and closes it (and what it made) after.
OpenCopy = Callable[[Path], AbstractContextManager[MetadataStore]]

POSTGRESQL = """\
pier backup copies SQLite metadata, and this pier keeps its metadata in PostgreSQL. Back it up with
PostgreSQL's tools instead, in this order, while pier serves:
  1. the database:  pg_dump --format=custom --file=pier.dump "<database_url without +psycopg>"
  2. then the blobs: the bucket (aws s3 sync s3://<bucket>/<prefix> ./blobs) or the blob folder
     (rsync -a <data-dir>/blobs/ ./blobs/)
  3. and <data-dir>/default-account.json (mode 0600) and your pier.toml.
That order is safe: a published blob is never modified, and its bytes are deleted only after the row
that records it (GC commits the row's deletion first), so every blob the dump records is still there
when the blobs are copied after it, except one that GC freed in between because the only images that
needed it were deleted after the dump began. The other order is not safe: a blob pushed between the copy
and the dump would be recorded without bytes.
To restore: pg_restore --clean --dbname=... pier.dump, copy the blobs back, then run pier fsck (and pier
fsck --repair forgets any blob GC freed in between)."""


class BackupError(Exception):
    """The backup or restore cannot be made as asked; the message says why."""


@dataclass
class Report:
    """What a backup or a restore copied, and what it could not."""

    blobs: int = 0
    bytes: int = 0
    linked: int = 0  # hard links (same filesystem)
    copied: int = 0  # copies, checked against their digests
    files: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)  # freed by GC meanwhile (backup), marked lost
    damaged: list[str] = field(default_factory=list)  # missing or corrupt at the source, marked lost
    started_at: float = 0.0

    @property
    def exit_code(self) -> int:
        return 1 if self.damaged else 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def backup(core: Core, dest: Path, open_copy: OpenCopy, files: Sequence[Path], *, links: bool = True) -> Report:
    """Back up the metadata, the blobs it records and `files` (those that exist) into `dest`."""
    _must_be_empty(dest, "the backup's folder")
    dest.mkdir(parents=True, exist_ok=True)
    report = Report(started_at=core.clock())
    core.meta.snapshot(dest / DATABASE)
    with open_copy(dest / DATABASE) as copy:
        for record in _blobs(copy):
            target = _blob_path(dest, record.digest)
            target.parent.mkdir(parents=True, exist_ok=True)
            problem = _back_up_blob(core, record, target, links, report)
            if problem is not None:
                copy.forget_blob(record.digest, core.clock(), lambda: True)  # restored, it answers BLOB_UNKNOWN
                gone = not core.meta.recorded_blobs([record.digest])
                (report.gone if gone else report.damaged).append(f"{record.digest}: {problem}")
    for path in files:
        if path.is_file():
            _copy_file(path, dest / path.name)
            report.files.append(path.name)
    _fsync_tree(dest)
    manifest = {"format": FORMAT, "pier": __version__, "database": DATABASE, "blobs_folder": BLOBS, **asdict(report)}
    _write_new(dest / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode(), 0o600)
    fsync_dir(dest)
    return report


def restore(src: Path, database: Path, blobs: BlobStore, data_dir: Path, open_copy: OpenCopy) -> Report:
    """Bring a backup back: its metadata to `database` (a new SQLite file), its blobs into `blobs`, each
    checked against its digest first, and its files into `data_dir`."""
    manifest = read_manifest(src)
    if database.exists():
        raise BackupError(f"{database} exists: restore into a new data dir")
    report = Report(started_at=float(manifest.get("started_at", 0.0)))
    database.parent.mkdir(parents=True, exist_ok=True)
    _copy_file(src / str(manifest.get("database", DATABASE)), database)
    with open_copy(database) as copy:
        for record in _blobs(copy):
            source = _blob_path(src, record.digest)
            problem = _check_file(source, record)
            if problem is not None:
                copy.forget_blob(record.digest, time.time(), lambda: True)
                report.damaged.append(f"{record.digest}: {problem}")
                continue
            blobs.put_blob_file(record.digest, source)
            report.blobs += 1
            report.bytes += record.size
            report.copied += 1
    for name in manifest.get("files", []):
        if "/" in name or name.startswith("."):
            raise BackupError(f"{src / MANIFEST} names a file outside the backup: {name!r}")
        _copy_file(src / name, data_dir / name, replace=True)
        report.files.append(name)
    fsync_dir(data_dir)
    return report


def read_manifest(src: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((src / MANIFEST).read_text())
    except FileNotFoundError:
        raise BackupError(f"{src} holds no {MANIFEST}: not a pier backup, or one that never finished") from None
    except (OSError, ValueError) as error:
        raise BackupError(f"cannot read {src / MANIFEST}: {error}") from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{src / MANIFEST} is not a backup this pier reads (format {FORMAT})")
    return manifest


def _must_be_empty(folder: Path, what: str) -> None:
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise BackupError(f"{what} {folder} must be absent or empty")


def _blobs(meta: MetadataStore) -> Iterator[BlobRecord]:
    after: str | None = None
    while records := meta.blob_records(after, BATCH):
        yield from (record for record in records if record.lost_at is None)
        after = records[-1].digest


def _blob_path(root: Path, digest: str) -> Path:
    algorithm, hex_digest = digest.split(":", 1)
    return root / BLOBS / algorithm / hex_digest[:2] / hex_digest


def _back_up_blob(core: Core, record: BlobRecord, target: Path, links: bool, report: Report) -> str | None:
    """Link or copy one blob; what is wrong with it, or None."""
    try:
        if links and core.blobs.link_blob(record.digest, target):
            size = target.stat().st_size
            if size != record.size:
                target.unlink()
                return f"{size} bytes are stored, {record.size} recorded (run pier fsck)"
            report.linked += 1
            report.blobs += 1
            report.bytes += size
            return None
    except FileNotFoundError:
        return "its bytes are gone"
    partial = target.with_name(target.name + ".partial")
    with core.blobs.open_blob(record.digest) as stored:
        if stored is None:
            return "its bytes are gone"
        hashes = Hashes([digests.algorithm_of(record.digest)])
        written = 0
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            for chunk in stored.chunks:
                write_all(fd, chunk)
                hashes.update(chunk)
                written += len(chunk)
            os.fsync(fd)
        finally:
            os.close(fd)
    actual = hashes.digest(digests.algorithm_of(record.digest))
    if written != record.size or actual != record.digest:
        partial.unlink()
        return f"the stored bytes ({written}) hash to {actual} (run pier fsck)"
    os.replace(partial, target)
    report.copied += 1
    report.blobs += 1
    report.bytes += written
    return None


def _check_file(path: Path, record: BlobRecord) -> str | None:
    algorithm = digests.algorithm_of(record.digest)
    hashes = Hashes([algorithm])
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(CHUNK):
                hashes.update(chunk)
    except FileNotFoundError:
        return "not in the backup"
    if path.stat().st_size != record.size or hashes.digest(algorithm) != record.digest:
        return "the backup's copy is corrupt"
    return None


def _copy_file(source: Path, target: Path, replace: bool = False) -> None:
    """Copy with the source's mode (a private file is never readable by others, not even for a moment),
    durably."""
    mode = source.stat().st_mode & 0o777
    staged = target.with_name(f".{target.name}.restoring")
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode & 0o700)
    try:
        with open(source, "rb") as reading:
            while chunk := reading.read(CHUNK):
                write_all(fd, chunk)
        os.fchmod(fd, mode)
        os.fsync(fd)
    finally:
        os.close(fd)
    if not replace and target.exists():
        staged.unlink()
        raise FileExistsError(target)
    os.replace(staged, target)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """Make the folders' entries durable (files were synced as written; hard links are entries)."""
    for folder, _, _ in os.walk(root):
        fsync_dir(Path(folder))
