"""`pier fsck` against a live server, on both backends: bytes damaged behind pier's back (a flipped byte in a
blob file or object, a file or object deleted) are found, named with the images they break, repaired
(quarantined or forgotten, so pulls answer BLOB_UNKNOWN instead of wrong bytes) and healed by pushing the
same blobs again; leftovers are listed and removed; and a scrub beside busy pushers loses nothing."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
import pytest

from tests.backends import BUCKET, Backend, PostgresS3, assert_blobs_are_whole
from tests.conftest import OWNER, client
from tests.images import OCI_MANIFEST, config, digest_of, image_manifest, index_manifest, layer, push_blob, push_image
from tests.oci.helpers import bearer
from tests.server import PierServer
from tests.test_gc_leftovers import Planter, wait_until_old


def fsck(server: PierServer, *flags: str) -> tuple[int, str]:
    """(exit code, standard output) of `pier fsck` on the server's data dir and config."""
    command = [sys.executable, "-m", "pier", "fsck", *flags, "--data-dir", str(server.data_dir)]
    if server.config_file is not None:
        command += ["--config", str(server.config_file)]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, **server.env}, check=False
    )
    assert done.returncode in (0, 1), f"pier fsck exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.returncode, done.stdout


def fsck_json(server: PierServer, *flags: str) -> tuple[int, dict[str, Any]]:
    code, output = fsck(server, "--json", *flags)
    document = json.loads(output)
    assert document["exit_code"] == code
    return code, document


class Stored:
    """A server's blob store, seen from outside: damage it as a disk or a person might."""

    def __init__(self, backend: Backend, server: PierServer) -> None:
        self.s3 = backend.s3.client() if isinstance(backend, PostgresS3) else None
        self.prefix = backend._prefix(server) if isinstance(backend, PostgresS3) else ""
        self.root = server.data_dir / "blobs"

    def _key(self, digest: str) -> str:
        algorithm, hex_digest = digest.split(":", 1)
        return f"{self.prefix}blobs/{algorithm}/{hex_digest}"

    def _path(self, digest: str) -> Any:
        algorithm, hex_digest = digest.split(":", 1)
        return self.root / algorithm / hex_digest[:2] / hex_digest

    def flip_a_byte(self, digest: str) -> None:
        if self.s3 is not None:
            data = bytearray(self.s3.get_object(Bucket=BUCKET, Key=self._key(digest))["Body"].read())
        else:
            data = bytearray(self._path(digest).read_bytes())
        data[len(data) // 2] ^= 0x01
        if self.s3 is not None:
            self.s3.put_object(Bucket=BUCKET, Key=self._key(digest), Body=bytes(data))
        else:
            with open(self._path(digest), "r+b") as handle:  # in place, as bit rot would
                handle.write(bytes(data))

    def delete(self, digest: str) -> None:
        if self.s3 is not None:
            self.s3.delete_object(Bucket=BUCKET, Key=self._key(digest))
        else:
            self._path(digest).unlink()

    def quarantined(self) -> list[str]:
        """Names of the quarantined bytes: <algorithm>/<hex>.<time>."""
        if self.s3 is not None:
            found = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{self.prefix}quarantine/").get("Contents", [])
            return sorted(item["Key"].removeprefix(f"{self.prefix}quarantine/") for item in found)
        folder = self.root / "quarantine"
        return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def v2(server: PierServer, repository: str) -> str:
    return f"{server.url}/v2/{OWNER.alias}/{repository}"


def pull(server: PierServer, repository: str, digest: str) -> httpx.Response:
    return httpx.get(f"{v2(server, repository)}/blobs/{digest}", follow_redirects=True, timeout=60)


def blobs_of(manifest: bytes) -> list[str]:
    document = json.loads(manifest)
    return [descriptor["digest"] for descriptor in [document["config"], *document["layers"]]]


def sha512(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()


def push_sha512_image(server: PierServer, ecr: Any, repository: str, tag: str) -> tuple[bytes, dict[str, bytes]]:
    """An image whose layer is a sha512 blob, pushed on /v2/: (manifest, blobs by digest)."""
    auth = bearer(server, ecr)
    data = os.urandom(300_000)
    pushed = httpx.post(
        f"{v2(server, repository)}/blobs/uploads/", params={"digest": sha512(data)}, content=data, headers=auth
    )
    assert pushed.status_code == 201, pushed.text
    config_blob = config("arm64")
    push_blob(ecr, repository, config_blob.data)
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_blob.descriptor,
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha512(data), "size": len(data)}],
    }
    manifest = json.dumps(document).encode()
    ecr.put_image(repositoryName=repository, imageManifest=manifest.decode(), imageTag=tag)
    return manifest, {sha512(data): data, config_blob.digest: config_blob.data}


