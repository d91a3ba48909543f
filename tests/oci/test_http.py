"""/v2/ over raw HTTP: every route, the upload protocol's edges, auth, and every error code pier sends."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import httpx
import pytest

from tests.conftest import OWNER, client
from tests.images import DOCKER_LIST, DOCKER_MANIFEST, OCI_MANIFEST, config, digest_of, index_manifest, push_image
from tests.oci.helpers import basic, bearer
from tests.server import PierServer


@pytest.fixture
def v2(pier: PierServer, repo: str) -> str:
    return f"{pier.url}/v2/{OWNER.alias}/{repo}"


@pytest.fixture
def auth(pier: PierServer, ecr: Any) -> dict[str, str]:
    return bearer(pier, ecr)


def error_code(response: httpx.Response) -> str:
    return str(response.json()["errors"][0]["code"])


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def start_upload(v2: str, auth: dict[str, str]) -> str:
    response = httpx.post(f"{v2}/blobs/uploads/", headers=auth)
    assert response.status_code == 202
    assert response.headers["Range"] == "0-0"
    return response.headers["Location"]


def test_base_endpoint_challenges_then_accepts_tokens(pier: PierServer, ecr: Any) -> None:
    response = httpx.get(f"{pier.url}/v2/")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (f'Bearer realm="{pier.url}/token",service="{pier.host}"')
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert error_code(response) == "UNAUTHORIZED"
    assert httpx.get(f"{pier.url}/v2/", headers=bearer(pier)).status_code == 200  # anonymous token
    assert httpx.get(f"{pier.url}/v2/", headers=bearer(pier, ecr)).status_code == 200
    assert httpx.get(f"{pier.url}/v2/", headers=basic(ecr)).status_code == 200


def test_token_endpoint(pier: PierServer, ecr: Any) -> None:
    anonymous = httpx.get(f"{pier.url}/token", params={"service": pier.host, "scope": "repository:a/b:pull"})
    assert anonymous.status_code == 200
    assert anonymous.json()["expires_in"] > 0
    assert anonymous.json()["token"] == anonymous.json()["access_token"]
    wrong = httpx.get(f"{pier.url}/token", auth=("AWS", "wrong"))
    assert wrong.status_code == 401
    wrong_user = httpx.get(f"{pier.url}/token", auth=("admin", "whatever"))
    assert wrong_user.status_code == 401
    from tests.oci.helpers import password

    form = httpx.post(
        f"{pier.url}/token",
        data={"grant_type": "password", "username": "AWS", "password": password(ecr), "service": pier.host},
    )
    assert form.status_code == 200 and form.json()["access_token"]


def test_tampered_and_foreign_tokens(v2: str, pier: PierServer, auth: dict[str, str]) -> None:
    token = auth["Authorization"]
    tampered = {"Authorization": token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")}
    response = httpx.post(f"{v2}/blobs/uploads/", headers=tampered)
    assert response.status_code == 401
    assert "WWW-Authenticate" in response.headers
    assert httpx.get(f"{v2}/tags/list", headers={"Authorization": "Bearer not.a.token"}).status_code == 401
    assert httpx.get(f"{v2}/tags/list", headers={"Authorization": "Digest x"}).status_code == 401


def test_anonymous_and_foreign_pushes(v2: str, pier: PierServer, ecr_other: Any) -> None:
    anonymous = httpx.post(f"{v2}/blobs/uploads/", headers=bearer(pier))
    assert anonymous.status_code == 401
    assert 'scope="repository:' in anonymous.headers["WWW-Authenticate"]
    foreign = httpx.post(f"{v2}/blobs/uploads/", headers=bearer(pier, ecr_other))
    assert foreign.status_code == 403  # logged in, but not allowed: never 401
    assert error_code(foreign) == "DENIED"
    assert httpx.delete(f"{v2}/manifests/latest", headers=bearer(pier, ecr_other)).status_code == 403


def test_a_pull_token_of_a_logged_in_user_can_push(v2: str, pier: PierServer, ecr: Any, repo: str) -> None:
    """oras-py keeps the first token it got (for a pull) and pushes with it."""
    pull_token = bearer(pier, ecr, scope=f"repository:{OWNER.alias}/{repo}:pull")
    data = b"pushed with a pull-scoped token"
    response = httpx.post(f"{v2}/blobs/uploads/", params={"digest": sha(data)}, content=data, headers=pull_token)
    assert response.status_code == 201


def test_monolithic_upload_and_blob_reads(v2: str, auth: dict[str, str]) -> None:
    data = os.urandom(100_000)
    response = httpx.post(f"{v2}/blobs/uploads/", params={"digest": sha(data)}, content=data, headers=auth)
    assert response.status_code == 201
    assert response.headers["Location"].endswith(f"/blobs/{sha(data)}")
    assert response.headers["Docker-Content-Digest"] == sha(data)
    got = httpx.get(f"{v2}/blobs/{sha(data)}", follow_redirects=True)  # anonymous; S3 answers with a redirect
    assert got.content == data
    head = httpx.head(f"{v2}/blobs/{sha(data)}")
    assert head.status_code == 200 and head.headers["content-length"] == str(len(data)) and head.content == b""
    assert head.headers["Docker-Content-Digest"] == sha(data)
    assert head.headers["ETag"] == f'"{sha(data)}"'
    ranged = httpx.get(f"{v2}/blobs/{sha(data)}", headers={"Range": "bytes=1000-1999"}, follow_redirects=True)
    assert ranged.status_code == 206
    assert ranged.content == data[1000:2000]
    assert ranged.headers["content-range"] == f"bytes 1000-1999/{len(data)}"


def test_post_then_put(v2: str, auth: dict[str, str]) -> None:
    data = b"one request after the other"
    location = start_upload(v2, auth)
    response = httpx.put(location, params={"digest": sha(data)}, content=data, headers=auth)
    assert response.status_code == 201
    assert httpx.get(f"{v2}/blobs/{sha(data)}", follow_redirects=True).content == data


def test_chunked_upload_with_status_and_out_of_order_chunk(v2: str, auth: dict[str, str]) -> None:
    data = os.urandom(3000)
    location = start_upload(v2, auth)
    first = httpx.patch(location, content=data[:1000], headers={**auth, "Content-Range": "0-999"})
    assert first.status_code == 202
    assert first.headers["Range"] == "0-999"
    skipped = httpx.patch(location, content=data[2000:], headers={**auth, "Content-Range": "2000-2999"})
    assert skipped.status_code == 416
    assert skipped.headers["Range"] == "0-999"
    assert error_code(skipped) == "BLOB_UPLOAD_INVALID"
    status = httpx.get(location, headers=auth)
    assert status.status_code == 204 and status.headers["Range"] == "0-999"
    assert (
        httpx.patch(location, content=data[1000:2000], headers={**auth, "Content-Range": "1000-1999"}).status_code
        == 202
    )
    done = httpx.put(
        location, params={"digest": sha(data)}, content=data[2000:], headers={**auth, "Content-Range": "2000-2999"}
    )
    assert done.status_code == 201
    assert httpx.get(f"{v2}/blobs/{sha(data)}", follow_redirects=True).content == data


def test_chunks_sent_back_to_back_past_a_background_flush(v2: str, auth: dict[str, str]) -> None:
    """On the filesystem store, every 32 MiB of an upload starts writeback beside the transfer (a thread
    flushing the file through a descriptor of its own). The chunk sent as soon as the one before it was
    answered must find the upload free: it was refused as "another request is writing" (416) while the
    flush ran, because the flush's descriptor kept the upload's lock."""
    data = os.urandom(48 * 1024 * 1024)
    chunk = 1024 * 1024
    location = start_upload(v2, auth)
    with httpx.Client(headers=auth, timeout=60) as http:
        for start in range(0, len(data), chunk):
            end = start + chunk - 1
            sent = http.patch(location, content=data[start : end + 1], headers={"Content-Range": f"{start}-{end}"})
            assert sent.status_code == 202, (start, sent.text)
            assert sent.headers["Range"] == f"0-{end}"
            location = sent.headers["Location"]
        done = http.put(location, params={"digest": sha(data)})
        assert done.status_code == 201, done.text
        assert http.get(f"{v2}/blobs/{sha(data)}", follow_redirects=True).content == data


def test_streamed_patch_without_length(v2: str, auth: dict[str, str]) -> None:
    data = os.urandom(3 * 1024 * 1024)

    def stream() -> Any:
        for start in range(0, len(data), 65536):
            yield data[start : start + 65536]

    location = start_upload(v2, auth)
    response = httpx.patch(location, content=stream(), headers=auth)  # chunked transfer encoding
    assert response.status_code == 202
    assert response.headers["Range"] == f"0-{len(data) - 1}"
    assert httpx.put(location, params={"digest": sha(data)}, headers=auth).status_code == 201
    assert httpx.get(f"{v2}/blobs/{sha(data)}", follow_redirects=True).content == data


def test_wrong_length_and_wrong_digest(v2: str, auth: dict[str, str]) -> None:
    location = start_upload(v2, auth)
    short = httpx.patch(location, content=b"abc", headers={**auth, "Content-Range": "0-9"})
    assert short.status_code == 400
    assert error_code(short) == "SIZE_INVALID"
    assert httpx.get(location, headers=auth).headers["Range"] == "0-0"  # nothing of it was kept
    httpx.patch(location, content=b"abc", headers=auth)
    wrong = httpx.put(location, params={"digest": sha(b"xyz")}, headers=auth)
    assert wrong.status_code == 400
    assert error_code(wrong) == "DIGEST_INVALID"
    bad = httpx.put(location, params={"digest": "sha256:zz"}, headers=auth)
    assert error_code(bad) == "DIGEST_INVALID"
    assert httpx.put(location, params={"digest": sha(b"abc")}, headers=auth).status_code == 201


def test_cancel_and_unknown_uploads(v2: str, auth: dict[str, str]) -> None:
    location = start_upload(v2, auth)
    assert httpx.delete(location, headers=auth).status_code == 204
    gone = httpx.patch(location, content=b"x", headers=auth)
    assert gone.status_code == 404
    assert error_code(gone) == "BLOB_UPLOAD_UNKNOWN"
    assert httpx.get(f"{v2}/blobs/uploads/not-a-uuid", headers=auth).status_code == 404


def test_chunked_upload_survives_a_restart(make_server: Any) -> None:
    server = make_server()
    ecr = client(server)
    ecr.create_repository(repositoryName="resume")
    v2, auth = f"{server.url}/v2/{OWNER.alias}/resume", bearer(server, ecr)
    data = os.urandom(200_000)
    location = start_upload(v2, auth)
    assert (
        httpx.patch(location, content=data[:120_000], headers={**auth, "Content-Range": "0-119999"}).status_code == 202
    )
    server.restart()
    auth = bearer(server, ecr)
    assert httpx.get(location, headers=auth).headers["Range"] == "0-119999"
    httpx.patch(location, content=data[120_000:], headers={**auth, "Content-Range": "120000-199999"})
    assert httpx.put(location, params={"digest": sha(data)}, headers=auth).status_code == 201  # re-hashed from disk
    assert httpx.get(f"{v2}/blobs/{sha(data)}", follow_redirects=True).content == data


def test_cross_repository_mount(
    pier: PierServer, ecr: Any, ecr_other: Any, v2: str, auth: dict[str, str], repo: str
) -> None:
    data = b"mount me"
    source = f"{repo}-source"
    ecr.create_repository(repositoryName=source)
    httpx.post(
        f"{pier.url}/v2/{OWNER.alias}/{source}/blobs/uploads/", params={"digest": sha(data)}, content=data, headers=auth
    )
    assert httpx.head(f"{v2}/blobs/{sha(data)}").status_code == 404  # not in the target yet
    mounted = httpx.post(
        f"{v2}/blobs/uploads/", params={"mount": sha(data), "from": f"{OWNER.alias}/{source}"}, headers=auth
    )
    assert mounted.status_code == 201
    assert mounted.headers["Docker-Content-Digest"] == sha(data)
    assert httpx.get(f"{v2}/blobs/{sha(data)}", follow_redirects=True).content == data
    missing = httpx.post(
        f"{v2}/blobs/uploads/", params={"mount": sha(b"nothing"), "from": f"{OWNER.alias}/{source}"}, headers=auth
    )
    assert missing.status_code == 202  # falls back to an upload session
    # Another account may mount from a public repository into its own, but never into ours.
    other_repo = f"{repo}-theirs"
    ecr_other.create_repository(repositoryName=other_repo)
    theirs = httpx.post(
        f"{pier.url}/v2/other-alias/{other_repo}/blobs/uploads/",
        params={"mount": sha(data), "from": f"{OWNER.alias}/{source}"},
        headers=bearer(pier, ecr_other),
    )
    assert theirs.status_code == 201


def put_manifest(
    v2: str, auth: dict[str, str], reference: str, manifest: bytes, media_type: str = OCI_MANIFEST, **params: Any
) -> httpx.Response:
    return httpx.put(
        f"{v2}/manifests/{reference}", content=manifest, headers={**auth, "Content-Type": media_type}, params=params
    )


def pushed_config(v2: str, auth: dict[str, str], architecture: str = "amd64") -> bytes:
    config_blob = config(architecture)
    httpx.post(f"{v2}/blobs/uploads/", params={"digest": config_blob.digest}, content=config_blob.data, headers=auth)
    return json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_blob.descriptor, "layers": []}
    ).encode()


def test_manifest_put_get_head_by_tag_and_digest(v2: str, auth: dict[str, str], ecr: Any, repo: str) -> None:
    manifest = pushed_config(v2, auth)
    response = put_manifest(v2, auth, "v1", manifest)
    assert response.status_code == 201
    assert response.headers["Docker-Content-Digest"] == digest_of(manifest)
    assert response.headers["Location"].endswith(f"/manifests/{digest_of(manifest)}")
    for reference in ("v1", digest_of(manifest)):
        got = httpx.get(f"{v2}/manifests/{reference}", headers={"Accept": OCI_MANIFEST})
        assert got.content == manifest
        assert got.headers["content-type"] == OCI_MANIFEST
        assert got.headers["Docker-Content-Digest"] == digest_of(manifest)
        head = httpx.head(f"{v2}/manifests/{reference}")
        assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == str(len(manifest))
    assert put_manifest(v2, auth, "v1", manifest).status_code == 201  # pushing it again is fine on /v2/
    by_digest = put_manifest(v2, auth, digest_of(manifest), manifest, tag=["a", "b"])
    assert by_digest.status_code == 201
    assert by_digest.headers["OCI-Tag"] == "a, b"
    tags = ecr.describe_images(repositoryName=repo)["imageDetails"][0]["imageTags"]
    assert tags == ["a", "b", "v1"]


def test_manifest_errors(v2: str, auth: dict[str, str]) -> None:
    manifest = pushed_config(v2, auth)
    wrong_digest = put_manifest(v2, auth, sha(b"other"), manifest)
    assert (wrong_digest.status_code, error_code(wrong_digest)) == (400, "DIGEST_INVALID")
    invalid = put_manifest(v2, auth, "bad", b"{not json")
    assert (invalid.status_code, error_code(invalid)) == (400, "MANIFEST_INVALID")
    bad_tag = put_manifest(v2, auth, "-no", manifest)
    assert (bad_tag.status_code, error_code(bad_tag)) == (400, "MANIFEST_INVALID")
    document = json.loads(manifest)
    document["layers"] = [
        {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(b"nope"), "size": 4}
    ]
    unknown_blob = put_manifest(v2, auth, "x", json.dumps(document).encode())
    assert (unknown_blob.status_code, error_code(unknown_blob)) == (400, "MANIFEST_BLOB_UNKNOWN")
    too_big = put_manifest(v2, auth, "big", b" " * (4 * 1024 * 1024 + 1))
    assert too_big.status_code == 413
    missing = httpx.get(f"{v2}/manifests/nope")
    assert (missing.status_code, error_code(missing)) == (404, "MANIFEST_UNKNOWN")
    assert httpx.head(f"{v2}/manifests/nope").status_code == 404


def test_control_characters_in_a_manifest_media_type_are_refused(v2: str, auth: dict[str, str]) -> None:
    # These strings are stored in their own columns; PostgreSQL cannot keep a NUL (it once answered 500).
    manifest = json.loads(pushed_config(v2, auth))
    for field in ("artifactType", "config"):
        document = json.loads(json.dumps(manifest))
        if field == "config":
            document["config"]["mediaType"] = "application/vnd.oci.image.config.v1+json\u0000"
        else:
            document["artifactType"] = "application/vnd.example\n+json"
        refused = put_manifest(v2, auth, "control", json.dumps(document).encode())
        assert (refused.status_code, error_code(refused)) == (400, "MANIFEST_INVALID"), field


def test_accept_negotiation(pier: PierServer, ecr: Any, repo: str, v2: str) -> None:
    amd, _ = push_image(ecr, repo, None, docker=True, architecture="amd64")
    arm, _ = push_image(ecr, repo, None, docker=True, architecture="arm64")
    index = index_manifest([(amd, "amd64", "linux"), (arm, "arm64", "linux")], docker=True)
    ecr.put_image(repositoryName=repo, imageManifest=index.decode(), imageTag="multi")
    as_list = httpx.get(f"{v2}/manifests/multi", headers={"Accept": f"{DOCKER_LIST}, {DOCKER_MANIFEST}"})
    assert as_list.content == index
    # A client that cannot take a list gets the linux/amd64 image.
    single = httpx.get(f"{v2}/manifests/multi", headers={"Accept": DOCKER_MANIFEST})
    assert single.content == amd
    assert single.headers["Docker-Content-Digest"] == digest_of(amd)
    # Several Accept lines (skopeo sends them so) are merged.
    lines = httpx.get(f"{v2}/manifests/multi", headers=[("Accept", DOCKER_MANIFEST), ("Accept", DOCKER_LIST)])
    assert lines.content == index
    refused = httpx.get(f"{v2}/manifests/multi", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert refused.status_code == 404


def test_tags_list_pagination(v2: str, auth: dict[str, str], pier: PierServer, repo: str) -> None:
    manifest = pushed_config(v2, auth)
    names = sorted(f"t{i:02d}" for i in range(7))
    for name in names:
        put_manifest(v2, auth, name, manifest)
    everything = httpx.get(f"{v2}/tags/list").json()
    assert everything == {"name": f"{OWNER.alias}/{repo}", "tags": names}
    collected, url = [], f"{v2}/tags/list?n=3"
    while url:
        page = httpx.get(url)
        collected += page.json()["tags"]
        link = page.headers.get("Link")
        url = pier.url + link[1 : link.index(">")] if link else ""
    assert collected == names
    after = httpx.get(f"{v2}/tags/list", params={"n": 2, "last": "t03"}).json()["tags"]
    assert after == ["t04", "t05"]
    zero = httpx.get(f"{v2}/tags/list", params={"n": 0})
    assert zero.json()["tags"] == [] and "Link" not in zero.headers
    assert httpx.get(f"{v2}/tags/list", params={"n": "-1"}).status_code == 400


def test_deletes(v2: str, auth: dict[str, str], ecr: Any, repo: str) -> None:
    manifest = pushed_config(v2, auth)
    put_manifest(v2, auth, "keep", manifest)
    put_manifest(v2, auth, "drop", manifest)
    assert httpx.delete(f"{v2}/manifests/drop", headers=auth).status_code == 202
    assert httpx.get(f"{v2}/manifests/drop").status_code == 404
    assert httpx.get(f"{v2}/manifests/keep").status_code == 200  # deleting a tag keeps the image
    config_digest = json.loads(manifest)["config"]["digest"]
    used = httpx.delete(f"{v2}/blobs/{config_digest}", headers=auth)
    assert used.status_code == 400  # the image needs it
    assert httpx.delete(f"{v2}/manifests/{digest_of(manifest)}", headers=auth).status_code == 202
    assert httpx.get(f"{v2}/manifests/keep").status_code == 404
    assert ecr.describe_images(repositoryName=repo)["imageDetails"] == []
    assert httpx.delete(f"{v2}/blobs/{config_digest}", headers=auth).status_code == 202
    gone = httpx.get(f"{v2}/blobs/{config_digest}")
    assert (gone.status_code, error_code(gone)) == (404, "BLOB_UNKNOWN")
    assert httpx.delete(f"{v2}/manifests/{sha(b'never')}", headers=auth).status_code == 404


def test_names(pier: PierServer) -> None:
    unknown = httpx.get(f"{pier.url}/v2/{OWNER.alias}/no/such/repo/tags/list")
    assert (unknown.status_code, error_code(unknown)) == (404, "NAME_UNKNOWN")
    unknown_alias = httpx.get(f"{pier.url}/v2/nobody-here/repo/tags/list")
    assert error_code(unknown_alias) == "NAME_UNKNOWN"
    invalid = httpx.get(f"{pier.url}/v2/{OWNER.alias}/Bad_Name/tags/list")
    assert (invalid.status_code, error_code(invalid)) == (400, "NAME_INVALID")
    traversal = httpx.get(f"{pier.url}/v2/{OWNER.alias}/..%2F..%2Fetc/blobs/sha256:{'0' * 64}")
    assert traversal.status_code in (400, 404)


def test_referrers_rejects_bad_digests(v2: str) -> None:
    response = httpx.get(f"{v2}/referrers/sha256:nothex")
    assert (response.status_code, error_code(response)) == (400, "DIGEST_INVALID")
    assert httpx.get(f"{v2}/referrers/{sha(b'none')}").json()["manifests"] == []


def test_client_text_never_reaches_a_response_header(pier: PierServer) -> None:
    """A NUL in the name once made the challenge's scope an invalid header (a 500); fuzzing found it."""
    response = httpx.put(f"{pier.url}/v2/%00/manifests/x", content=b"{}")
    assert response.status_code == 401
    assert "scope" not in response.headers["WWW-Authenticate"]
    crlf = httpx.put(f"{pier.url}/v2/{OWNER.alias}/a%0d%0aX-Injected:%201/manifests/x", content=b"{}")
    assert crlf.status_code in (400, 401, 404) and "X-Injected" not in crlf.headers  # no route takes a newline
