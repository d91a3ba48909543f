"""Online garbage collection of blobs no image references any more.

Safe while clients push: a blob uploaded, mounted or uploaded again within the grace window is never
collected (a push uploads its blobs before the manifest that references them), and each blob is
deleted, row and bytes, in one transaction that the database refuses once an image references it.
Metadata decides, never a listing of the blob store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

from pier.core.context import Core

BATCH = 500


@dataclass
class Report:
    dry_run: bool
    blobs: int = 0
    bytes: int = 0
    digests: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        verb = "would free" if self.dry_run else "freed"
        return f"{verb} {self.blobs} blob(s), {self.bytes} bytes"


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
    return report
