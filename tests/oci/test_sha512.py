"""sha512 digests on /v2/, everywhere a digest appears, as the OCI conformance suite's sha512 cases send
them: every way of pushing a blob (with and without `digest-algorithm`), mounts, manifests whose
descriptors are sha512 pushed by their sha512 digest (with tags as parameters), indexes, referrers,
deletes, storage paths and GC; and the DIGEST_INVALID answers for digests pier does not support."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.backends import Backend, PostgresS3, assert_blobs_are_whole
from tests.conftest import OWNER, client
from tests.oci.helpers import bearer
from tests.server import PierServer

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"


def sha512(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def v2(pier: PierServer, repo: str) -> str:
    return f"{pier.url}/v2/{OWNER.alias}/{repo}"


@pytest.fixture
def auth(pier: PierServer, ecr: Any) -> dict[str, str]:
    return bearer(pier, ecr)


def error(response: httpx.Response) -> tuple[int, str, str]:
    first = response.json()["errors"][0]
    return response.status_code, first["code"], first["message"]


def start(v2: str, auth: dict[str, str], **params: str) -> str:
    response = httpx.post(f"{v2}/blobs/uploads/", params=params, headers=auth)
    assert response.status_code == 202, response.text
    return response.headers["Location"]


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    for first in range(0, len(data), size):
        yield data[first : first + size]


# Every way of pushing a blob, as (name, function(v2, auth, data, digest, params) -> the final response).


def post_only(v2: str, auth: dict[str, str], data: bytes, digest: str, params: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{v2}/blobs/uploads/", params={**params, "digest": digest}, content=data, headers=auth)


def post_put(v2: str, auth: dict[str, str], data: bytes, digest: str, params: dict[str, str]) -> httpx.Response:
    location = start(v2, auth, **params)
    return httpx.put(location, params={"digest": digest}, content=data, headers=auth)


def chunked(v2: str, auth: dict[str, str], data: bytes, digest: str, params: dict[str, str]) -> httpx.Response:
    location = start(v2, auth, **params)
    offset = 0
    for chunk in chunks(data, len(data) // 3 + 1):
        headers = {**auth, "Content-Range": f"{offset}-{offset + len(chunk) - 1}"}
        patched = httpx.patch(location, content=chunk, headers=headers)
        assert patched.status_code == 202, patched.text
        location, offset = patched.headers["Location"], offset + len(chunk)
    return httpx.put(location, params={"digest": digest}, headers=auth)


def chunked_put_last(v2: str, auth: dict[str, str], data: bytes, digest: str, params: dict[str, str]) -> httpx.Response:
    location = start(v2, auth, **params)
    middle = len(data) // 2
    assert httpx.patch(location, content=data[:middle], headers={**auth, "Content-Range": f"0-{middle - 1}"}).is_success
    last = {**auth, "Content-Range": f"{middle}-{len(data) - 1}"}
    return httpx.put(location, params={"digest": digest}, content=data[middle:], headers=last)


def streamed(v2: str, auth: dict[str, str], data: bytes, digest: str, params: dict[str, str]) -> httpx.Response:
    location = start(v2, auth, **params)
    patched = httpx.patch(location, content=chunks(data, 65536), headers=auth)  # chunked transfer encoding
    assert patched.status_code == 202, patched.text
    return httpx.put(patched.headers["Location"], params={"digest": digest}, headers=auth)


PUSHES = {
    "post only": post_only,
    "post+put": post_put,
    "chunked": chunked,
    "chunked, last chunk in the put": chunked_put_last,
    "streamed": streamed,
}


@pytest.mark.parametrize("declared", [False, True], ids=["algorithm from the digest", "digest-algorithm=sha512"])
def test_every_push_of_a_sha512_blob_then_head_get_delete(v2: str, auth: dict[str, str], declared: bool) -> None:
    params = {"digest-algorithm": "sha512"} if declared else {}
    for name, push in PUSHES.items():
        data = os.urandom(300_000)
        digest = sha512(data)
        pushed = push(v2, auth, data, digest, params)
        assert pushed.status_code == 201, (name, pushed.text)
        assert pushed.headers["Docker-Content-Digest"] == digest, name
        assert pushed.headers["Location"].endswith(f"/blobs/{digest}"), name
        head = httpx.head(f"{v2}/blobs/{digest}")
        assert head.status_code == 200, name
        assert (head.headers["Docker-Content-Digest"], head.headers["Content-Length"]) == (digest, str(len(data)))
        got = httpx.get(f"{v2}/blobs/{digest}", follow_redirects=True)
        assert (got.status_code, got.content) == (200, data), name
        assert httpx.head(f"{v2}/blobs/{sha256(data)}").status_code == 404, name  # stored under sha512 only
        assert httpx.delete(f"{v2}/blobs/{digest}", headers=auth).status_code == 202, name
        assert httpx.get(f"{v2}/blobs/{digest}").status_code == 404, name


def test_bytes_that_do_not_match_a_sha512_digest_are_refused(v2: str, auth: dict[str, str]) -> None:
    for name, push in PUSHES.items():
        data = os.urandom(200_000)
        refused = push(v2, auth, data + b"oh no", sha512(data), {})
        assert refused.status_code == 400, name
        _, code, message = error(refused)
        assert code == "DIGEST_INVALID", name
        assert sha512(data + b"oh no") in message, name  # what the bytes are, in the algorithm asked for
        assert httpx.head(f"{v2}/blobs/{sha512(data)}").status_code == 404, name


def test_well_known_sha512_blobs_empty_and_empty_json(v2: str, auth: dict[str, str]) -> None:
    for data in (b"", b"{}"):
        digest = sha512(data)
        assert post_put(v2, auth, data, digest, {}).status_code == 201
        head = httpx.head(f"{v2}/blobs/{digest}")
        assert (head.status_code, head.headers["Content-Length"]) == (200, str(len(data)))
        assert httpx.get(f"{v2}/blobs/{digest}", follow_redirects=True).content == data
        assert httpx.delete(f"{v2}/blobs/{digest}", headers=auth).status_code == 202


def test_the_same_bytes_in_both_algorithms_are_two_blobs(v2: str, auth: dict[str, str]) -> None:
    data = os.urandom(5000)
    assert post_only(v2, auth, data, sha256(data), {}).status_code == 201
    assert post_only(v2, auth, data, sha512(data), {}).status_code == 201
    assert httpx.delete(f"{v2}/blobs/{sha256(data)}", headers=auth).status_code == 202
    assert httpx.get(f"{v2}/blobs/{sha512(data)}", follow_redirects=True).content == data
    assert httpx.head(f"{v2}/blobs/{sha256(data)}").status_code == 404


def test_the_finishing_digest_decides_even_against_digest_algorithm(v2: str, auth: dict[str, str]) -> None:
    """digest-algorithm=sha512 then a sha256 digest on the PUT: the bytes are read again and hashed in sha256."""
    data = os.urandom(100_000)
    location = start(v2, auth, **{"digest-algorithm": "sha512"})
    assert httpx.patch(location, content=data, headers=auth).status_code == 202
    done = httpx.put(location, params={"digest": sha256(data)}, headers=auth)
    assert (done.status_code, done.headers["Docker-Content-Digest"]) == (201, sha256(data))
    assert httpx.get(f"{v2}/blobs/{sha256(data)}", follow_redirects=True).content == data


def test_a_sha512_upload_continues_after_a_restart(make_server: Any, backend: Backend) -> None:
    """After a restart no running hash is left: finishing re-reads the bytes in sha512 (also from S3)."""
    server = make_server()
    ecr = client(server)
    ecr.create_repository(repositoryName="resume512")
    v2 = f"{server.url}/v2/{OWNER.alias}/resume512"
    data = os.urandom(9 * 1024 * 1024 + 17)  # more than one S3 part
    location = start(v2, bearer(server, ecr))
    first = httpx.patch(
        location, content=data[:6_000_000], headers={**bearer(server, ecr), "Content-Range": "0-5999999"}
    )
    assert first.status_code == 202
    server.restart()
    auth = bearer(server, ecr)
    rest = {**auth, "Content-Range": f"6000000-{len(data) - 1}"}
    assert httpx.patch(location, content=data[6_000_000:], headers=rest).status_code == 202
    assert httpx.put(location, params={"digest": sha512(data)}, headers=auth).status_code == 201
    assert httpx.get(f"{v2}/blobs/{sha512(data)}", follow_redirects=True).content == data
    stored = backend.blob_digests(server)
    assert sha512(data) in stored
    if not isinstance(backend, PostgresS3):  # the layout is a contract: blobs/<algorithm>/<2 hex>/<hex>
        hex_digest = sha512(data).removeprefix("sha512:")
        assert (server.data_dir / "blobs" / "sha512" / hex_digest[:2] / hex_digest).read_bytes() == data
    assert_blobs_are_whole(backend, server)


def test_mounting_sha512_blobs(pier: PierServer, v2: str, auth: dict[str, str], ecr: Any, repo: str) -> None:
    source = f"{repo}-source"
    ecr.create_repository(repositoryName=source)
    data = os.urandom(2000)
    assert post_only(f"{pier.url}/v2/{OWNER.alias}/{source}", auth, data, sha512(data), {}).status_code == 201
    mounted = httpx.post(
        f"{v2}/blobs/uploads/", params={"mount": sha512(data), "from": f"{OWNER.alias}/{source}"}, headers=auth
    )
    assert (mounted.status_code, mounted.headers["Docker-Content-Digest"]) == (201, sha512(data))
    assert mounted.headers["Location"].endswith(f"/blobs/{sha512(data)}")
    assert httpx.get(f"{v2}/blobs/{sha512(data)}", follow_redirects=True).content == data
    missing = httpx.post(
        f"{v2}/blobs/uploads/", params={"mount": sha512(b"never"), "from": f"{OWNER.alias}/{source}"}, headers=auth
    )
    assert missing.status_code == 202  # a mount that cannot happen becomes an upload
    bad = httpx.post(f"{v2}/blobs/uploads/", params={"mount": "sha512:abc", "from": source}, headers=auth)
    assert error(bad)[:2] == (400, "DIGEST_INVALID")


def push_blob512(v2: str, auth: dict[str, str], data: bytes, media_type: str) -> dict[str, Any]:
    assert post_only(v2, auth, data, sha512(data), {}).status_code == 201
    return {"mediaType": media_type, "digest": sha512(data), "size": len(data)}


def put_manifest(v2: str, auth: dict[str, str], reference: str, body: bytes, **params: Any) -> httpx.Response:
    media_type = json.loads(body)["mediaType"]
    return httpx.put(
        f"{v2}/manifests/{reference}", content=body, headers={**auth, "Content-Type": media_type}, params=params
    )


def test_sha512_manifests_indexes_tags_and_referrers(v2: str, auth: dict[str, str], ecr: Any, repo: str) -> None:
    images = []
    for architecture in ("amd64", "arm64"):
        config = push_blob512(v2, auth, json.dumps({"architecture": architecture, "os": "linux"}).encode(), CONFIG_TYPE)
        layer = push_blob512(v2, auth, os.urandom(1000), LAYER_TYPE)
        manifest = json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer]}
        ).encode()
        pushed = put_manifest(v2, auth, sha512(manifest), manifest)
        assert pushed.status_code == 201, pushed.text
        assert pushed.headers["Docker-Content-Digest"] == sha512(manifest)
        assert pushed.headers["Location"].endswith(f"/manifests/{sha512(manifest)}")
        images.append((manifest, architecture))
    entries = [
        {
            "mediaType": OCI_MANIFEST,
            "digest": sha512(manifest),
            "size": len(manifest),
            "platform": {"architecture": architecture, "os": "linux"},
        }
        for manifest, architecture in images
    ]
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
    # A sha512 manifest cannot be named by a tag in the path (that would mean sha256): tags come as parameters.
    tagged = put_manifest(v2, auth, sha512(index), index, tag=["multi", "latest"])
    assert (tagged.status_code, tagged.headers["OCI-Tag"]) == (201, "multi, latest")
    for reference in (sha512(index), "multi", "latest"):
        got = httpx.get(f"{v2}/manifests/{reference}", headers={"Accept": OCI_INDEX})
        assert (got.status_code, got.content) == (200, index), reference
        assert got.headers["Docker-Content-Digest"] == sha512(index), reference
        head = httpx.head(f"{v2}/manifests/{reference}", headers={"Accept": OCI_INDEX})
        assert (head.headers["Docker-Content-Digest"], head.headers["Content-Length"]) == (
            sha512(index),
            str(len(index)),
        )
    assert httpx.get(f"{v2}/manifests/{sha256(index)}").status_code == 404  # stored under its sha512 digest only
    described = {d["imageDigest"] for d in ecr.describe_images(repositoryName=repo)["imageDetails"]}
    assert described == {sha512(index), *(sha512(m) for m, _ in images)}

    # An artifact whose subject is named by sha512, pushed by its sha512 digest: a referrer of it.
    empty = push_blob512(v2, auth, b"{}", "application/vnd.oci.empty.v1+json")
    subject = {"mediaType": OCI_INDEX, "digest": sha512(index), "size": len(index)}
    artifact = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.example.sbom",
            "config": empty,
            "layers": [empty],
            "subject": subject,
            "annotations": {"org.example": "yes"},
        }
    ).encode()
    pushed = put_manifest(v2, auth, sha512(artifact), artifact)
    assert (pushed.status_code, pushed.headers["OCI-Subject"]) == (201, sha512(index))
    referrers = httpx.get(f"{v2}/referrers/{sha512(index)}")
    assert referrers.status_code == 200
    assert referrers.json()["manifests"] == [
        {
            "mediaType": OCI_MANIFEST,
            "digest": sha512(artifact),
            "size": len(artifact),
            "artifactType": "application/vnd.example.sbom",
            "annotations": {"org.example": "yes"},
        }
    ]
    filtered = httpx.get(f"{v2}/referrers/{sha512(index)}", params={"artifactType": "application/other"})
    assert filtered.json()["manifests"] == []

    # Deletes by sha512 digest: the artifact, the index (and its tags), then an image.
    assert httpx.delete(f"{v2}/manifests/{sha512(artifact)}", headers=auth).status_code == 202
    assert httpx.get(f"{v2}/referrers/{sha512(index)}").json()["manifests"] == []
    assert httpx.delete(f"{v2}/manifests/{sha512(index)}", headers=auth).status_code == 202
    assert httpx.get(f"{v2}/manifests/multi").status_code == 404
    assert httpx.delete(f"{v2}/manifests/{sha512(images[0][0])}", headers=auth).status_code == 202
    assert httpx.get(f"{v2}/manifests/{sha512(images[0][0])}").status_code == 404


def test_a_manifest_naming_a_sha512_blob_it_lacks_or_a_wrong_digest(v2: str, auth: dict[str, str]) -> None:
    config = push_blob512(v2, auth, b'{"architecture": "amd64", "os": "linux"}', CONFIG_TYPE)
    absent = {"mediaType": LAYER_TYPE, "digest": sha512(b"not pushed"), "size": 10}
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [absent]})
    assert error(put_manifest(v2, auth, sha512(manifest.encode()), manifest.encode()))[:2] == (
        400,
        "MANIFEST_BLOB_UNKNOWN",
    )
    good = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": []}).encode()
    wrong = put_manifest(v2, auth, sha512(good + b" "), good)
    assert error(wrong)[:2] == (400, "DIGEST_INVALID")
    short = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {**config, "digest": "sha512:ab"}})
    status, code, message = error(put_manifest(v2, auth, "bad-descriptor", short.encode()))
    assert (status, code) == (400, "MANIFEST_INVALID") and "sha512" in message


BAD_DIGESTS = {
    "unknown algorithm": "md5:" + "0" * 32,
    "sha512, too short": "sha512:" + "ab" * 32,
    "sha256, too long": "sha256:" + "ab" * 64,
    "uppercase hex": "sha512:" + "AB" * 64,
    "not hex": "sha512:" + "zz" * 64,
    "not a digest": "sha256-" + "0" * 64,
}


@pytest.mark.parametrize("bad", list(BAD_DIGESTS.values()), ids=list(BAD_DIGESTS))
def test_digests_pier_does_not_support_are_digest_invalid_everywhere(v2: str, auth: dict[str, str], bad: str) -> None:
    location = start(v2, auth)
    answers = {
        "GET blob": httpx.get(f"{v2}/blobs/{bad}"),
        "DELETE blob": httpx.delete(f"{v2}/blobs/{bad}", headers=auth),
        "POST ?digest": httpx.post(f"{v2}/blobs/uploads/", params={"digest": bad}, content=b"x", headers=auth),
        "PUT ?digest": httpx.put(location, params={"digest": bad}, content=b"x", headers=auth),
        "POST ?mount": httpx.post(f"{v2}/blobs/uploads/", params={"mount": bad, "from": "a/b"}, headers=auth),
        "GET manifest": httpx.get(f"{v2}/manifests/{bad}"),
        "PUT manifest": httpx.put(
            f"{v2}/manifests/{bad}", content=b"{}", headers={**auth, "Content-Type": OCI_MANIFEST}
        ),
        "DELETE manifest": httpx.delete(f"{v2}/manifests/{bad}", headers=auth),
        "GET referrers": httpx.get(f"{v2}/referrers/{bad}"),
    }
    if ":" not in bad:  # without a colon it is a tag (an invalid one) where a tag may stand
        for where in ("GET manifest", "PUT manifest", "DELETE manifest"):
            answers.pop(where)
    for where, answer in answers.items():
        status, code, message = error(answer)
        assert (status, code) == (400, "DIGEST_INVALID"), (where, answer.text)
        assert "sha256" in message and "sha512" in message, (where, message)  # names what pier supports
    assert httpx.head(f"{v2}/blobs/{bad}").status_code == 400  # a HEAD answer has no body
    assert httpx.get(location, headers=auth).status_code == 204  # the upload is still there, untouched


def test_an_unknown_digest_algorithm_parameter(v2: str, auth: dict[str, str]) -> None:
    status, code, message = error(httpx.post(f"{v2}/blobs/uploads/", params={"digest-algorithm": "md5"}, headers=auth))
    assert (status, code) == (400, "DIGEST_INVALID")
    assert "md5" in message and "sha256" in message and "sha512" in message
    data = b"declared one algorithm, sent another"
    clash = httpx.post(
        f"{v2}/blobs/uploads/",
        params={"digest-algorithm": "sha256", "digest": sha512(data)},
        content=data,
        headers=auth,
    )
    assert error(clash)[:2] == (400, "DIGEST_INVALID")
    assert start(v2, auth, **{"digest-algorithm": "sha256"})  # the canonical one may be named too


def test_gc_collects_sha512_blobs_no_image_uses(make_server: Any, backend: Backend) -> None:
    server = make_server()
    ecr = client(server)
    ecr.create_repository(repositoryName="gc512")
    v2, auth = f"{server.url}/v2/{OWNER.alias}/gc512", bearer(server, ecr)
    config = push_blob512(v2, auth, b'{"architecture": "amd64", "os": "linux"}', CONFIG_TYPE)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": []}).encode()
    assert put_manifest(v2, auth, sha512(manifest), manifest).status_code == 201
    unused = os.urandom(3000)
    assert post_only(v2, auth, unused, sha512(unused), {}).status_code == 201
    assert httpx.delete(f"{v2}/blobs/{sha512(unused)}", headers=auth).status_code == 202  # no repository uses it
    report = server.run_cli("gc", "--grace-seconds", "0")
    assert "freed 1 blob(s)" in report, report
    stored = backend.blob_digests(server)
    assert sha512(unused) not in stored
    assert config["digest"] in stored
    assert httpx.get(f"{v2}/blobs/{config['digest']}", follow_redirects=True).status_code == 200
    assert_blobs_are_whole(backend, server)
