"""Revocation that holds: a changed policy, a deleted key, a deleted user take effect in every process of a
`pier serve --workers 2` within the bound the README states, for signed calls and for /v2/ tokens
already issued. Each check polls over new connections (so both workers answer) until the change has
held many times in a row, and measures when it began to."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import OWNER, client
from tests.server import Account, PierServer
from tests.signing import call
from tests.users import LOGIN, PUSH, allow, create_user, pier_users, policy_file, user_client, within_bound


def bearer(server: PierServer, keys: Account) -> dict[str, str]:
    token = user_client(server, keys).get_authorization_token()["authorizationData"]["authorizationToken"]
    password = base64.b64decode(token).decode().split(":", 1)[1]
    response = httpx.get(f"{server.url}/token", params={"service": server.host}, auth=("AWS", password))
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['token']}"}


def start_upload(server: PierServer, auth: dict[str, str]) -> int:
    return httpx.post(f"{server.url}/v2/{OWNER.alias}/team/api/blobs/uploads/", headers=auth).status_code


def signed(server: PierServer, keys: Account, operation: str, payload: dict[str, Any]) -> tuple[int, str]:
    response = call(server.url, keys, operation, payload)  # a new connection each time
    return response.status_code, response.json().get("__type", "") if response.status_code != 200 else ""


def test_changes_hold_in_every_worker_within_the_bound(make_server: Any, tmp_path: Path) -> None:
    server = make_server("workers = 2\n")
    client(server).create_repository(repositoryName="team/api")
    arn, keys = create_user(server, tmp_path, LOGIN, allow([*PUSH, "ecr-public:DescribeRepositories"]))
    name = arn.rsplit("/", 1)[1]
    second = json.loads(pier_users(server, "create-key", OWNER.id, name, "--json").stdout)
    other_keys = Account(OWNER.id, "", second["accessKeyId"], second["secretAccessKey"])
    token, other_token = bearer(server, keys), bearer(server, other_keys)  # issued before any change
    assert start_upload(server, token) == 202
    assert signed(server, keys, "InitiateLayerUpload", {"repositoryName": "team/api"})[0] == 200

    # A new policy without push rights: signed calls and the token already issued obey it.
    pulled_only = policy_file(tmp_path, LOGIN, allow("ecr-public:DescribeRepositories"))
    assert pier_users(server, "put-policy", OWNER.id, name, str(pulled_only)).returncode == 0
    within_bound(
        lambda: (
            start_upload(server, token) == 403
            and signed(server, keys, "InitiateLayerUpload", {"repositoryName": "team/api"})
            == (400, "AccessDeniedException")
        )
    )
    assert signed(server, keys, "DescribeRepositories", {})[0] == 200  # what it may still do

    # A deleted key: its signatures and the token got with it stop working; the other key does not.
    assert pier_users(server, "delete-key", OWNER.id, name, keys.access_key_id).returncode == 0
    within_bound(
        lambda: (
            signed(server, keys, "DescribeRepositories", {}) == (403, "UnrecognizedClientException")
            and httpx.get(f"{server.url}/v2/{OWNER.alias}/team/api/tags/list", headers=token).status_code == 401
        )
    )
    assert signed(server, other_keys, "DescribeRepositories", {})[0] == 200
    assert httpx.get(f"{server.url}/v2/{OWNER.alias}/team/api/tags/list", headers=other_token).status_code == 200

    # A deleted user: everything of it stops working.
    assert pier_users(server, "delete", OWNER.id, name).returncode == 0
    within_bound(
        lambda: (
            signed(server, other_keys, "DescribeRepositories", {}) == (403, "UnrecognizedClientException")
            and httpx.get(f"{server.url}/v2/{OWNER.alias}/team/api/tags/list", headers=other_token).status_code == 401
        )
    )
    # Anonymous pulls are as they were.
    assert httpx.get(f"{server.url}/v2/{OWNER.alias}/team/api/tags/list").status_code == 200
