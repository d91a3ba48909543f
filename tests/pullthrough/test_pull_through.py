"""Pull-through caches against a real upstream: Debian's docker-registry (CNCF distribution) on loopback,
behind a proxy that counts what pier asks of it and misbehaves on demand (tests/pullthrough/upstreams.py).
Pulled through pier with skopeo and plain HTTP; docker and oras are in test_clients.py."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import httpx
import pytest

from tests.backends import Backend, assert_blobs_are_whole
from tests.conftest import OWNER, client
from tests.gallery.helpers import page_json, repository_downloads, wait_for
from tests.images import MIB, layout_blobs
from tests.oci.helpers import bearer
from tests.oci.test_skopeo import skopeo
from tests.pullthrough.helpers import (
    ACCEPT_ALL,
    CREDENTIALS,
    OCI_MANIFEST,
    Image,
    authorized,
    cache_server,
    get,
    login_args,
    pull,
    push,
    push_index,
    rule,
)
from tests.pullthrough.upstreams import CORRUPT, DOWN, FAIL, PASS, PASSWORD, Distribution, Proxy, TokenServer
from tests.server import PierServer

STALE = '110 - "Response is Stale"'


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[tuple[Distribution, Proxy]]:
    """A registry without authentication, and the proxy pier reaches it through."""
    registry = Distribution(tmp_path / "upstream")
    proxy = Proxy(registry.port)
    yield registry, proxy
    proxy.close()
    registry.stop()


def error_of(response: httpx.Response) -> dict[str, Any]:
    errors: list[dict[str, Any]] = response.json()["errors"]
    return errors[0]


def test_first_pull_fetches_each_part_once_and_later_pulls_need_no_upstream(
    make_server: Callable[..., PierServer], backend: Backend, tmp_path: Path
) -> None:
    registry = Distribution(tmp_path / "upstream", htpasswd=True)  # Basic authentication
    proxy = Proxy(registry.port)
    try:
        image = Image(tmp_path / "app", "v1", random_bytes=400_000)
        push(image, registry.host, "library/app", creds=registry.creds())
        server = cache_server(
            make_server,
            rule(proxy.url, upstream_namespace="library", credentials=CREDENTIALS),
            extra="downloads_flush_seconds = 0.2\n",
        )

        pull(server, "hub/app", tmp_path / "first", "v1")
        assert layout_blobs(tmp_path / "first") == layout_blobs(image.path)
        # The manifest once, by its tag, and each blob once, all from the upstream's library/app.
        assert proxy.requests("GET", "/manifests/") == ["/v2/library/app/manifests/v1"]
        for blob in image.blobs:
            assert proxy.requests("GET", blob.digest) == [f"/v2/library/app/blobs/{blob.digest}"]
        stored = backend.blob_digests(server)
        assert all(stored[blob.digest] == blob.data for blob in image.blobs)
        assert_blobs_are_whole(backend, server)

        # A real repository and image: the API, the gallery.
        ecr = client(server)
        detail = ecr.describe_images(repositoryName="hub/app")["imageDetails"][0]
        assert (detail["imageDigest"], detail["imageTags"]) == (image.digest, ["v1"])
        assert detail["imageSizeInBytes"] == image.size
        page = httpx.get(f"{server.url}/{OWNER.alias}/hub/app")
        assert f"Pull-through cache of <code>{proxy.host}/library/app</code>" in page.text
        search = httpx.get(f"{server.url}/search", params={"term": "app"}).json()["repositories"]
        assert [r["cacheOf"] for r in search if r["name"] == "hub/app"] == [f"{proxy.host}/library/app"]

        # The upstream stopped: the next pull, anonymous this time, is served from the cache alone.
        asked = len(proxy.seen)
        registry.stop()
        pull(server, "hub/app", tmp_path / "second", "v1", anonymous=True)
        assert layout_blobs(tmp_path / "second") == layout_blobs(image.path)
        assert len(proxy.seen) == asked
        assert PASSWORD not in server.log()
        # Each pull is a download, as from any repository: the one that fetched and the one from the cache.
        assert wait_for(lambda: repository_downloads(server, OWNER.alias, "hub/app"), lambda n: n >= 2) == 2
    finally:
        proxy.close()
        registry.stop()


def test_a_moved_tag_is_seen_after_its_ttl_and_served_stale_during_an_outage(
    make_server: Callable[..., PierServer], upstream: tuple[Distribution, Proxy], tmp_path: Path
) -> None:
    registry, proxy = upstream
    first, second = Image(tmp_path / "one", "v1"), Image(tmp_path / "two", "v1")
    push(first, registry.host, "team/tool")
    server = cache_server(make_server, rule(proxy.url, prefix="mirror", tag_ttl_seconds=2))
    auth = {**authorized(server), **ACCEPT_ALL}

    def tool(tag: str = "v1", name: str = "tool") -> httpx.Response:
        return get(server, f"mirror/team/{name}/manifests/{tag}", auth)

    answer = tool()
    assert answer.status_code == 200 and answer.content == first.manifest and "warning" not in answer.headers
    push(second, registry.host, "team/tool")  # v1 moves upstream
    assert tool().headers["Docker-Content-Digest"] == first.digest  # trusted for its TTL: nothing asked
    assert proxy.requests("HEAD", "/manifests/") == [] and len(proxy.requests("GET", "/manifests/")) == 1
    time.sleep(2.2)
    answer = tool()
    assert answer.content == second.manifest and answer.headers["Docker-Content-Digest"] == second.digest
    assert len(proxy.requests("HEAD", "/manifests/")) == 1 and len(proxy.requests("GET", "/manifests/")) == 2

    # The upstream overloaded (503), then gone: the cached tag is served, marked stale; what is not cached
    # is an error that names the upstream.
    proxy.mode = FAIL
    time.sleep(2.2)
    answer = tool()
    assert (answer.status_code, answer.content, answer.headers["Warning"]) == (200, second.manifest, STALE)
    missing = tool(name="other")
    assert missing.status_code == 503 and missing.headers["Retry-After"]
    assert error_of(missing)["code"] == "UNAVAILABLE" and proxy.host in error_of(missing)["message"]
    proxy.mode = DOWN
    assert tool().headers["Warning"] == STALE
    assert tool(name="other").status_code == 502 and proxy.host in error_of(tool(name="other"))["message"]
    head = get(server, "mirror/team/tool/manifests/v1", auth, method="HEAD")
    assert (head.status_code, head.headers["Warning"]) == (200, STALE)

    # Back: what the upstream does not have is 404, and the cached tag is confirmed by a HEAD.
    proxy.mode = PASS
    absent = tool(tag="nope")
    assert absent.status_code == 404 and error_of(absent)["code"] == "MANIFEST_UNKNOWN"
    assert proxy.host in error_of(absent)["message"]
    assert tool(name="absent").status_code == 404
    gets = len(proxy.requests("GET", "/manifests/"))
    answer = tool()
    assert answer.content == second.manifest and "warning" not in answer.headers
    assert len(proxy.requests("GET", "/manifests/")) == gets


def streamed(url: str, auth: dict[str, str], on_bytes: Callable[[int], None]) -> tuple[str, int]:
    """GET a blob as a stream: (its sha256 digest, its length); on_bytes(bytes so far) after each chunk."""
    with httpx.stream("GET", url, headers=auth, timeout=120, follow_redirects=True) as response:
        assert response.status_code == 200, response.read()
        digest, received = hashlib.sha256(), 0
        for chunk in response.iter_bytes():
            digest.update(chunk)
            received += len(chunk)
            on_bytes(received)
        return "sha256:" + digest.hexdigest(), received


def test_concurrent_first_pulls_of_a_large_layer_cause_one_fetch_and_stream_at_once(
    make_server: Callable[..., PierServer], backend: Backend, upstream: tuple[Distribution, Proxy], tmp_path: Path
) -> None:
    registry, proxy = upstream
    image = Image(tmp_path / "big", "v1", random_bytes=24 * MIB)
    push(image, registry.host, "big")
    server = cache_server(make_server, rule(proxy.url))
    auth = authorized(server)
    assert get(server, "hub/big/manifests/v1", {**auth, **ACCEPT_ALL}).status_code == 200
    big = image.layers[0]
    url = f"{server.url}/v2/{OWNER.alias}/hub/big/blobs/{big.digest}"
    proxy.hold(after=len(big.data) // 2)  # the upstream sends half, then waits
    first_bytes = threading.Event()
    results: dict[int, tuple[str, int] | BaseException] = {}

    def download(i: int) -> None:
        def on_bytes(received: int) -> None:
            if received >= MIB:
                first_bytes.set()

        try:
            results[i] = streamed(url, auth, on_bytes)
        except BaseException as failure:
            results[i] = failure

    threads = [threading.Thread(target=download, args=(i,)) for i in range(4)]
    threads[0].start()
    # The first client gets bytes while the upstream has sent only half: it does not wait for the layer.
    assert first_bytes.wait(30)
    for thread in threads[1:]:
        thread.start()
    time.sleep(0.5)
    proxy.release()
    for thread in threads:
        thread.join(120)
    assert results == {i: (big.digest, len(big.data)) for i in range(4)}
    assert len(proxy.requests("GET", big.digest)) == 1
    assert backend.blob_digests(server)[big.digest] == big.data


def test_a_first_client_that_stops_reading_holds_neither_the_fetch_nor_other_clients(
    make_server: Callable[..., PierServer], backend: Backend, upstream: tuple[Distribution, Proxy], tmp_path: Path
) -> None:
    """The first client paces the fetch while it reads; once it stops, the fetch goes on without it: another
    client gets the whole layer while the first still reads nothing, and the first gets the rest later."""
    registry, proxy = upstream
    image = Image(tmp_path / "slow", "v1", random_bytes=40 * MIB)
    push(image, registry.host, "slow")
    server = cache_server(make_server, rule(proxy.url))
    auth = authorized(server)
    assert get(server, "hub/slow/manifests/v1", {**auth, **ACCEPT_ALL}).status_code == 200
    big = image.layers[0]
    url = f"{server.url}/v2/{OWNER.alias}/hub/slow/blobs/{big.digest}"
    reading, second_done = threading.Event(), threading.Event()
    results: dict[str, tuple[str, int] | BaseException] = {}

    def download(who: str) -> None:
        def on_bytes(received: int) -> None:
            if who == "slow" and received >= MIB and not reading.is_set():
                reading.set()
                # Stops reading until the other client has everything: held behind this one, it never would.
                if not second_done.wait(60):
                    raise AssertionError("another client was held behind one that stopped reading")

        try:
            results[who] = streamed(url, auth, on_bytes)
        except BaseException as failure:
            results[who] = failure

    slow = threading.Thread(target=download, args=("slow",))
    slow.start()
    assert reading.wait(30)
    download("other")
    second_done.set()
    slow.join(120)
    assert results == {"slow": (big.digest, len(big.data)), "other": (big.digest, len(big.data))}
    assert len(proxy.requests("GET", big.digest)) == 1
    assert_blobs_are_whole(backend, server)


def test_concurrent_pulls_across_worker_processes_are_whole(
    make_server: Callable[..., PierServer], backend: Backend, upstream: tuple[Distribution, Proxy], tmp_path: Path
) -> None:
    """With --workers there is no cross-process single flight: at most one fetch per process, and every
    client gets the right bytes whichever process fetched them."""
    registry, proxy = upstream
    image = Image(tmp_path / "shared", "v1", random_bytes=6 * MIB)
    push(image, registry.host, "shared")
    server = cache_server(make_server, rule(proxy.url), extra="workers = 2\n")
    auth = authorized(server)
    assert get(server, "hub/shared/manifests/v1", {**auth, **ACCEPT_ALL}).status_code == 200
    big = image.layers[0]
    results: list[bytes] = []

    def download() -> None:
        results.append(get(server, f"hub/shared/blobs/{big.digest}", auth).content)

    threads = [threading.Thread(target=download) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert results == [big.data] * 6
    assert 1 <= len(proxy.requests("GET", big.digest)) <= 2
    assert_blobs_are_whole(backend, server)


def test_an_index_fetches_only_the_platform_a_client_asks_for(
    make_server: Callable[..., PierServer], upstream: tuple[Distribution, Proxy], tmp_path: Path
) -> None:
    registry, proxy = upstream
    parts = push_index(tmp_path / "multi", registry.host, "multi", "v1")
    server = cache_server(make_server, rule(proxy.url))
    pull(server, "hub/multi", tmp_path / "arm", "v1", "--override-arch", "arm64", "--override-os", "linux")
    fetched = proxy.requests("GET", "/v2/multi/")
    assert f"/v2/multi/manifests/{parts['arm64']['manifest']}" in fetched
    assert all(f"/v2/multi/blobs/{digest}" in fetched for digest in parts["arm64"]["blobs"])
    amd64 = [parts["amd64"]["manifest"], *parts["amd64"]["blobs"]]
    assert not [path for path in fetched if any(digest in path for digest in amd64)]
    ecr = client(server)
    stored = {d["imageDigest"] for d in ecr.describe_images(repositoryName="hub/multi")["imageDetails"]}
    assert stored == {parts["index"], parts["arm64"]["manifest"]}
    # A client that cannot take an index gets the linux/amd64 image, fetched then.
    answer = get(server, "hub/multi/manifests/v1", {**authorized(server), "Accept": OCI_MANIFEST})
    assert answer.status_code == 200 and answer.headers["Docker-Content-Digest"] == parts["amd64"]["manifest"]
    assert f"/v2/multi/manifests/{parts['amd64']['manifest']}" in proxy.requests("GET", "/v2/multi/")


def test_an_upstream_that_lies_is_cut_off_before_the_last_byte_and_nothing_is_kept(
    make_server: Callable[..., PierServer], backend: Backend, upstream: tuple[Distribution, Proxy], tmp_path: Path
) -> None:
    registry, proxy = upstream
    image = Image(tmp_path / "app", "v1", random_bytes=8 * MIB)
    push(image, registry.host, "app")
    server = cache_server(make_server, rule(proxy.url))
    auth = authorized(server)
    assert get(server, "hub/app/manifests/v1", {**auth, **ACCEPT_ALL}).status_code == 200
    big = image.layers[0]
    url = f"{server.url}/v2/{OWNER.alias}/hub/app/blobs/{big.digest}"
    proxy.mode = CORRUPT  # one byte flipped in the middle of every blob
    proxy.hold(after=len(big.data) * 3 // 4)  # until the client has had bytes: the answer has started
    received = bytearray()
    with pytest.raises(httpx.HTTPError), httpx.stream("GET", url, headers=auth, timeout=60) as response:
        assert response.status_code == 200 and int(response.headers["Content-Length"]) == len(big.data)
        for chunk in response.iter_raw():
            received += chunk
            if len(received) >= MIB:
                proxy.release()
    assert MIB <= len(received) < len(big.data)  # the connection ended short of the declared length
    # Again, all at once: nothing of the first attempt was kept to be served. Whether the answer had
    # started (then it is cut short) or not (then it is an error), no client gets the wrong bytes whole.
    proxy.release()
    received = bytearray()
    try:
        with httpx.stream("GET", url, headers=auth, timeout=60) as response:
            for chunk in response.iter_raw():
                received += chunk
        assert response.status_code == 502 and b"sent bytes that are not" in received
    except httpx.HTTPError:
        assert len(received) < len(big.data)
    assert big.digest not in backend.blob_digests(server)
    assert backend.upload_leftovers(server) == []
    assert "sent bytes that are not" in server.log()
    proxy.mode = PASS
    answer = get(server, f"hub/app/blobs/{big.digest}", auth)
    assert answer.status_code == 200 and answer.content == big.data
    assert len(proxy.requests("GET", big.digest)) == 3


def test_pushes_into_a_cache_are_refused_on_both_doors(
    make_server: Callable[..., PierServer], upstream: tuple[Distribution, Proxy], tmp_path: Path
) -> None:
    registry, proxy = upstream
    image = Image(tmp_path / "app", "v1")
    push(image, registry.host, "app")
    server = cache_server(make_server, rule(proxy.url))
    pull(server, "hub/app", tmp_path / "out", "v1")  # the repository exists, and still takes no push
    ecr = client(server)
    auth = bearer(server, ecr)
    for name in ("hub/app", "hub/new"):
        started = httpx.post(f"{server.url}/v2/{OWNER.alias}/{name}/blobs/uploads/", headers=auth)
        assert started.status_code == 403 and error_of(started)["code"] == "DENIED"
        assert "read-only pull-through cache" in error_of(started)["message"]
        put = httpx.put(
            f"{server.url}/v2/{OWNER.alias}/{name}/manifests/v2",
            headers={**auth, "Content-Type": OCI_MANIFEST},
            content=image.manifest,
        )
        assert put.status_code == 403 and "read-only pull-through cache" in error_of(put)["message"]
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            ecr.initiate_layer_upload(repositoryName=name)
        assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
        assert "read-only pull-through cache" in refused.value.response["Error"]["Message"]
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            ecr.put_image(repositoryName=name, imageManifest=image.manifest.decode(), imageTag="v2")
        assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    target = f"docker://{server.host}/{OWNER.alias}/hub/app:v2"
    copied = skopeo(
        "copy", "--dest-tls-verify=false", *login_args(server, "dest"), f"oci:{image.path}:v1", target, check=False
    )
    assert copied.returncode != 0 and "read-only pull-through cache" in copied.stderr
    assert [d["imageTags"] for d in ecr.describe_images(repositoryName="hub/app")["imageDetails"]] == [["v1"]]


def test_limits_refuse_before_fetching_and_eviction_makes_room(
    make_server: Callable[..., PierServer], backend: Backend, upstream: tuple[Distribution, Proxy], tmp_path: Path
) -> None:
    registry, proxy = upstream
    big = Image(tmp_path / "big", "v1", random_bytes=300_000)
    one, two = Image(tmp_path / "one", "v1"), Image(tmp_path / "two", "v1")
    for image, name in ((big, "big"), (one, "one"), (two, "two")):
        push(image, registry.host, name)
    room = max(one.size, two.size) + 1000  # one of them fits, not both
    server = cache_server(
        make_server,
        rule(proxy.url, prefix="small", max_layer_size_bytes=200_000),
        rule(proxy.url, prefix="tight", max_total_size_bytes=room),
    )
    auth = {**authorized(server), **ACCEPT_ALL}
    # The manifest says the layer is too large: refused, and no blob is asked for.
    refused = get(server, "small/big/manifests/v1", auth)
    assert refused.status_code == 403 and error_of(refused)["code"] == "DENIED"
    assert "max_layer_size_bytes" in error_of(refused)["message"] and big.layers[0].digest in refused.text
    assert proxy.requests("GET", "/blobs/") == []

    pull(server, "tight/one", tmp_path / "out-one", "v1")
    assert get(server, "tight/two/manifests/v1", auth).status_code == 200
    full = get(server, f"tight/two/blobs/{two.layers[0].digest}", auth)
    assert full.status_code == 403 and "max_total_size_bytes" in error_of(full)["message"]
    assert proxy.requests("GET", two.layers[0].digest) == []
    # Evicting an image gives its room back at once.
    ecr = client(server)
    deleted = ecr.batch_delete_image(repositoryName="tight/one", imageIds=[{"imageTag": "v1"}])
    assert deleted["failures"] == []
    pull(server, "tight/two", tmp_path / "out-two", "v1")
    assert layout_blobs(tmp_path / "out-two") == layout_blobs(two.path)
    # GC frees what no cached image uses; an evicted image's next pull fetches it all again.
    ecr.batch_delete_image(repositoryName="tight/two", imageIds=[{"imageTag": "v1"}])
    assert "freed 4 blob(s)" in server.run_cli("gc", "--grace-seconds", "0")
    assert not {b.digest for b in one.blobs + two.blobs} & set(backend.blob_digests(server))
    pull(server, "tight/one", tmp_path / "again", "v1")
    assert layout_blobs(tmp_path / "again") == layout_blobs(one.path)
    assert len(proxy.requests("GET", "/v2/one/manifests/")) == 2
    assert all(len(proxy.requests("GET", b.digest)) == 2 for b in one.blobs)


def test_anonymous_clients_get_what_is_cached_and_log_in_for_the_rest(
    make_server: Callable[..., PierServer], upstream: tuple[Distribution, Proxy], tmp_path: Path
) -> None:
    registry, proxy = upstream
    image, other = Image(tmp_path / "app", "v1"), Image(tmp_path / "other", "v1")
    push(image, registry.host, "app")
    push(other, registry.host, "other")
    server = cache_server(
        make_server, rule(proxy.url), rule(proxy.url, prefix="open", allow_anonymous_pull_through=True)
    )
    anonymous = {**bearer(server), **ACCEPT_ALL}
    refused = get(server, "hub/app/manifests/v1", anonymous)
    assert refused.status_code == 401 and error_of(refused)["code"] == "UNAUTHORIZED"
    assert "log in" in error_of(refused)["message"] and "docker login" in error_of(refused)["message"]
    assert refused.headers["WWW-Authenticate"].startswith(f'Bearer realm="{server.url}/token"')
    assert get(server, "hub/app/manifests/v1").status_code == 401  # no token at all: the same
    assert proxy.seen == []

    assert get(server, "hub/app/manifests/v1", {**authorized(server), **ACCEPT_ALL}).status_code == 200
    assert get(server, "hub/app/manifests/v1", anonymous).content == image.manifest  # cached: anyone
    layer = image.layers[0].digest
    assert get(server, f"hub/app/blobs/{layer}", anonymous).status_code == 401  # not fetched yet
    assert get(server, f"hub/app/blobs/{layer}", authorized(server)).content == image.layers[0].data
    assert get(server, f"hub/app/blobs/{layer}", anonymous).content == image.layers[0].data
    # A rule that lets anonymous clients pull through.
    pull(server, "open/other", tmp_path / "out", "v1", anonymous=True)
    assert layout_blobs(tmp_path / "out") == layout_blobs(other.path)


def test_an_upstream_with_token_authentication(make_server: Callable[..., PierServer], tmp_path: Path) -> None:
    """The Bearer flow against distribution's token authentication: a 401 names the realm and service, pier
    gets a token for repository:<name>:pull with the rule's credentials, and keeps it for the next requests."""
    tokens = TokenServer()
    registry = Distribution(tmp_path / "upstream", token=tokens)
    try:
        image = Image(tmp_path / "app", "v1")
        push(image, registry.host, "tools/app", creds=registry.creds())
        pushed = len(tokens.issued)
        server = cache_server(make_server, rule(registry.url, credentials=CREDENTIALS))
        pull(server, "hub/tools/app", tmp_path / "out", "v1")
        assert layout_blobs(tmp_path / "out") == layout_blobs(image.path)
        assert tokens.issued[pushed:] == [["repository:tools/app:pull"]]  # one token, for all three fetches
        assert PASSWORD not in server.log()
        # Without the right credentials the upstream refuses, and the client hears why.
        wrong = cache_server(make_server, rule(registry.url))  # no credentials: an anonymous token request
        refused = get(wrong, "hub/tools/app/manifests/v1", {**authorized(wrong), **ACCEPT_ALL})
        assert refused.status_code == 502 and registry.host in error_of(refused)["message"]
    finally:
        registry.stop()
        tokens.close()


