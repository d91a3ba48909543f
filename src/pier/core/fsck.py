"""Scrub (`pier fsck`): is every blob the metadata knows stored, whole, and the bytes its digest names?

Every blob row is checked: its bytes present, of the recorded size, hashing to the digest (in the digest's
algorithm). Bytes nothing records (blob files or objects without a row, uploads without an upload) are
listed as GC sees them (core/gc.py), once older than the grace window; younger ones are writes in progress.
A bad blob is named with what it breaks: the images that need it (config or layer), the indexes that list
those images, and repository logos.

Read beside pushes, in short transactions: rows are read a page at a time, bytes outside any transaction
(throttled to `rate` bytes a second when asked). What looks wrong is looked at again under the blob's row
(MetadataStore.forget_blob), where no publish of the same blob can run: bytes replaced meanwhile (a push of
the same blob) are read again rather than judged, and a row GC deleted meanwhile is no finding.

--repair, under that same hold: corrupt bytes are moved aside (quarantined) and missing ones forgotten;
either way the blob is lost: pulls answer BLOB_UNKNOWN (never wrong bytes), BatchCheckLayerAvailability
says it is missing, a mount refuses it, so clients push it again, and that push brings it back for every
repository that had it (the images keep their claim on it all along, so GC spares it). Leftovers older
than the grace window are removed through GC's own safe path. If the database fails after bytes were
moved aside, the blob is simply missing at the next run, and forgotten then.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pier import digests
from pier.core import gc
from pier.core.context import Core
from pier.digests import Hashes
from pier.storage.blobs import BlobBytes
from pier.storage.metadata import BlobRecord

BATCH = 500
ATTEMPTS = 3  # a blob whose bytes were replaced while they were read is read again, this often at most
MIB = 1024 * 1024


@dataclass
class Damage:
    """A blob whose stored bytes are not what its row says."""

    digest: str
    size: int  # as recorded
    problem: str  # "missing" or "corrupt"
    detail: str
    repair: str | None = None  # "quarantined" or "forgotten" once repaired
    moved_to: str | None = None  # where quarantined bytes went


@dataclass
class Lost:
    """A blob an earlier repair forgot, waiting for a push of the same bytes."""

    digest: str
    size: int
    lost_at: float
    used: bool = False  # by an image or a logo (unused ones are GC's)


@dataclass
class Broken:
    """What a bad blob breaks: an image that needs it, an index that lists such an image, or a logo."""

    kind: str  # "image", "index" or "logo"
    registry_id: str
    repository: str
    digest: str | None  # the image's or index's; None for a logo
    tags: tuple[str, ...]
    blobs: list[str]  # the bad blobs (for an index: those of the images it lists)
    lists: list[str] = field(default_factory=list)  # an index: its broken images


@dataclass
class Leftover:
    """Bytes the metadata does not know, older than the grace window."""

    kind: str  # "blob" (published bytes no blob row records) or "upload" (no upload stands for them)
    name: str  # a blob's digest, or the store's name for the upload's bytes
    size: int | None
    age_seconds: float
    removed: bool = False


@dataclass
class Report:
    repair: bool
    grace_seconds: float
    checked: int = 0
    checked_bytes: int = 0
    seconds: float = 0.0
    damaged: list[Damage] = field(default_factory=list)
    lost: list[Lost] = field(default_factory=list)
    broken: list[Broken] = field(default_factory=list)
    leftovers: list[Leftover] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)  # registry id -> alias, for people

    @property
    def unrepaired(self) -> list[Damage]:
        return [damage for damage in self.damaged if damage.repair is None]

    @property
    def clean(self) -> bool:
        """Nothing found: every blob whole, nothing lost that anything needs, no old leftovers."""
        return not (self.damaged or any(lost.used for lost in self.lost) or self.broken or self.leftovers)

    @property
    def exit_code(self) -> int:
        """0 when clean; after --repair, 0 when everything found was repaired (what stays broken then needs a
        push, which pier cannot do); else 1."""
        if self.repair:  # a leftover kept was written or recorded meanwhile: in use, not left over
            return 1 if self.unrepaired else 0
        return 0 if self.clean else 1

    def to_json(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "repair": self.repair,
            "exit_code": self.exit_code,
            "checked": {"blobs": self.checked, "bytes": self.checked_bytes, "seconds": round(self.seconds, 3)},
            "damaged": [vars(damage) for damage in self.damaged],
            "lost": [vars(lost) for lost in self.lost],
            "broken": [
                {**vars(broken), "alias": self.aliases.get(broken.registry_id), "tags": list(broken.tags)}
                for broken in self.broken
            ],
            "leftovers": [vars(item) for item in self.leftovers],
            "grace_seconds": self.grace_seconds,
        }

    def __str__(self) -> str:
        lines = [
            f"pier fsck: checked {self.checked} blob(s), {_amount(self.checked_bytes)} in {self.seconds:.1f} s"
            + (" (repairing)" if self.repair else "")
        ]
        for damage in self.damaged:
            done = {
                "quarantined": f"quarantined to {damage.moved_to}; forgotten until pushed again",
                "forgotten": "forgotten until pushed again",
                None: "not repaired",
            }[damage.repair]
            lines.append(f"  {damage.problem:<8} {damage.digest} ({damage.size} bytes): {damage.detail} -> {done}")
        for lost in self.lost:
            still = "push it again" if lost.used else "nothing needs it any more (gc frees it)"
            lines.append(f"  lost     {lost.digest} ({lost.size} bytes): forgotten by an earlier repair; {still}")
        for broken in self.broken:
            where = f"{self.aliases.get(broken.registry_id, broken.registry_id)}/{broken.repository}"
            tags = f" ({', '.join(broken.tags)})" if broken.tags else ""
            if broken.kind == "logo":
                lines.append(f"  broken   logo of {where}: {', '.join(broken.blobs)}")
            elif broken.kind == "index":
                lines.append(f"  broken   index {where}@{broken.digest}{tags} lists {', '.join(broken.lists)}")
            else:
                lines.append(f"  broken   image {where}@{broken.digest}{tags} needs {', '.join(broken.blobs)}")
        for item in self.leftovers:
            size = f"{item.size} bytes, " if item.size is not None else ""
            what = "blob without a row" if item.kind == "blob" else "upload leftover"
            state = " -> removed" if item.removed else (" -> kept (in use again)" if self.repair else "")
            lines.append(f"  {what}: {item.name} ({size}{_age(item.age_seconds)} old){state}")
        lines.append(self._verdict())
        return "\n".join(lines)

    def _verdict(self) -> str:
        if self.clean:
            return "clean: every blob is stored, whole, and hashes to its digest"
        push = "push the broken images again to heal them" if self.broken else ""
        if self.repair:
            if self.exit_code:
                return "not everything could be repaired: run pier fsck --repair again"
            return "repaired" + (f"; {push}" if push else "")
        if self.damaged or self.leftovers:
            return "problems found: run pier fsck --repair" + (f", then {push}" if push else "")
        return "problems found: " + push


def check(
    core: Core,
    *,
    repair: bool = False,
    rate: float | None = None,
    grace_seconds: float,
) -> Report:
    """Check every blob (reading at most `rate` bytes a second), list old leftovers, and with `repair`,
    quarantine, forget and remove what was found."""
    started = time.monotonic()
    report = Report(repair, grace_seconds, aliases={a.id: a.alias for a in core.accounts.all})
    pace = Pace(rate)
    after: str | None = None
    while records := core.meta.blob_records(after, BATCH):
        for record in records:
            if record.lost_at is not None:
                report.lost.append(Lost(record.digest, record.size, record.lost_at))
            else:
                _check_blob(core, record, pace, report)
        after = records[-1].digest
    _find_broken(core, report)
    _find_leftovers(core, report)
    report.seconds = time.monotonic() - started
    return report


class Pace:
    """Keeps reading at `rate` bytes a second at most (None: as fast as the store gives them)."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.started = time.monotonic()
        self.done = 0

    def __call__(self, count: int) -> None:
        self.done += count
        if self.rate:
            ahead = self.done / self.rate - (time.monotonic() - self.started)
            if ahead > 0:
                time.sleep(ahead)


