"""Pushes name their repository from memory while no repository changed (core/access.py), yet a policy
set or a repository deleted by any worker of `pier serve --workers 2` governs every push of every worker
as soon as its response has come back; on SQLite, so does one set through another server with a data dir
of its own on the same database. Each process is warmed first (the repository read by many pushes, so it
is in memory) before the change."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import OWNER, client
from tests.oci.helpers import bearer
from tests.oci.test_read_freshness import sharing_the_database
from tests.server import PierServer

# Requests on new connections: enough that each worker of two answers several (Granian spreads them).
ROUNDS = 16
DENY_UPLOADS = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Deny", "Principal": "*", "Action": "ecr-public:InitiateLayerUpload", "Resource": "*"}
        ],
    }
)


def starts(server: PierServer, auth: dict[str, str]) -> set[tuple[int, str]]:
    """(status, error code) of ROUNDS upload starts, each on a new connection."""
    seen = set()
    for _ in range(ROUNDS):
        response = httpx.post(f"{server.url}/v2/{OWNER.alias}/pushed/blobs/uploads/", headers=auth)
        code = response.json()["errors"][0]["code"] if response.status_code >= 400 else ""
        if response.status_code == 202:
            httpx.delete(response.headers["Location"], headers=auth)  # stay below the uploads limit
        seen.add((response.status_code, code))
    return seen


def test_every_worker_pushes_under_the_policy_and_repository_of_now(make_server: Any) -> None:
    server = make_server("workers = 2\n")
    ecr = client(server)
    ecr.create_repository(repositoryName="pushed")
    auth = bearer(server, ecr)
    assert starts(server, auth) == {(202, "")}

    ecr.set_repository_policy(repositoryName="pushed", policyText=DENY_UPLOADS)
    assert starts(server, auth) == {(403, "DENIED")}  # at once, from every worker
    ecr.delete_repository_policy(repositoryName="pushed")
    assert starts(server, auth) == {(202, "")}

    ecr.delete_repository(repositoryName="pushed", force=True)
    assert starts(server, auth) == {(404, "NAME_UNKNOWN")}

    ecr.create_repository(repositoryName="pushed")  # the same name, a new repository: pushes land in it
    assert starts(server, auth) == {(202, "")}
    blob = b"pushed into the new repository"
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    for _ in range(ROUNDS // 2):
        started = httpx.post(f"{server.url}/v2/{OWNER.alias}/pushed/blobs/uploads/", headers=auth)
        put = httpx.put(started.headers["Location"], params={"digest": digest}, content=blob, headers=auth)
        assert put.status_code == 201
    layers = ecr.batch_check_layer_availability(repositoryName="pushed", layerDigests=[digest])["layers"]
    assert [layer["layerDigest"] for layer in layers] == [digest]


def test_a_server_with_another_data_dir_on_the_same_sqlite_pushes_under_the_policy_of_now(
    make_server: Any, tmp_path: Path
) -> None:
    """Without a shared data dir only the file beside the SQLite database tells the change (PostgreSQL:
    pushes read the store each time)."""
    server = make_server()
    elsewhere = sharing_the_database(server, tmp_path)
    try:
        ecr = client(server)
        ecr.create_repository(repositoryName="pushed")
        auth = bearer(elsewhere, client(elsewhere))
        assert starts(elsewhere, auth) == {(202, "")}
        ecr.set_repository_policy(repositoryName="pushed", policyText=DENY_UPLOADS)  # through the first server
        assert starts(elsewhere, auth) == {(403, "DENIED")}
        ecr.delete_repository(repositoryName="pushed", force=True)
        assert starts(elsewhere, auth) == {(404, "NAME_UNKNOWN")}
    finally:
        elsewhere.stop()
