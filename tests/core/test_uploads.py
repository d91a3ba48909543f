"""Upload edge cases at the core, on a real SQLite database and filesystem (no mocks)."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pier import errors
from pier.app import build_core
from pier.config import load
from pier.core import gc, uploads
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


def test_a_failed_first_request_leaves_no_bytes(tmp_path: Path) -> None:
    core = build_core(load(env={}, flags={"data_dir": tmp_path}))
    repository = core.meta.insert_repository(core.accounts.all[0].id, "failing", 0.0, EMPTY, {}, 10)
    wrong = "sha256:" + hashlib.sha256(b"something else").hexdigest()
    empty = uploads.start(core, repository)
    with pytest.raises(errors.InvalidLayer):  # a PUT without a body, and a digest that is not of nothing
        uploads.finish(core, repository, empty, wrong, ecr_rules=False)
    deleted = uploads.start(core, repository)

    def parts() -> Iterator[bytes]:
        yield b"first half"
        core.meta.delete_repository(repository.id)  # deleted while its first bytes come
        yield b"second half"

    with pytest.raises(errors.UploadNotFound):
        uploads.append(core, repository, deleted, 0, parts())
    assert list((tmp_path / "blobs" / "uploads").iterdir()) == []
    core.meta.close()  # type: ignore[attr-defined]


def test_bytes_left_without_a_row_wait_for_their_id_to_expire_then_go(tmp_path: Path) -> None:
    # What a process stopped between writing an upload's first bytes and its row leaves: a file and no row.
    # GC leaves it while the id may still be written to (a client resuming it starts it again); the
    # expiry sweep removes it once the id has expired.
    core = build_core(load(env={}, flags={"data_dir": tmp_path}))
    repository = core.meta.insert_repository(core.accounts.all[0].id, "stopped", 0.0, EMPTY, {}, 10)
    upload_id = uploads.start(core, repository)
    core.blobs.start_upload(upload_id)
    left = tmp_path / "blobs" / "uploads" / upload_id
    left.write_bytes(b"unacknowledged")
    an_hour_ago = time.time() - 3600
    os.utime(left, (an_hour_ago, an_hour_ago))
    assert list(gc.upload_leftovers(core, time.time())) == []  # its id may still be written to
    assert uploads.append(core, repository, upload_id, 0, [b"resumed"]) == 7  # and is: started again
    assert uploads.size_of(core, repository, upload_id) == 7

    other = uploads.start(core, repository)
    core.blobs.start_upload(other)
    os.utime(tmp_path / "blobs" / "uploads" / other, (an_hour_ago, an_hour_ago))
    uploads.expire(core)
    assert (tmp_path / "blobs" / "uploads" / other).exists()  # not expired yet
    later = time.time() + core.upload_expiry + 3600
    os.utime(tmp_path / "blobs" / "uploads" / other, (later - core.upload_expiry - 60,) * 2)
    core.clock = lambda: later
    uploads.expire(core)
    assert sorted(p.name for p in (tmp_path / "blobs" / "uploads").iterdir()) == []  # both: the first expired too
    core.meta.close()  # type: ignore[attr-defined]