def _check_blob(core: Core, record: BlobRecord, pace: Pace, report: Report) -> None:
    for _ in range(ATTEMPTS):
        fingerprint: str | None = None
        problem: str | None = "missing"
        detail = "nothing is stored under its digest"
        with core.blobs.open_blob(record.digest) as stored:
            if stored is not None:
                fingerprint = stored.fingerprint
                problem, detail = _judge(record, stored, pace, report)
        if problem is None:
            report.checked += 1
            return
        outcome, moved_to = _confirm(core, record.digest, fingerprint, report.repair)
        if outcome == "replaced":
            continue  # published again while it was read: read what is there now
        if outcome == "gone":
            return  # GC took it meanwhile: nothing needs it
        report.checked += 1
        repair = outcome if outcome in ("quarantined", "forgotten") else None
        report.damaged.append(Damage(record.digest, record.size, problem, detail, repair, moved_to))
        return


def _judge(record: BlobRecord, stored: BlobBytes, pace: Pace, report: Report) -> tuple[str | None, str]:
    """(None, "") if the bytes are the blob; else ("corrupt", what is wrong)."""
    if stored.size != record.size:
        return "corrupt", f"{stored.size} bytes are stored"
    algorithm = digests.algorithm_of(record.digest)
    hashes = Hashes([algorithm])
    read = 0
    for chunk in stored.chunks:
        hashes.update(chunk)
        read += len(chunk)
        report.checked_bytes += len(chunk)
        pace(len(chunk))
    if read != record.size:
        return "corrupt", f"the store gave {read} bytes"
    actual = hashes.digest(algorithm)
    if actual != record.digest:
        return "corrupt", f"its bytes hash to {actual}"
    return None, ""