def test_damage_is_found_repaired_and_healed_by_pushing_again(make_server: Any, backend: Backend) -> None:
    server = make_server()
    ecr = client(server)
    for name in ("scrub", "other", "third"):
        ecr.create_repository(repositoryName=name)
    first, _ = push_image(ecr, "scrub", "v1", layers=2, random_bytes=200_000)
    second, sha512_blobs = push_sha512_image(server, ecr, "scrub", "v2")
    untouched, _ = push_image(ecr, "scrub", "v3")
    index = index_manifest([(first, "amd64", "linux")])
    ecr.put_image(repositoryName="scrub", imageManifest=index.decode(), imageTag="multi")
    originals = {digest: pull(server, "scrub", digest).content for digest in blobs_of(first) + blobs_of(untouched)}
    originals |= sha512_blobs
    # The same image in another repository, sharing every blob with the first.
    for digest in blobs_of(first):
        push_blob(ecr, "other", originals[digest])
    ecr.put_image(repositoryName="other", imageManifest=first.decode(), imageTag="copy")
    code, summary = fsck(server)
    assert code == 0 and "clean" in summary, summary

    missing = blobs_of(first)[2]  # a sha256 layer of the first image
    corrupt = next(digest for digest in blobs_of(second) if digest.startswith("sha512:"))
    stored = Stored(backend, server)
    stored.delete(missing)
    stored.flip_a_byte(corrupt)

    # Found: the summary and the JSON document name the blobs and what they break.
    code, summary = fsck(server)
    assert code == 1, summary
    assert f"missing  {missing}" in summary and f"corrupt  {corrupt}" in summary
    assert f"image {OWNER.alias}/scrub@{digest_of(first)} (v1) needs {missing}" in summary
    assert f"image {OWNER.alias}/other@{digest_of(first)} (copy) needs {missing}" in summary
    assert f"image {OWNER.alias}/scrub@{digest_of(second)} (v2) needs {corrupt}" in summary
    assert f"index {OWNER.alias}/scrub@{digest_of(index)} (multi) lists {digest_of(first)}" in summary
    assert "run pier fsck --repair" in summary
    code, report = fsck_json(server)
    assert code == 1 and not report["clean"]
    assert {(d["digest"], d["problem"], d["repair"]) for d in report["damaged"]} == {
        (missing, "missing", None),
        (corrupt, "corrupt", None),
    }
    broken = {(b["kind"], b["repository"], b["digest"], tuple(b["tags"])) for b in report["broken"]}
    assert broken == {
        ("image", "scrub", digest_of(first), ("v1",)),
        ("image", "other", digest_of(first), ("copy",)),
        ("image", "scrub", digest_of(second), ("v2",)),
        ("index", "scrub", digest_of(index), ("multi",)),
    }
    assert report["checked"]["blobs"] == len(set(originals)) and report["leftovers"] == []
    assert stored.quarantined() == []  # a check changes nothing

    # Repaired: the corrupt bytes are moved aside, both blobs forgotten.
    code, report = fsck_json(server, "--repair")
    assert code == 0, report
    assert {(d["digest"], d["repair"]) for d in report["damaged"]} == {(missing, "forgotten"), (corrupt, "quarantined")}
    algorithm, hex_digest = corrupt.split(":")
    assert [name.rsplit(".", 1)[0] for name in stored.quarantined()] == [f"{algorithm}/{hex_digest}"]

    # What clients see now: no wrong bytes, the blobs unknown wherever they were, the images still listed.
    for repository, digest in (("scrub", missing), ("scrub", corrupt), ("other", missing)):
        for method in ("GET", "HEAD"):
            answer = httpx.request(method, f"{v2(server, repository)}/blobs/{digest}", follow_redirects=True)
            assert answer.status_code == 404, (method, answer.text)
        assert pull(server, repository, digest).json()["errors"][0]["code"] == "BLOB_UNKNOWN"
    availability = ecr.batch_check_layer_availability(repositoryName="scrub", layerDigests=[missing, corrupt])
    assert availability["layers"] == []
    assert {(f["layerDigest"], f["failureCode"]) for f in availability["failures"]} == {
        (missing, "MissingLayerDigest"),
        (corrupt, "MissingLayerDigest"),
    }
    described = ecr.describe_images(repositoryName="scrub")["imageDetails"]
    assert {d["imageDigest"] for d in described} == {digest_of(m) for m in (first, second, untouched, index)}
    assert httpx.get(f"{v2(server, 'scrub')}/manifests/v1", headers={"Accept": OCI_MANIFEST}).status_code == 200
    auth = bearer(server, ecr)
    mounted = httpx.post(
        f"{v2(server, 'third')}/blobs/uploads/", params={"mount": missing, "from": f"{OWNER.alias}/scrub"}, headers=auth
    )
    assert mounted.status_code == 202  # not mounted: an upload starts instead
    with pytest.raises(ecr.exceptions.LayersNotFoundException):  # no image claims it anew
        ecr.put_image(repositoryName="scrub", imageManifest=first.decode(), imageTag="again")
    for digest in set(originals) - {missing, corrupt}:
        assert pull(server, "scrub", digest).content == originals[digest]

    # Still broken until pushed again: a check says so; another repair has nothing left to do.
    code, report = fsck_json(server)
    assert code == 1
    assert {(lost["digest"], lost["used"]) for lost in report["lost"]} == {(missing, True), (corrupt, True)}
    assert len(report["broken"]) == 4 and report["damaged"] == []
    assert fsck_json(server, "--repair")[0] == 0

    # Healed: the same images pushed again, as clients do (they find the blobs missing and upload them);
    # the other repository, pushed nothing, is whole again too.
    push_blob(ecr, "scrub", originals[missing])
    data = sha512_blobs[corrupt]
    pushed = httpx.post(f"{v2(server, 'scrub')}/blobs/uploads/", params={"digest": corrupt}, content=data, headers=auth)
    assert pushed.status_code == 201, pushed.text
    for tag, manifest in (("v1", first), ("v2", second)):
        put = httpx.put(
            f"{v2(server, 'scrub')}/manifests/{tag}", content=manifest, headers={**auth, "Content-Type": OCI_MANIFEST}
        )
        assert put.status_code == 201, put.text
    code, summary = fsck(server)
    assert code == 0, summary
    assert "clean" in summary
    for repository, manifest in (("scrub", first), ("scrub", second), ("scrub", untouched), ("other", first)):
        for digest in blobs_of(manifest):
            got = pull(server, repository, digest)
            assert got.status_code == 200 and got.content == originals[digest], (repository, digest)
    availability = ecr.batch_check_layer_availability(repositoryName="other", layerDigests=[missing])
    assert [layer["layerDigest"] for layer in availability["layers"]] == [missing]
    assert_blobs_are_whole(backend, server)


