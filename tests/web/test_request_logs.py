"""Request logs: with `log_format = "json"` every line pier writes on stderr is one JSON object, one per
request with the request id the client got back, and no secret ever appears in any of them."""

from __future__ import annotations

import datetime
import json
import re
import signal
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from tests.conftest import OWNER, client, owner_env
from tests.images import digest_of
from tests.oci.helpers import password
from tests.server import PierServer

REQUEST_FIELDS = {
    "time",
    "level",
    "request_id",
    "remote",
    "method",
    "path",
    "status",
    "duration_ms",
    "bytes_in",
    "bytes_out",
    "account",
    "door",
    "operation",
}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def json_lines(server: PierServer) -> list[dict[str, Any]]:
    lines = [line for line in server.log().splitlines() if line.strip()]
    assert lines
    return [json.loads(line) for line in lines]  # every line, not only the request lines


def logged(lines: list[dict[str, Any]], request_id: str) -> dict[str, Any]:
    found = [line for line in lines if line.get("request_id") == request_id]
    assert len(found) == 1, f"{len(found)} lines for request {request_id}"
    return found[0]


def test_json_request_lines_carry_the_request_id_and_no_secret(make_server: Callable[..., PierServer]) -> None:
    server = make_server('log_format = "json"\n')
    ecr = client(server)
    signatures: list[str] = []

    def keep_signature(request: Any, **_: Any) -> None:
        signatures.append(re.search(r"Signature=([0-9a-f]+)", request.headers["Authorization"].decode())[1])

    ecr.meta.events.register("before-send.ecr-public.*", keep_signature)
    created = ecr.create_repository(repositoryName="logs/app")
    api_id = created["ResponseMetadata"]["RequestId"]
    assert created["ResponseMetadata"]["HTTPHeaders"]["x-request-id"] == api_id  # one id, both headers
    secret_password = password(ecr)
    token = httpx.get(f"{server.url}/token", params={"scope": "x"}, auth=("AWS", secret_password)).json()["token"]
    v2 = f"{server.url}/v2/{OWNER.alias}/logs/app"
    bearer = {"Authorization": f"Bearer {token}"}

    # An id the client sent is kept when it is 1-128 of [A-Za-z0-9._-]; any other is replaced.
    kept, longest = "trace-42.abc_DEF", "a" * 128
    answers = {}
    for sent in (kept, longest, "a" * 129, "not valid!", ""):
        query = {"n": "1", "last": "query-secret"}
        response = httpx.get(f"{v2}/tags/list", params=query, headers={**bearer, "X-Request-Id": sent})
        assert response.status_code == 200
        answers[sent] = response.headers["x-request-id"]
    assert answers[kept] == kept and answers[longest] == longest
    for replaced in ("a" * 129, "not valid!", ""):
        assert UUID.fullmatch(answers[replaced]), answers[replaced]

    data = b"layer bytes " * 1000
    pushed = httpx.post(f"{v2}/blobs/uploads/", params={"digest": digest_of(data)}, content=data, headers=bearer)
    assert pushed.status_code == 201
    pulled = httpx.get(f"{v2}/blobs/{digest_of(data)}", follow_redirects=False)
    page = httpx.get(f"{server.url}/{OWNER.alias}/logs/app@{digest_of(data)}")  # an image page (404: no image)
    assert pulled.status_code in (200, 307)

    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)  # its last lines written, and the log complete
    server.process.wait(30)
    lines = json_lines(server)

    api = logged(lines, api_id)
    assert set(api) >= REQUEST_FIELDS
    assert (api["door"], api["operation"], api["status"], api["account"]) == ("api", "CreateRepository", 200, OWNER.id)
    assert (api["method"], api["path"], api["level"]) == ("POST", "/", "info")
    assert api["bytes_in"] > 0 and api["bytes_out"] > 0 and api["duration_ms"] > 0
    moment = datetime.datetime.fromisoformat(api["time"].replace("Z", "+00:00"))
    assert moment.utcoffset() == datetime.timedelta(0)
    assert abs((datetime.datetime.now(datetime.UTC) - moment).total_seconds()) < 300

    tags = logged(lines, kept)
    assert (tags["door"], tags["operation"], tags["account"]) == ("oci", "list_tags", OWNER.id)
    assert tags["path"] == f"/v2/{OWNER.alias}/logs/app/tags/list"  # no query string
    assert tags["remote"] == "127.0.0.1"
    for sent, answered in answers.items():
        assert logged(lines, answered)["operation"] == "list_tags"
        if answered != sent:
            assert not any(line.get("request_id") == sent for line in lines)

    upload = logged(lines, pushed.headers["x-request-id"])
    assert (upload["operation"], upload["status"], upload["bytes_in"]) == ("start_upload", 201, len(data))
    image_page = logged(lines, page.headers["x-request-id"])
    assert (image_page["door"], image_page["operation"]) == ("gallery", "image")
    download = logged(lines, pulled.headers["x-request-id"])
    assert (download["operation"], download["account"]) == ("get_blob", None)
    if pulled.status_code == 200:
        assert download["bytes_out"] == len(data)
    assert any(line.get("logger") == "pier" and "stopping" in line.get("message", "") for line in lines)

    everything = server.log() + server.output()
    secrets = {
        "secret access key": OWNER.secret_access_key,
        "login password": secret_password,
        "bearer token": token,
        "query string": "query-secret",
        **{f"signature {i}": signature for i, signature in enumerate(signatures)},
    }
    assert signatures
    for what, secret in secrets.items():
        assert secret not in everything, f"the {what} is in the log"


def test_the_banner_names_the_file_that_holds_a_generated_secret(make_plain_server: Callable[..., PierServer]) -> None:
    server = make_plain_server(env={"PIER_ALIAS": f"gen-{uuid.uuid4().hex[:8]}"})
    stored = json.loads((server.data_dir / "default-account.json").read_text())
    banner = server.output()
    assert stored["access_key_id"] in banner
    assert stored["secret_access_key"] not in banner + server.log()
    assert str((server.data_dir / "default-account.json").resolve()) in banner


def test_text_request_lines_carry_the_request_id(pier: PierServer) -> None:
    sent = f"text-{uuid.uuid4().hex}"
    assert httpx.get(f"{pier.url}/healthz", headers={"X-Request-Id": sent}).headers["x-request-id"] == sent
    deadline = time.monotonic() + 5  # the line is written once the answer has gone out
    while not (found := [line for line in pier.log().splitlines() if f"id={sent}" in line]):
        assert time.monotonic() < deadline, "no request line"
        time.sleep(0.05)
    line = found[0]
    assert '"GET /healthz" 200' in line and "web/healthz" in line and "pier.access" in line
    assert owner_env()["PIER_SECRET_ACCESS_KEY"] not in pier.log() + pier.output()
