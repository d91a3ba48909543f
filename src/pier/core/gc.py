"""Online garbage collection: blobs no image references any more, and what crashes left behind.

Safe while clients push: a blob uploaded, mounted or uploaded again within the grace window is never
collected (a push uploads its blobs before the manifest that references them). A blob's row is deleted
in a transaction that the database refuses once an image references it; its bytes only after that
commit, like any bytes without a row (below).

Leftovers are bytes no row stands for, older than the grace window: an upload's file or objects whose
upload row is gone (or was never committed: the bytes are made first), a write in progress when pier
died, and a blob's bytes whose row was never committed (a publish puts them in place inside the
transaction that writes the row; if that commit fails, or pier dies, they stay). The blob store lists
them; the metadata store decides. A blob's bytes are removed in a transaction that holds its row, so a
publish of the same blob (which writes the row first) waits for it; a publish also refreshes the bytes'
modification time, so bytes published now are never older than the grace window.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from typing import TypeVar

from pier.core import upload_ids
from pier.core.context import Core
from pier.storage.blobs import StoredBlob, UploadLeftover

BATCH = 500
T = TypeVar("T")


@dataclass
class Report:
    dry_run: bool
    blobs: int = 0
    bytes: int = 0
    digests: list[str] = field(default_factory=list)
    upload_leftovers: int = 0  # upload files and objects, temporary files, S3 multipart uploads
    blob_leftovers: int = 0  # blob files or objects without a row

    def __str__(self) -> str:
        free, remove = ("would free", "would remove") if self.dry_run else ("freed", "removed")
        return (
            f"{free} {self.blobs} blob(s), {self.bytes} bytes; {remove} {self.upload_leftovers} leftover upload"
            f" file(s), {self.blob_leftovers} blob file(s) without a row"
        )

    @property
    def anything(self) -> bool:
        return bool(self.blobs or self.upload_leftovers or self.blob_leftovers)


def collect(core: Core, grace_seconds: float, dry_run: bool = False) -> Report:
    cutoff = core.clock() - grace_seconds
    report = Report(dry_run)
    after: str | None = None
    while candidates := core.meta.collectable_blobs(cutoff, after, BATCH):
        for digest, size in candidates:
            if dry_run or core.meta.collect_blob(digest, cutoff, partial(core.blobs.delete, digest)):
                report.blobs += 1
                report.bytes += size
                report.digests.append(digest)
        after = candidates[-1][0]
    sweep_leftovers(core, cutoff, report)
    return report


def sweep_leftovers(core: Core, cutoff: float, report: Report) -> None:
    """Remove (or, on a dry run, count) the leftovers last written before `cutoff`."""
    for item in upload_leftovers(core, cutoff):
        if report.dry_run or remove_upload_leftover(core, item, cutoff):
            report.upload_leftovers += 1
    for blob in unrecorded_blobs(core, cutoff):
        if report.dry_run or remove_unrecorded_blob(core, blob, cutoff):
            report.blob_leftovers += 1


def upload_leftovers(core: Core, cutoff: float) -> Iterator[UploadLeftover]:
    """Upload bytes (and other writes in progress) last written before `cutoff` that no upload row stands for."""
    now = core.clock()
    old_uploads = (
        item
        for item in core.blobs.upload_leftovers()
        if item.modified < cutoff
        # An upload has no row until its first bytes are acknowledged, and bytes a request left without
        # one may be taken up again under the same id until it expires: they are not leftovers till then.
        and not (item.upload_id and upload_ids.may_be_written(item.upload_id, now, core.upload_expiry))
    )
    for uploads in _batches(old_uploads):
        live = core.meta.recorded_uploads([item.upload_id for item in uploads if item.upload_id is not None])
        # A row never comes back once deleted.
        yield from (item for item in uploads if item.upload_id not in live)


def remove_upload_leftover(core: Core, item: UploadLeftover, cutoff: float) -> bool:
    """Remove it, unless it was written since `cutoff`; whether it was removed."""
    return core.blobs.remove_upload_leftover(item, cutoff)


def unrecorded_blobs(core: Core, cutoff: float) -> Iterator[StoredBlob]:
    """Published bytes last written before `cutoff` that no blob row records (a publish whose commit failed)."""
    old_blobs = (blob for blob in core.blobs.stored_blobs() if blob.modified < cutoff)
    for blobs in _batches(old_blobs):
        recorded = core.meta.recorded_blobs([blob.digest for blob in blobs])
        yield from (blob for blob in blobs if blob.digest not in recorded)  # the rest: collect() decides


def remove_unrecorded_blob(core: Core, blob: StoredBlob, cutoff: float) -> bool:
    """Remove the bytes under the digest's row as a lock, unless a row records them or they were written (or
    published again) since `cutoff`; whether they were removed."""
    remove = partial(core.blobs.remove_stored_blob, blob.digest, cutoff)
    return core.meta.remove_unrecorded_blob(blob.digest, blob.size, remove)


def _batches(items: Iterable[T]) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, BATCH)):
        yield batch
