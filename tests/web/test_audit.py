"""The audit log: every mutating call on either door, who/what/outcome, and never a secret."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx
import pytest

from tests.conftest import OTHER, OWNER, client
from tests.oci.helpers import bearer, password


def entries(server: Any) -> list[dict[str, Any]]:
    path = server.data_dir / "audit.log"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_mutating_calls_are_audited_without_secrets(make_server: Any) -> None:
    server = make_server()
    ecr, other = client(server), client(server, OTHER)
    ecr.create_repository(repositoryName="audited")
    ecr.describe_repositories()  # a read: not audited
    login = password(ecr)
    auth = bearer(server, ecr)
    data = b"audited blob"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    httpx.post(
        f"{server.url}/v2/{OWNER.alias}/audited/blobs/uploads/", params={"digest": digest}, content=data, headers=auth
    )
    httpx.post(f"{server.url}/v2/{OWNER.alias}/audited/blobs/uploads/")  # anonymous push: refused
    with pytest.raises(other.exceptions.RepositoryNotFoundException):
        other.delete_repository(registryId=OWNER.id, repositoryName="audited")
    log = entries(server)
    owner, other_root = f"arn:aws:iam::{OWNER.id}:root", f"arn:aws:iam::{OTHER.id}:root"
    assert [(e["door"], e["action"], e["principal"], e["status"]) for e in log] == [
        ("api", "CreateRepository", owner, 200),
        ("oci", "POST /v2/{name:path}/blobs/uploads/", owner, 201),
        ("oci", "POST /v2/{name:path}/blobs/uploads/", "anonymous", 401),
        ("api", "DeleteRepository", other_root, 400),
    ]
    # The account, and the access key the call was signed with (or the login was got with).
    assert [(e["account"], e["access_key_id"]) for e in log] == [
        (OWNER.id, OWNER.access_key_id),
        (OWNER.id, OWNER.access_key_id),
        (None, None),
        (OTHER.id, OTHER.access_key_id),
    ]
    assert log[0]["target"] == "audited"
    assert log[3]["target"] == f"{OWNER.id}/audited"
    assert log[3]["error"] == "RepositoryNotFoundException"
    assert all(e["address"] == "127.0.0.1" for e in log)
    text = (server.data_dir / "audit.log").read_text()
    for secret in (OWNER.secret_access_key, OTHER.secret_access_key, login, auth["Authorization"][7:]):
        assert secret not in text