def _confirm(core: Core, digest: str, fingerprint: str | None, repair: bool) -> tuple[str, str | None]:
    """Look again under the blob's row: ("found" | "quarantined" | "forgotten" | "replaced" | "gone", where
    quarantined bytes went)."""
    outcome: list[tuple[str, str | None]] = []

    def confirm() -> bool:
        if core.blobs.fingerprint(digest) != fingerprint:
            outcome.append(("replaced", None))  # other bytes are there now (a publish): not these
            return False
        if not repair:
            outcome.append(("found", None))
            return False
        if fingerprint is None:
            outcome.append(("forgotten", None))
            return True
        moved_to = core.blobs.quarantine_blob(digest, fingerprint)
        if moved_to is None:
            outcome.append(("replaced", None))
            return False
        outcome.append(("quarantined", moved_to))
        return True

    if core.meta.forget_blob(digest, core.clock(), confirm) is None:
        return "gone", None
    return outcome[-1]


def _find_broken(core: Core, report: Report) -> None:
    bad = [damage.digest for damage in report.damaged] + [lost.digest for lost in report.lost]
    if not bad:
        return
    uses = core.meta.blob_users(bad)
    used = {use.blob for use in uses}
    for lost in report.lost:
        lost.used = lost.digest in used
    images: dict[tuple[int, str | None], Broken] = {}
    for use in uses:
        key = (use.repository_id, use.image)
        if key not in images:
            kind = "image" if use.image is not None else "logo"
            images[key] = Broken(kind, use.registry_id, use.repository, use.image, use.tags, [])
        if use.blob not in images[key].blobs:
            images[key].blobs.append(use.blob)
    indexes: dict[tuple[int, str], Broken] = {}
    for (repository_id, image), broken in list(images.items()):
        if image is None:
            continue
        for index in core.meta.indexes_referencing(repository_id, image):
            key = (repository_id, index)
            if key not in indexes:
                row = core.meta.get_image(repository_id, digest=index)
                tags = row.tags if row is not None else ()
                indexes[key] = Broken("index", broken.registry_id, broken.repository, index, tags, [])
            indexes[key].lists.append(image)
            indexes[key].blobs.extend(blob for blob in broken.blobs if blob not in indexes[key].blobs)
    report.broken = [*images.values(), *indexes.values()]


def _find_leftovers(core: Core, report: Report) -> None:
    now = core.clock()
    cutoff = now - report.grace_seconds
    for blob in gc.unrecorded_blobs(core, cutoff):
        item = Leftover("blob", blob.digest, blob.size, now - blob.modified)
        item.removed = report.repair and gc.remove_unrecorded_blob(core, blob, cutoff)
        report.leftovers.append(item)
    for upload in gc.upload_leftovers(core, cutoff):
        item = Leftover("upload", upload.name, None, now - upload.modified)
        item.removed = report.repair and gc.remove_upload_leftover(core, upload, cutoff)
        report.leftovers.append(item)


def _amount(count: int) -> str:
    return f"{count / MIB:.1f} MiB" if count >= MIB else f"{count} bytes"


def _age(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"
