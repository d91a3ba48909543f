"""`pier backup` while clients push, `pier restore` into a new data dir, and a new `pier serve` on it that
serves every image committed before the backup began, byte for byte (SQLite metadata; blobs on disk, and
on S3). With the metadata in PostgreSQL, pier backup refuses and says what to do instead."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.backends import BUCKET, S3_KEYS, MotoS3
from tests.conftest import OWNER, _write_config, client, owner_env
from tests.images import OCI_MANIFEST, digest_of, push_image
from tests.server import PierServer


def pier(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pier", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or owner_env())},
        check=False,
    )


def manifest_blobs(manifest: bytes) -> list[str]:
    document = json.loads(manifest)
    return [descriptor["digest"] for descriptor in [document["config"], *document["layers"]]]


def pulls_whole(server: PierServer, repository: str, tag: str, manifest: bytes, blobs: dict[str, bytes]) -> None:
    """The image pulls from `server` by its tag exactly as pushed: the manifest's bytes, every blob's."""
    base = f"{server.url}/v2/{OWNER.alias}/{repository}"
    got = httpx.get(f"{base}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
    assert got.status_code == 200 and got.content == manifest, (tag, got.status_code)
    for digest in manifest_blobs(manifest):
        blob = httpx.get(f"{base}/blobs/{digest}", follow_redirects=True, timeout=60)
        assert blob.status_code == 200 and digest_of(blob.content) == digest and blob.content == blobs[digest], digest


class Pushers:
    """Clients pushing images into one repository until stopped, each image noted once PutImage answered."""

    def __init__(self, server: PierServer, repository: str, count: int) -> None:
        self.server, self.repository = server, repository
        self.committed: list[tuple[float, str, bytes]] = []  # (answered at, tag, manifest)
        self.blobs: dict[str, bytes] = {}
        self.failures: list[BaseException] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._push, args=(n,)) for n in range(count)]

    def __enter__(self) -> Pushers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def wait_for(self, images: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while len(self.committed) < images:
            assert not self.failures, self.failures
            assert time.monotonic() < deadline, "the pushers are stuck"
            time.sleep(0.1)

    def _push(self, n: int) -> None:
        ecr = client(self.server)
        try:
            for i in range(1000):
                if self._stop.is_set():
                    return
                tag = f"p{n}-{i}"
                manifest, _ = push_image(ecr, self.repository, tag, layers=2, random_bytes=100_000)
                answered = time.time()
                with self._lock:
                    for digest in manifest_blobs(manifest):
                        if digest not in self.blobs:
                            url = f"{self.server.url}/v2/{OWNER.alias}/{self.repository}/blobs/{digest}"
                            self.blobs[digest] = httpx.get(url, follow_redirects=True, timeout=60).content
                    self.committed.append((answered, tag, manifest))
        except BaseException as error:  # reported by wait_for and the test
            self.failures.append(error)


def test_a_backup_taken_while_eight_clients_push_restores_every_image_committed_before_it(tmp_path: Path) -> None:
    config = _write_config(tmp_path / "pier.toml")
    server = PierServer(tmp_path / "data", config, owner_env()).start()
    restored: PierServer | None = None
    try:
        client(server).create_repository(repositoryName="busy")
        dest = tmp_path / "backup"
        with Pushers(server, "busy", 8) as pushers:
            pushers.wait_for(16)
            began = time.time()
            done = pier("backup", str(dest), "--data-dir", str(server.data_dir), "--config", str(config))
            before = [(tag, manifest) for answered, tag, manifest in list(pushers.committed) if answered < began]
            pushers.wait_for(len(pushers.committed) + 8)  # they went on pushing throughout
        assert not pushers.failures, pushers.failures
        assert done.returncode == 0, done.stderr
        assert "hard link(s)" in done.stdout and "default-account.json" in done.stdout, done.stdout
        assert len(before) >= 16

        # On the same filesystem the blobs are hard links; the account file keeps its mode.
        some_blob = manifest_blobs(before[0][1])[1]
        algorithm, hex_digest = some_blob.split(":")
        relative = Path("blobs", algorithm, hex_digest[:2], hex_digest)
        assert (dest / relative).stat().st_ino == (server.data_dir / relative).stat().st_ino
        assert stat.S_IMODE((dest / "default-account.json").stat().st_mode) == 0o600
        manifest = json.loads((dest / "pier-backup.json").read_text())
        assert manifest["format"] == 1 and manifest["linked"] >= 3 * len(before) and manifest["damaged"] == []

        new = tmp_path / "restored"
        done = pier("restore", str(dest), "--data-dir", str(new), "--config", str(config))
        assert done.returncode == 0, done.stderr
        assert (new / "default-account.json").read_bytes() == (server.data_dir / "default-account.json").read_bytes()
        assert stat.S_IMODE((new / "default-account.json").stat().st_mode) == 0o600
        # The live registry went on: delete an image there, so only the restored one still has it.
        client(server).batch_delete_image(repositoryName="busy", imageIds=[{"imageTag": before[0][0]}])
        server.stop()

        restored = PierServer(new, config, owner_env()).start()
        for tag, image in before:
            pulls_whole(restored, "busy", tag, image, pushers.blobs)
        # Whatever else it has (pushed during the backup) is whole too; nothing pushed after it ended.
        described = client(restored).get_paginator("describe_images").paginate(repositoryName="busy")
        tags = {tag for page in described for detail in page["imageDetails"] for tag in detail.get("imageTags", [])}
        committed = {tag: image for _, tag, image in pushers.committed}
        assert {tag for tag, _ in before} <= tags <= set(committed)
        for tag in tags:
            pulls_whole(restored, "busy", tag, committed[tag], pushers.blobs)
        assert pier("fsck", "--data-dir", str(new), "--config", str(config)).returncode == 0
        # The restored account's credentials are the backed-up ones: it signs in and pushes.
        push_image(client(restored), "busy", "after-restore")
    finally:
        server.stop()
        if restored is not None:
            restored.stop()


def test_copies_refusals_and_a_folder_that_is_no_backup(tmp_path: Path) -> None:
    config = _write_config(tmp_path / "pier.toml")
    server = PierServer(tmp_path / "data", config, owner_env()).start()
    try:
        ecr = client(server)
        ecr.create_repository(repositoryName="few")
        image, _ = push_image(ecr, "few", "v1", layers=2)
        storage = ["--data-dir", str(server.data_dir), "--config", str(config)]
        copies = tmp_path / "copies"
        done = pier("backup", str(copies), "--copy", *storage)
        assert done.returncode == 0 and "0 hard link(s), 3 cop(ies)" in done.stdout, done.stdout + done.stderr
        digest = manifest_blobs(image)[1]
        algorithm, hex_digest = digest.split(":")
        relative = Path("blobs", algorithm, hex_digest[:2], hex_digest)
        assert (copies / relative).stat().st_ino != (server.data_dir / relative).stat().st_ino
        assert digest_of((copies / relative).read_bytes()) == digest

        refused = pier("backup", str(copies), *storage)  # not empty
        assert refused.returncode == 2 and "must be absent or empty" in refused.stderr
        occupied = tmp_path / "occupied"
        occupied.mkdir()
        (occupied / "something").write_text("mine")
        refused = pier("restore", str(copies), "--data-dir", str(occupied), "--config", str(config))
        assert refused.returncode != 0 and "must be absent or empty" in refused.stderr
        assert (occupied / "something").read_text() == "mine"
        (copies / "pier-backup.json").unlink()  # as if the backup never finished
        refused = pier("restore", str(copies), "--data-dir", str(tmp_path / "new"), "--config", str(config))
        assert refused.returncode == 2 and "not a pier backup" in refused.stderr
    finally:
        server.stop()


def test_backup_refuses_postgresql_metadata_and_says_what_to_do(tmp_path: Path) -> None:
    dest = tmp_path / "backup"
    done = pier(
        "backup",
        str(dest),
        "--data-dir",
        str(tmp_path / "data"),
        "--database-url",
        "postgresql+psycopg://pier:secret@127.0.0.1:1/pier",
    )
    assert done.returncode == 2
    assert "pg_dump" in done.stderr and "then the blobs" in done.stderr
    assert "a published blob is never modified" in done.stderr and "deleted only after the row" in done.stderr
    assert "secret" not in done.stderr  # the URL given is not echoed, password and all
    assert not dest.exists()


@pytest.fixture(scope="module")
def s3() -> Iterator[MotoS3]:
    server = MotoS3()
    yield server
    server.stop()


def test_blobs_on_s3_are_copied_into_the_backup_and_restored_into_a_data_dir_or_a_bucket(
    tmp_path: Path, s3: MotoS3
) -> None:
    def on_s3(prefix: str) -> str:
        settings = {"blob_store": f"s3://{BUCKET}/{prefix}/", "s3_endpoint_url": s3.url, **S3_KEYS}
        return "".join(f'{key} = "{value}"\n' for key, value in settings.items())

    prefix = uuid.uuid4().hex[:12]
    config = _write_config(tmp_path / "pier.toml", on_s3(prefix))
    server = PierServer(tmp_path / "data", config, owner_env()).start()
    try:
        ecr = client(server)
        ecr.create_repository(repositoryName="on-s3")
        image, _ = push_image(ecr, "on-s3", "v1", layers=2, random_bytes=50_000)
        blobs = {
            digest: httpx.get(
                f"{server.url}/v2/{OWNER.alias}/on-s3/blobs/{digest}", follow_redirects=True, timeout=60
            ).content
            for digest in manifest_blobs(image)
        }
        dest = tmp_path / "backup"
        done = pier("backup", str(dest), "--data-dir", str(server.data_dir), "--config", str(config))
        assert done.returncode == 0 and "0 hard link(s), 3 cop(ies)" in done.stdout, done.stdout + done.stderr
    finally:
        server.stop()

    # Into a data dir with blobs on disk, and into another prefix of the bucket.
    plain = _write_config(tmp_path / "plain.toml")
    other = _write_config(tmp_path / "other.toml", on_s3(uuid.uuid4().hex[:12]))
    for name, target_config in (("disk", plain), ("bucket", other)):
        new = tmp_path / name
        done = pier("restore", str(dest), "--data-dir", str(new), "--config", str(target_config))
        assert done.returncode == 0, done.stderr
        restored = PierServer(new, target_config, owner_env()).start()
        try:
            pulls_whole(restored, "on-s3", "v1", image, blobs)
        finally:
            restored.stop()
    assert any((tmp_path / "disk" / "blobs" / "sha256").rglob("*"))