def test_details_of_a_cached_image_wait_for_its_config_to_be_pulled(
    make_server: Callable[..., PierServer], backend: Backend, tmp_path: Path
) -> None:
    """A cache stores an image's manifest before its blobs: a details pass that runs in between (one runs
    at every start) must leave the image for a later pass, not mark its config as missing for good."""
    registry = Distribution(tmp_path / "upstream")
    try:
        image = Image(tmp_path / "app", "v1", architecture="arm64")
        push(image, registry.host, "app")
        server = cache_server(make_server, rule(registry.url))
        ecr = client(server)
        url = f"{server.url}/v2/{OWNER.alias}/hub/app/manifests/v1"
        accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
        assert httpx.get(url, headers={**bearer(server, ecr), **accept}).status_code == 200  # the manifest alone
        server.restart()  # a details pass, with the config not stored yet
        assert page_json(server, f"/{OWNER.alias}/hub/app:v1")["platforms"][0]["detailsPending"]

        pull(server, "hub/app", tmp_path / "pulled", "v1")  # the config and layer, now stored
        server.restart()
        document = wait_for(
            lambda: page_json(server, f"/{OWNER.alias}/hub/app:v1"),
            lambda d: not d["platforms"][0]["detailsPending"],
        )
        assert document["platforms"][0]["platform"] == "linux/arm64"
    finally:
        registry.stop()
