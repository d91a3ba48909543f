"""Property-based fuzzing of every operation, of manifests and of /v2/ paths: never a 5xx, server stays up."""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pier.api import model
from tests.conftest import OWNER
from tests.fuzz import ANY_JSON, ODD_TEXT, request_for
from tests.server import PierServer
from tests.signing import call

OPERATIONS = sorted(model.operation_names())
# CI draws the same examples every run (a landing must not hinge on luck); developers' runs explore anew.
FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    derandomize=bool(os.environ.get("CI")),
)


def assert_well_formed(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        body = response.json()
        assert body["__type"] and isinstance(body["message"], str)
        assert response.headers["x-amzn-ErrorType"] == body["__type"]


@st.composite
def api_requests(draw: st.DrawFn) -> tuple[str, Any]:
    operation = draw(st.sampled_from(OPERATIONS))
    shape = model.service_model().operation_model(operation).input_shape
    return operation, draw(request_for(shape))


@FUZZ
@given(api_requests())
def test_api_answers_every_request_with_a_4xx_or_success(pier: PierServer, case: tuple[str, Any]) -> None:
    operation, payload = case
    if operation in ("DeleteRepository", "BatchDeleteImage") and isinstance(payload, dict):
        payload["repositoryName"] = "fuzz/" + str(payload.get("repositoryName", ""))[:20]  # spare other tests
    assert_well_formed(call(pier.url, OWNER, operation, payload))


@FUZZ
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_api_survives_broken_bodies(pier: PierServer, body: bytes) -> None:
    assert_well_formed(call(pier.url, OWNER, "CreateRepository", body=body))


MANIFEST_KEYS = [
    "schemaVersion",
    "mediaType",
    "config",
    "layers",
    "manifests",
    "subject",
    "artifactType",
    "annotations",
]


@st.composite
def manifests(draw: st.DrawFn) -> str:
    document = {key: draw(ANY_JSON) for key in draw(st.lists(st.sampled_from(MANIFEST_KEYS), unique=True))}
    if draw(st.booleans()):
        document["schemaVersion"] = 2
        document["mediaType"] = draw(
            st.sampled_from(
                [
                    "application/vnd.oci.image.manifest.v1+json",
                    "application/vnd.oci.image.index.v1+json",
                    "application/vnd.docker.distribution.manifest.v2+json",
                    "x/y",
                ]
            )
        )
    return json.dumps(document)


@FUZZ
@given(manifests(), st.none() | ODD_TEXT)
def test_put_image_rejects_bad_manifests_cleanly(pier: PierServer, ecr: Any, manifest: str, tag: str | None) -> None:
    name = "fuzz/manifests"
    call(pier.url, OWNER, "CreateRepository", {"repositoryName": name})
    payload: dict[str, Any] = {"repositoryName": name, "imageManifest": manifest}
    if tag is not None:
        payload["imageTag"] = tag
    assert_well_formed(call(pier.url, OWNER, "PutImage", payload))


SEGMENTS = st.sampled_from(
    [
        "manifests",
        "blobs",
        "uploads",
        "tags",
        "list",
        "referrers",
        "latest",
        "..",
        "",
        "sha256:" + "0" * 64,
        "sha256:zz",
        f"{OWNER.alias}",
        "fuzz",
        "x" * 300,
        "%00",
        "%2F",
    ]
)


@FUZZ
@given(
    st.sampled_from(["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE"]),
    st.lists(SEGMENTS | ODD_TEXT, max_size=6),
    st.dictionaries(
        st.sampled_from(["Content-Range", "Accept", "Content-Type", "Range", "Authorization"]),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60).map(str.strip),
    ),
    st.binary(max_size=64),
)
def test_v2_never_fails_with_a_5xx(
    pier: PierServer, method: str, segments: list[str], headers: dict[str, str], body: bytes
) -> None:
    path = "/v2/" + "/".join(quote(segment.encode("utf-8", "surrogatepass"), safe=":%") for segment in segments)
    response = httpx.request(method, pier.url + path, headers=headers, content=body if method != "GET" else None)
    assert response.status_code < 500, (method, path, headers, response.text)
    assert httpx.get(f"{pier.url}/healthz").status_code == 200
