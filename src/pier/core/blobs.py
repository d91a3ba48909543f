"""Blobs as a repository sees them: which it may serve, mounting from another, unlinking."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pier import digests, errors
from pier.core.context import Core
from pier.storage.metadata import RepositoryRow


@dataclass(frozen=True)
class BlobInfo:
    digest: str
    size: int
    local_path: Path | None  # a file the server may send as is


def check_digest(digest: str, field: str | None = None) -> None:
    """DigestInvalid unless pier supports the digest (sha256 or sha512); `field`: the API member it came in."""
    problem = digests.problem(digest)
    if problem is not None:
        raise errors.DigestInvalid(problem, field)


def stat(core: Core, repository: RepositoryRow, digest: str) -> BlobInfo:
    """The blob if the repository may serve it; BlobNotFound otherwise (also for blobs of other repositories)."""
    check_digest(digest)
    found = core.meta.get_repository_blobs(repository.id, [digest])
    if digest not in found:
        raise errors.BlobNotFound(digest)
    return BlobInfo(digest, found[digest][0], core.blobs.local_path(digest))


def mount(core: Core, source: RepositoryRow, target: RepositoryRow, digest: str) -> bool:
    """Let `target` use a blob `source` has, without moving bytes; False if `source` lacks it."""
    check_digest(digest)
    found = core.meta.get_repository_blobs(source.id, [digest])
    if digest not in found:
        return False
    return core.meta.link_blob(target.id, digest, core.clock())


def unlink(core: Core, repository: RepositoryRow, digest: str) -> None:
    """Stop the repository using a blob. Refused while one of its images needs it, so nothing breaks."""
    stat(core, repository, digest)
    users = core.meta.images_using_blob(repository.id, digest)
    if users:
        raise errors.InvalidParameter(
            f"The blob {digest} is used by image(s) {', '.join(users[:5])}; delete those images first"
        )
    core.meta.remove_repository_blob(repository.id, digest)
