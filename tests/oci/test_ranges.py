"""Range requests on blobs (RFC 9110 §14), the same whichever way pier sends the bytes: a file from disk
(Starlette's FileResponse, which has its own rules, is shown only pier's decision), a stream from S3, or a
redirect to S3 (where pier answers the 416s itself)."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import httpx
import pytest

from tests.backends import Backend, PostgresS3
from tests.conftest import OWNER, client
from tests.oci.helpers import bearer
from tests.server import PierServer

SIZE = 2048
# (Range header, the bytes a 206 carries as [start, end)); the OCI conformance suite's cases come first.
PARTIAL = {
    "bytes=500-1499": (500, 1500),
    "bytes=500-": (500, SIZE),
    "bytes=-500": (SIZE - 500, SIZE),
    "bytes=2000-5000": (2000, SIZE),  # a last-pos past the end stops at the end
    "bytes=0-0": (0, 1),
    "bytes=-5000": (0, SIZE),  # a suffix longer than the blob is all of it
    "bytes=0-" + "9" * 40: (0, SIZE),  # numbers of any length
    "BYTES=0-9": (0, 10),  # range units are case-insensitive
    "bytes=0-9,": (0, 10),  # a list may have empty elements
    "bytes= 0-9 , ,": (0, 10),  # and whitespace around them
    "bytes=0010-0019": (10, 20),
}
# Valid but unsatisfiable, or invalid and rejected: 416 with Content-Range: bytes */<size>.
UNSATISFIABLE = [
    "bytes=500-0",  # last-pos before first-pos: invalid (RFC: ignore or reject; the conformance suite: 416)
    "bytes=5000-10000",
    f"bytes={SIZE}-",
    "bytes=" + "9" * 40 + "-",
    "bytes=-0",  # a suffix of nothing
    "bytes=3000-3001,4000-4001",  # several ranges, none satisfiable
    "bytes=0-1,9-2",  # several ranges, one invalid
]
# Ignored: the whole blob, 200.
IGNORED = [
    "items=0-5",  # a unit pier does not know (RFC 9110: MUST ignore)
    "bytes=abc",
    "bytes=",
    "bytes=-",
    "bytes 0-5",
    "bytes=0-5-6",
    "bytes=--5",
    "bytes=5",
    "bytes=1-2;x",
    "bytes=0-1,5-6",  # several ranges: pier sends no multipart/byteranges
    "bytes=0-1,4000-5000",  # several, only one satisfiable
    "bytes=0-5,1-6,2-7",  # overlapping (the RFC's sign of a broken client or an attack)
    "bytes=9-10,0-1,5-6",  # not in ascending order
]


def check_ranges(url: str, data: bytes, etag: str) -> None:
    for header, (start, end) in PARTIAL.items():
        got = httpx.get(url, headers={"Range": header}, follow_redirects=True)
        assert got.status_code == 206, (header, got.status_code)
        assert got.content == data[start:end], header
        assert got.headers["Content-Range"] == f"bytes {start}-{end - 1}/{SIZE}", header
        assert got.headers["Content-Length"] == str(end - start), header
    for header in UNSATISFIABLE:
        refused = httpx.get(url, headers={"Range": header}, follow_redirects=True)
        assert refused.status_code == 416, (header, refused.status_code)
        assert refused.headers["Content-Range"] == f"bytes */{SIZE}", header
    for header in IGNORED:
        whole = httpx.get(url, headers={"Range": header}, follow_redirects=True)
        assert (whole.status_code, whole.content) == (200, data), (header, whole.status_code)
        assert "Content-Range" not in whole.headers, header
    # Range is defined for GET only: a HEAD tells the whole length.
    head = httpx.head(url, headers={"Range": "bytes=0-9"})
    assert (head.status_code, head.headers["Content-Length"]) == (200, str(SIZE))
    # If-Range: the range only if the validator is the blob's ETag, else the whole blob.
    assert httpx.get(url, headers={"Range": "bytes=0-9", "If-Range": etag}).status_code == 206
    for stale in ('"sha256:' + "0" * 64 + '"', "W/" + etag, "Sat, 01 Jan 2000 00:00:00 GMT"):
        other = httpx.get(url, headers={"Range": "bytes=0-9", "If-Range": stale})
        assert (other.status_code, other.content) == (200, data), stale
    # Two Range fields are no ranges-specifier: ignored.
    twice = httpx.get(url, headers=[("Range", "bytes=0-9"), ("Range", "bytes=10-19")])
    assert (twice.status_code, twice.content) == (200, data)


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_every_range_form_on_the_store_itself(make_server: Any, backend: Backend, algorithm: str) -> None:
    """From disk (FileResponse) on the first backend; streamed from S3 through pier on the second."""
    server = make_server("s3_presigned_redirects = false\n" if isinstance(backend, PostgresS3) else "")
    ecr = client(server)
    ecr.create_repository(repositoryName="ranges")
    v2, auth = f"{server.url}/v2/{OWNER.alias}/ranges", bearer(server, ecr)
    data = os.urandom(SIZE)
    digest = f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
    assert httpx.post(f"{v2}/blobs/uploads/", params={"digest": digest}, content=data, headers=auth).status_code == 201
    assert httpx.get(f"{v2}/blobs/{digest}").status_code == 200  # sent by pier, not redirected
    check_ranges(f"{v2}/blobs/{digest}", data, f'"{digest}"')
    empty = f"{algorithm}:{hashlib.new(algorithm, b'').hexdigest()}"
    assert httpx.post(f"{v2}/blobs/uploads/", params={"digest": empty}, content=b"", headers=auth).status_code == 201
    nothing = httpx.get(f"{v2}/blobs/{empty}", headers={"Range": "bytes=0-0"})
    assert (nothing.status_code, nothing.content) == (200, b"")  # an empty blob has no range to select


def test_ranges_on_the_default_server(pier: PierServer, ecr: Any, repo: str, backend: Backend) -> None:
    """The shared server as configured by default: on S3 a GET is a redirect, and the store applies the
    range; a range that selects nothing is answered 416 by pier, without a redirect."""
    v2, auth = f"{pier.url}/v2/{OWNER.alias}/{repo}", bearer(pier, ecr)
    data = os.urandom(SIZE)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert httpx.post(f"{v2}/blobs/uploads/", params={"digest": digest}, content=data, headers=auth).status_code == 201
    for header in UNSATISFIABLE:
        refused = httpx.get(f"{v2}/blobs/{digest}", headers={"Range": header})
        assert (refused.status_code, refused.headers["Content-Range"]) == (416, f"bytes */{SIZE}"), header
        assert refused.json()["errors"][0]["message"]
    for header in ("bytes=500-1499", "bytes=-500", "bytes=2000-5000"):
        start, end = PARTIAL[header]
        got = httpx.get(f"{v2}/blobs/{digest}", headers={"Range": header}, follow_redirects=True)
        assert (got.status_code, got.content) == (206, data[start:end]), header
    if isinstance(backend, PostgresS3):
        assert httpx.get(f"{v2}/blobs/{digest}", headers={"Range": "bytes=0-9"}).status_code == 307
