"""Upload edge cases at the core, on a real SQLite database and filesystem (no mocks)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pier import errors
from pier.app import build_core
from pier.config import load
from pier.core import uploads
from pier.core.catalog import EMPTY


def test_an_upload_cancelled_during_an_append_leaves_nothing(tmp_path: Path) -> None:
    core = build_core(load(env={}, flags={"data_dir": tmp_path}))
    repository = core.meta.insert_repository(core.accounts.all[0].id, "racing", 0.0, EMPTY, {}, 10)
    upload_id = uploads.start(core, repository)

    def parts() -> Iterator[bytes]:
        yield b"first half"
        core.meta.delete_upload(upload_id)  # what the expiry sweep does, halfway through the append
        core.blobs.cancel_upload(upload_id)
        yield b"second half"

    with pytest.raises(errors.UploadNotFound):
        uploads.append(core, repository, upload_id, 0, parts())
    assert list((tmp_path / "blobs" / "uploads").iterdir()) == []
    core.meta.close()  # type: ignore[attr-defined]
