"""Manifest reads answered from memory (core/reads.py) are never staler than the README says:
- on one host (the workers of `pier serve --workers 2`, which share the data dir): a moved tag or a deleted
  image is answered as it now is by every process as soon as the write's response has come back;
- from a process elsewhere (another data dir, the same database): within reads.TTL_SECONDS.
Each process is warmed first (the old answer read many times, so it is in memory) before the write."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from pier.core.reads import TTL_SECONDS
from tests.conftest import OWNER, client, owner_env
from tests.images import digest_of, push_image
from tests.oci.helpers import bearer
from tests.server import PierServer
from tests.signing import call

ACCEPT = {"Accept": "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"}
# Requests on new connections: enough that each worker of two answers several (Granian spreads them).
ROUNDS = 24


def manifest(server: PierServer, reference: str, auth: dict[str, str], method: str = "GET") -> tuple[int, str]:
    """(status, Docker-Content-Digest) of the manifest, over a new connection."""
    url = f"{server.url}/v2/{OWNER.alias}/fresh/manifests/{reference}"
    response = httpx.request(method, url, headers={**auth, **ACCEPT})
    return response.status_code, response.headers.get("docker-content-digest", "")


def answers(server: PierServer, reference: str, auth: dict[str, str]) -> set[tuple[int, str]]:
    """Every answer of ROUNDS GETs and ROUNDS HEADs, each on a new connection."""
    return {manifest(server, reference, auth, method) for method in ("GET", "HEAD") for _ in range(ROUNDS)}


def test_every_worker_serves_a_moved_tag_and_no_deleted_image_once_the_write_answered(make_server: Any) -> None:
    server = make_server("workers = 2\n")
    ecr = client(server)
    ecr.create_repository(repositoryName="fresh")
    auth = bearer(server)
    first = digest_of(push_image(ecr, "fresh", "latest", architecture="amd64")[0])
    assert answers(server, "latest", auth) == {(200, first)}
    assert answers(server, first, auth) == {(200, first)}

    second = digest_of(push_image(ecr, "fresh", "latest", architecture="arm64")[0])  # the tag moves
    assert answers(server, "latest", auth) == {(200, second)}  # at once, from every worker
    assert answers(server, first, auth) == {(200, first)}  # by digest, still there (untagged)

    ecr.batch_delete_image(repositoryName="fresh", imageIds=[{"imageDigest": first}])
    assert answers(server, first, auth) == {(404, "")}
    ecr.batch_delete_image(repositoryName="fresh", imageIds=[{"imageTag": "latest"}])
    assert answers(server, "latest", auth) == {(404, "")}
    assert answers(server, second, auth) == {(404, "")}

    ecr.delete_repository(repositoryName="fresh", force=True)
    ecr.create_repository(repositoryName="fresh")  # the same name, a new repository: nothing of the old one
    assert answers(server, "latest", auth) == {(404, "")}


def sharing_the_database(server: PierServer, root: Path) -> PierServer:
    """Another `pier serve` on the same metadata database and blob store, with a data dir of its own: as
    on another machine, it does not share this host's write generation."""
    config = server.config_file.read_text() if server.config_file else ""
    if "database_url" not in config:  # SQLite: the first server's file (a top-level key: before any table)
        config = f'database_url = "sqlite:///{(server.data_dir / "pier.db").resolve()}"\n' + config
    path = root / "elsewhere.toml"
    path.write_text(config)
    return PierServer(root / "elsewhere", path, owner_env()).start()


def test_a_process_elsewhere_serves_a_moved_tag_and_no_deleted_image_within_the_bound(
    make_server: Any, tmp_path: Path
) -> None:
    writer = make_server()
    reader = sharing_the_database(writer, tmp_path)
    try:
        ecr = client(writer)
        ecr.create_repository(repositoryName="fresh")
        auth = bearer(reader)
        first = digest_of(push_image(ecr, "fresh", "latest", architecture="amd64")[0])
        assert answers(reader, "latest", auth) == {(200, first)}  # in the reader's memory now

        second = digest_of(push_image(ecr, "fresh", "latest", architecture="arm64")[0])
        moved = time.monotonic()
        assert manifest(writer, "latest", auth) == (200, second)  # the writer itself: at once
        time.sleep(max(0.0, TTL_SECONDS - (time.monotonic() - moved)))
        assert answers(reader, "latest", auth) == {(200, second)}

        assert answers(reader, second, auth) == {(200, second)}
        ecr.batch_delete_image(repositoryName="fresh", imageIds=[{"imageDigest": second}])
        deleted = time.monotonic()
        assert manifest(writer, second, auth) == (404, "")  # the writer itself: at once
        assert manifest(writer, "latest", auth) == (404, "")
        time.sleep(max(0.0, TTL_SECONDS - (time.monotonic() - deleted)))
        assert answers(reader, second, auth) == {(404, "")}
        assert answers(reader, "latest", auth) == {(404, "")}
    finally:
        reader.stop()


def listed(server: PierServer, repository: str) -> set[str | frozenset[str]]:
    """Every answer of ROUNDS signed DescribeImages calls, each on a new connection: the digests listed, or
    the error's type."""
    found: set[str | frozenset[str]] = set()
    for _ in range(ROUNDS):
        answer = call(server.url, OWNER, "DescribeImages", {"repositoryName": repository}).json()
        found.add(
            answer["__type"] if "__type" in answer else frozenset(d["imageDigest"] for d in answer["imageDetails"])
        )
    return found


def test_every_worker_lists_what_was_written_once_the_write_answered(make_server: Any) -> None:
    """DescribeImages pages and the repository (and its policy) they name come from memory too: an image
    pushed or deleted, a policy that now denies, a repository deleted: each seen at once by every worker."""
    server = make_server("workers = 2\n")
    ecr = client(server)
    ecr.create_repository(repositoryName="listed")
    first = digest_of(push_image(ecr, "listed", "one", architecture="amd64")[0])
    assert listed(server, "listed") == {frozenset({first})}

    second = digest_of(push_image(ecr, "listed", "two", architecture="arm64")[0])
    assert listed(server, "listed") == {frozenset({first, second})}
    ecr.batch_delete_image(repositoryName="listed", imageIds=[{"imageDigest": first}])
    assert listed(server, "listed") == {frozenset({second})}

    deny = {"Effect": "Deny", "Principal": "*", "Action": "ecr-public:DescribeImages"}
    ecr.set_repository_policy(
        repositoryName="listed", policyText=json.dumps({"Version": "2012-10-17", "Statement": [deny]})
    )
    assert listed(server, "listed") == {"AccessDeniedException"}
    ecr.delete_repository_policy(repositoryName="listed")
    assert listed(server, "listed") == {frozenset({second})}

    ecr.delete_repository(repositoryName="listed", force=True)
    assert listed(server, "listed") == {"RepositoryNotFoundException"}
