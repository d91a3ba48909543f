"""GET /metrics, read with prometheus_client's own parser: counters that move by what a push and a pull
did (also when the requests land on different worker processes), the gauges, and who may read them."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pier import __version__
from tests.backends import Backend, PostgresS3
from tests.conftest import OWNER, client, owner_env
from tests.images import MIB, config, digest_of, image_manifest, layer, push_blob
from tests.oci.helpers import password
from tests.server import PierServer

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(server: PierServer, headers: dict[str, str] | None = None) -> Samples:
    response = httpx.get(f"{server.url}/metrics", headers=headers or {}, verify=server.verify)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def requests(before: Samples, after: Samples) -> Counter[tuple[str, str, str]]:
    """How many requests each (door, operation, status) answered between two scrapes (the scrape between
    them, a web/metrics request, included)."""
    counted: Counter[tuple[str, str, str]] = Counter()
    for (name, labels), count in after.items():
        if name == "pier_http_requests_total":
            label = dict(labels)
            delta = count - before.get((name, labels), 0.0)
            if delta:
                counted[(label["door"], label["operation"], label["status"])] = int(delta)
    return counted


@pytest.mark.parametrize("workers", [1, 2])
def test_a_push_and_a_pull_move_the_counters_by_what_they_did(
    make_server: Callable[..., PierServer], backend: Backend, workers: int
) -> None:
    server = make_server(f"workers = {workers}\n")
    ecr = client(server)
    ecr.create_repository(repositoryName="metrics/app")
    auth = ("AWS", password(ecr))
    v2 = f"{server.url}/v2/{OWNER.alias}/metrics/app"
    big = layer(random_bytes=300_000)
    small = config(layers=[big])
    part = os.urandom(MIB * 5 + 1000)
    manifest = image_manifest(small, [big])
    if workers > 1:
        spread_over_the_workers(server, workers)
    before = scrape(server)

    # Each request on a connection of its own, so they spread over the workers.
    assert httpx.post(f"{v2}/blobs/uploads/?digest={small.digest}", content=small.data, auth=auth).status_code == 201
    started = httpx.post(f"{v2}/blobs/uploads/", auth=auth)
    assert started.status_code == 202
    assert value(scrape(server), "pier_uploads_in_progress") == 0  # an upload counts from its first bytes
    location = started.headers["location"]
    patched = httpx.patch(location, content=big.data[:200_000], auth=auth)
    assert patched.status_code == 202
    during = scrape(server)
    assert value(during, "pier_uploads_in_progress") == 1
    rest = httpx.put(patched.headers["location"], params={"digest": big.digest}, content=big.data[200_000:], auth=auth)
    assert rest.status_code == 201
    headers = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
    assert httpx.put(f"{v2}/manifests/v1", content=manifest, headers=headers, auth=auth).status_code == 201
    push_blob(ecr, "metrics/app", part, part_size=5 * MIB)  # two UploadLayerPart calls
    assert httpx.get(f"{v2}/manifests/v1").status_code == 200
    assert httpx.head(f"{v2}/manifests/v1").status_code == 200
    pulled = httpx.get(f"{v2}/blobs/{big.digest}", follow_redirects=True)
    assert pulled.content == big.data
    assert httpx.head(f"{v2}/blobs/{big.digest}").status_code == 200
    after = scrape(server)

    redirected = isinstance(backend, PostgresS3)  # pulls from S3 are redirects: pier sends no blob bytes
    expected = Counter(
        {
            ("oci", "start_upload", "201"): 1,
            ("oci", "start_upload", "202"): 1,
            ("oci", "patch_upload", "202"): 1,
            ("oci", "finish_upload", "201"): 1,
            ("oci", "put_manifest", "201"): 1,
            ("oci", "get_manifest", "200"): 1,
            ("oci", "head_manifest", "200"): 1,
            ("oci", "get_blob", "307" if redirected else "200"): 1,
            ("oci", "head_blob", "200"): 1,
            ("api", "InitiateLayerUpload", "200"): 1,
            ("api", "UploadLayerPart", "200"): 2,
            ("api", "CompleteLayerUpload", "200"): 1,
            ("web", "metrics", "200"): 3,  # the scrapes before the first bytes, during and after
        }
    )
    assert requests(before, after) == expected
    received = moved(before, after, "pier_blob_bytes_received_total")
    assert received == len(small.data) + len(big.data) + len(part)
    assert moved(before, after, "pier_blob_bytes_sent_total") == (0 if redirected else len(big.data))
    assert value(after, "pier_uploads_in_progress") == 0
    timed = moved(before, after, "pier_http_request_duration_seconds_count", door="api", operation="UploadLayerPart")
    assert timed == 2
    assert value(after, "pier_build_info", version=__version__) == 1

    # No label takes a value a client chose: no repository name, no digest.
    for _, labels in after:
        for _, label in labels:
            assert "/" not in label and "sha256" not in label and OWNER.alias not in label, label


def spread_over_the_workers(server: PierServer, workers: int) -> None:
    """Ping until every worker has answered some (each keeps its numbers in files of its own pid), then
    check /metrics adds them all up."""
    pings = 0
    while len(list(server.data_dir.glob("metrics/*/histogram_*.db"))) < workers:
        assert pings < 500, "the requests never reached every worker"
        assert httpx.get(f"{server.url}/v2/").status_code == 401
        pings += 1
    assert value(scrape(server), "pier_http_requests_total", door="oci", operation="ping", status="401") == pings


def test_unknown_paths_and_methods_fold_into_one_value(make_plain_server: Callable[..., PierServer]) -> None:
    server = make_plain_server()
    before = scrape(server)
    assert httpx.get(f"{server.url}/v2/a/b/c/nothing-here-{os.getpid()}").status_code == 404
    assert httpx.request("PROPFIND", f"{server.url}/healthz").status_code == 405
    refused = httpx.post(f"{server.url}/", headers={"X-Amz-Target": "SpencerFrontendService.Whatever"})
    assert refused.status_code >= 400
    counted = requests(before, scrape(server))
    assert counted == Counter(
        {
            ("oci", "unknown", "404"): 1,
            ("web", "unknown", "405"): 1,
            ("api", "unknown", str(refused.status_code)): 1,
            ("web", "metrics", "200"): 1,
        }
    )


def test_gc_and_rate_limits_are_counted(make_server: Callable[..., PierServer]) -> None:
    server = make_server(
        "gc_interval_seconds = 1\ngc_grace_seconds = 0\nrate_limit_anonymous = 0.01\nrate_limit_burst = 1\n"
    )
    ecr = client(server)
    ecr.create_repository(repositoryName="metrics/gc")
    data = os.urandom(5000)
    push_blob(ecr, "metrics/gc", data)  # no image uses it: the next collection frees it
    deadline = time.monotonic() + 30
    while moved({}, samples := scrape(server), "pier_gc_freed_bytes_total") < len(data):
        assert time.monotonic() < deadline, "no collection freed the blob"
        time.sleep(0.5)
    assert value(samples, "pier_gc_runs_total") >= 1

    url = f"{server.url}/v2/{OWNER.alias}/metrics/gc/manifests/{digest_of(b'x')}"
    statuses = [httpx.get(url).status_code for _ in range(3)]  # a burst of one, then 429s
    assert statuses.count(429) == 2, statuses
    assert value(scrape(server), "pier_rate_limited_total") == 2


def test_metrics_off_and_behind_a_token(make_plain_server: Callable[..., PierServer]) -> None:
    off = make_plain_server('metrics = "off"\n')
    assert httpx.get(f"{off.url}/metrics").status_code == 404

    token = "metrics-token-0123456789"
    guarded = make_plain_server('metrics = "token"\n', env={**owner_env(), "PIER_METRICS_TOKEN": token})
    missing = httpx.get(f"{guarded.url}/metrics")
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    assert httpx.get(f"{guarded.url}/metrics", headers={"Authorization": "Bearer nope"}).status_code == 403
    assert httpx.get(f"{guarded.url}/metrics", headers={"Authorization": f"Basic {token}"}).status_code == 401
    samples = scrape(guarded, {"Authorization": f"Bearer {token}"})
    assert value(samples, "pier_http_requests_total", door="web", operation="metrics", status="401") == 2
    assert value(samples, "pier_http_requests_total", door="web", operation="metrics", status="403") == 1