def test_leftovers_are_listed_and_removed_through_gc(make_server: Any, backend: Backend) -> None:
    server = make_server()
    planter = Planter(backend, server)
    orphan = os.urandom(3000)
    names = [*planter.upload(), planter.blob(orphan)]
    young = planter.blob(os.urandom(100))
    planter.age(names)  # an hour old on disk; on S3 (whose times cannot be set) a grace of 1 s after waiting
    wait_until_old(planter)
    grace = "1" if planter.s3 else "600"
    code, report = fsck_json(server, "--grace-seconds", grace)
    assert code == 1
    assert {(item["kind"], item["removed"]) for item in report["leftovers"]} == {("blob", False), ("upload", False)}
    assert digest_of(orphan) in {item["name"] for item in report["leftovers"]}
    assert all(planter.present(name) for name in names)
    code, report = fsck_json(server, "--repair", "--grace-seconds", grace)
    assert code == 0 and report["leftovers"] and all(item["removed"] for item in report["leftovers"])
    assert not any(planter.present(name) for name in names)
    if not planter.s3:
        assert planter.present(young)  # younger than the grace window: a write in progress, maybe
    code, summary = fsck(server, "--grace-seconds", "3600")
    assert code == 0, summary


def test_a_scrub_beside_busy_pushers_loses_nothing(make_server: Any, backend: Backend) -> None:
    server = make_server()
    ecr = client(server)
    ecr.create_repository(repositoryName="busy")
    shared = layer({"base": os.urandom(500_000)})
    pushed: list[bytes] = []
    failures: list[BaseException] = []

    def pusher(n: int) -> None:
        mine = client(server)
        try:
            for r in range(3):
                own = layer(random_bytes=300_000)
                config_blob = config(layers=[shared, own])
                for blob in (shared, own, config_blob):
                    if not mine.batch_check_layer_availability(repositoryName="busy", layerDigests=[blob.digest])[
                        "layers"
                    ]:
                        with contextlib.suppress(mine.exceptions.LayerAlreadyExistsException):
                            push_blob(mine, "busy", blob.data)
                manifest = image_manifest(config_blob, [shared, own])
                mine.put_image(repositoryName="busy", imageManifest=manifest.decode(), imageTag=f"p{n}r{r}")
                pushed.append(manifest)
        except BaseException as error:  # reported below
            failures.append(error)

    reports: list[dict[str, Any]] = []
    stop = threading.Event()

    def scrubber() -> None:
        while not stop.is_set():
            reports.append(fsck_json(server, "--repair")[1])

    scrubbing = threading.Thread(target=scrubber)
    scrubbing.start()
    threads = [threading.Thread(target=pusher, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    scrubbing.join()
    assert not failures, failures
    assert len(pushed) == 12 and reports
    assert all(report["damaged"] == [] and report["exit_code"] == 0 for report in reports), reports
    code, summary = fsck(server)
    assert code == 0, summary
    for manifest in pushed:
        for digest in blobs_of(manifest):
            got = pull(server, "busy", digest)
            assert got.status_code == 200 and digest_of(got.content) == digest
    assert_blobs_are_whole(backend, server)


def test_corrupt_bytes_pushed_again_while_fsck_reads_them_are_not_quarantined(
    make_server: Any, backend: Backend
) -> None:
    """fsck --repair reads corrupt bytes slowly (--rate); meanwhile a client pushes the blob again, which
    replaces them. Looked at again under the blob's row, they are other bytes: read again, found whole."""
    server = make_server()
    ecr = client(server)
    ecr.create_repository(repositoryName="race")
    stored = Stored(backend, server)
    # Read at 1 MiB/s: on disk the push waits until fsck has the file open; on S3, two seconds from its start.
    data = os.urandom((2 if stored.s3 is None else 4) * 1024 * 1024)
    digest = push_blob(ecr, "race", data)
    stored.flip_a_byte(digest)
    command = [sys.executable, "-m", "pier", "fsck", "--repair", "--json", "--rate", "1"]
    command += ["--data-dir", str(server.data_dir), "--config", str(server.config_file)]
    scrub = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env={**os.environ, **server.env})
    if stored.s3 is None:  # wait until fsck has the blob's file open (it reads it for ~2 s)
        path = os.path.realpath(stored._path(digest))
        deadline = time.monotonic() + 60
        while not any(os.path.realpath(fd) == path for fd in open_files(scrub.pid)):
            assert time.monotonic() < deadline and scrub.poll() is None
            time.sleep(0.05)
    else:
        time.sleep(2)
    pushed = httpx.post(
        f"{v2(server, 'race')}/blobs/uploads/", params={"digest": digest}, content=data, headers=bearer(server, ecr)
    )
    assert pushed.status_code == 201, pushed.text
    output, _ = scrub.communicate(timeout=120)
    report = json.loads(output)
    assert scrub.returncode == 0 and report["damaged"] == [], report
    if stored.s3 is None:
        assert report["checked"]["bytes"] == 2 * len(data)  # the corrupt bytes, then the ones pushed again
    assert stored.quarantined() == []
    assert pull(server, "race", digest).content == data
    assert fsck(server)[0] == 0


def open_files(pid: int) -> list[str]:
    found = []
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                found.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return found
