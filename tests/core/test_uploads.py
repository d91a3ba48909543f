"""Upload edge cases at the core, on a real SQLite database and filesystem (no mocks)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pier import errors
from pier.app import build_core
from pier.config import load
from pier.core import uploads
from pier.core.catalog import EMPTY


def test_an_upload_expired_during_an_append_leaves_nothing(tmp_path: Path) -> None:
    core = build_core(load(env={}, flags={"data_dir": tmp_path}))
    repository = core.meta.insert_repository(core.accounts.all[0].id, "racing", 0.0, EMPTY, {}, 10)
    upload_id = uploads.start(core, repository)
    assert uploads.append(core, repository, upload_id, 0, [b"acknowledged"]) == 12

    def parts() -> Iterator[bytes]:
        yield b"first half"
        core.meta.delete_upload(upload_id)  # what the expiry sweep does, halfway through the append
        core.blobs.cancel_upload(upload_id)
        yield b"second half"

    with pytest.raises(errors.UploadNotFound):
        uploads.append(core, repository, upload_id, 12, parts())
    assert list((tmp_path / "blobs" / "uploads").iterdir()) == []
    core.meta.close()  # type: ignore[attr-defined]


def test_an_upload_cancelled_during_its_first_append_leaves_nothing_and_stays_gone(tmp_path: Path) -> None:
    # Until its first bytes are acknowledged an upload has no row, only its id: a cancel then (a DELETE
    # from another connection) writes the row that says it ended, so the append finds it ended.
    core = build_core(load(env={}, flags={"data_dir": tmp_path}))
    repository = core.meta.insert_repository(core.accounts.all[0].id, "racing", 0.0, EMPTY, {}, 10)
    upload_id = uploads.start(core, repository)
    assert core.meta.get_upload(upload_id) is None

    def parts() -> Iterator[bytes]:
        yield b"first half"
        uploads.cancel(core, uploads.find(core, repository, upload_id))
        yield b"second half"

    with pytest.raises(errors.UploadNotFound):
        uploads.append(core, repository, upload_id, 0, parts())
    assert list((tmp_path / "blobs" / "uploads").iterdir()) == []
    with pytest.raises(errors.UploadNotFound):
        uploads.append(core, repository, upload_id, 0, [b"again"])
    core.meta.close()  # type: ignore[attr-defined]


def test_an_upload_id_proves_its_repository_and_expires(tmp_path: Path) -> None:
    core = build_core(load(env={}, flags={"data_dir": tmp_path}))
    account = core.accounts.all[0].id
    mine = core.meta.insert_repository(account, "mine", 0.0, EMPTY, {}, 10)
    other = core.meta.insert_repository(account, "other", 0.0, EMPTY, {}, 10)
    upload_id = uploads.start(core, mine)
    assert uploads.size_of(core, mine, upload_id) == 0
    with pytest.raises(errors.UploadNotFound):
        uploads.size_of(core, other, upload_id)  # issued for another repository
    made_up = upload_id[:-1] + ("0" if upload_id[-1] != "0" else "1")
    with pytest.raises(errors.UploadNotFound):
        uploads.append(core, mine, made_up, 0, [b"x"])  # not issued at all
    core.clock = lambda: 10**9 * 2.0  # long after: past the upload expiry
    with pytest.raises(errors.UploadNotFound):
        uploads.size_of(core, mine, upload_id)
    assert list((tmp_path / "blobs" / "uploads").iterdir()) == []
    core.meta.close()  # type: ignore[attr-defined]


def test_an_upload_whose_acknowledged_bytes_never_reached_the_disk_is_gone(tmp_path: Path) -> None:
    # Parts are synced to disk once, before publishing. If the machine stops first, the file is shorter
    # than acknowledged: the upload is reported gone (the client starts again), never zero-filled.
    core = build_core(load(env={}, flags={"data_dir": tmp_path}))
    repository = core.meta.insert_repository(core.accounts.all[0].id, "power-cut", 0.0, EMPTY, {}, 10)
    upload_id = uploads.start(core, repository)
    assert uploads.append(core, repository, upload_id, 0, [b"x" * 1000]) == 1000
    (tmp_path / "blobs" / "uploads" / upload_id).write_bytes(b"x" * 400)  # what survived the power cut

    with pytest.raises(errors.UploadNotFound):
        uploads.append(core, repository, upload_id, 1000, [b"more"])
    core.meta.close()  # type: ignore[attr-defined]


def test_bytes_the_disk_changed_are_never_published(tmp_path: Path) -> None:
    core = build_core(load(env={}, flags={"data_dir": tmp_path}))
    repository = core.meta.insert_repository(core.accounts.all[0].id, "bit-rot", 0.0, EMPTY, {}, 10)
    upload_id = uploads.start(core, repository)
    data = b"y" * 1000
    uploads.append(core, repository, upload_id, 0, [data])
    core.blobs.hashes.clear()  # type: ignore[attr-defined]  # as after a restart: the digest is computed from disk
    (tmp_path / "blobs" / "uploads" / upload_id).write_bytes(b"y" * 500 + b"\0" * 500)

    with pytest.raises(errors.InvalidLayer):
        uploads.finish(core, repository, upload_id, "sha256:" + hashlib.sha256(data).hexdigest(), ecr_rules=False)
    assert list((tmp_path / "blobs" / "sha256").iterdir()) == []
    core.meta.close()  # type: ignore[attr-defined]


def test_an_upload_id_signed_with_a_key_another_process_just_added_is_known(tmp_path: Path) -> None:
    # Two processes on one data directory: one rotates the signing key and issues an id with the new key;
    # the other, whose keys were read before, still finds the upload (it reads the keys again).
    settings = load(env={}, flags={"data_dir": tmp_path})
    one, other = build_core(settings), build_core(settings)
    repository = one.meta.insert_repository(one.accounts.all[0].id, "rotated", 0.0, EMPTY, {}, 10)
    other.signer.secrets()  # read now, before the rotation
    time.sleep(1.1)  # keys read more than a second ago are read again for an id no known key signed
    one.signer.rotate()
    upload_id = uploads.start(one, repository)
    assert uploads.size_of(other, repository, upload_id) == 0
    assert uploads.append(other, repository, upload_id, 0, [b"bytes"]) == 5
    one.meta.close()  # type: ignore[attr-defined]
    other.meta.close()  # type: ignore[attr-defined]
