"""Downloads: manifest GETs by real clients, counted in batches, kept across restarts and SIGTERM, and counted
once across processes sharing a database."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from tests.backends import Backend, PostgresS3
from tests.conftest import OWNER, _write_config, client, owner_env
from tests.dockerd import DockerCli
from tests.gallery.helpers import page_json, repository_downloads, wait_for
from tests.images import OCI_INDEX, digest_of, index_manifest, push_image
from tests.server import PierServer


def skopeo_pull(server: PierServer, name: str, destination: Path) -> None:
    subprocess.run(
        [
            "skopeo",
            "--insecure-policy",
            "copy",
            "--src-tls-verify=false",
            f"docker://{server.host}/{OWNER.alias}/{name}",
            f"oci:{destination}:v1",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


def card_downloads(page: Any, server: PierServer, name: str) -> int:
    page.goto(f"{server.url}/")
    text = page.locator(".card", has=page.locator(".card-name", has_text=name)).locator(".downloads")
    return int(text.get_attribute("data-downloads"))


def test_pulls_by_skopeo_and_docker_show_on_the_card_and_rank_it_first(
    page: Any, make_server: Any, docker: DockerCli, tmp_path: Path
) -> None:
    server = make_server("downloads_flush_seconds = 1\n")
    ecr = client(server)
    for name in ("popular", "quiet"):
        ecr.create_repository(repositoryName=name)
    # Random bytes: an image this docker daemon (shared by the session) has never seen. One it already holds
    # is resolved with a HEAD, which is not a download, and never fetched.
    manifest, _ = push_image(ecr, "popular", "v1", random_bytes=64)
    push_image(ecr, "quiet", "v1")  # pushed last: first by push, last by downloads
    skopeo_pull(server, "popular:v1", tmp_path / "one")
    skopeo_pull(server, "popular:v1", tmp_path / "two")
    cli = docker.with_config(tmp_path / "docker-config")
    cli.run("pull", f"{server.host}/{OWNER.alias}/popular:v1")
    downloads = wait_for(lambda: card_downloads(page, server, "popular"), lambda n: n >= 3)
    assert downloads == 3
    assert (
        page.locator(".card", has=page.locator(".card-name", has_text="popular")).locator(".downloads").inner_text()
        == "3 downloads"
    )
    names = [n.strip() for n in page.locator(".cards .card-name").all_inner_texts()]
    assert names == ["popular", "quiet"]  # the home page's default order: most downloaded first
    page.goto(f"{server.url}/?sort=pushed")
    assert [n.strip() for n in page.locator(".cards .card-name").all_inner_texts()] == ["quiet", "popular"]
    # HEADs, blob GETs and page views are not downloads: after them and one more GET, the count is 4.
    base = f"{server.url}/v2/{OWNER.alias}/popular"
    assert httpx.head(f"{base}/manifests/v1").status_code == 200
    assert httpx.head(f"{base}/manifests/{digest_of(manifest)}").status_code == 200
    for blob in [json.loads(manifest)["config"], *json.loads(manifest)["layers"]]:
        assert httpx.get(f"{base}/blobs/{blob['digest']}", follow_redirects=True).status_code == 200
    assert httpx.get(f"{base}/manifests/v1").status_code == 200  # the one more GET
    for _ in range(3):
        httpx.get(f"{server.url}/{OWNER.alias}/popular")
        httpx.get(f"{server.url}/{OWNER.alias}/popular:v1")
    assert wait_for(lambda: repository_downloads(server, OWNER.alias, "popular"), lambda n: n >= 4) == 4
    tags = page_json(server, f"/{OWNER.alias}/popular")["tags"]
    assert [(t["tag"], t["downloads"]) for t in tags] == [("v1", 4)]
    assert page_json(server, f"/{OWNER.alias}")["downloads"] == 4  # the publisher's sum


def pull_many(servers: list[PierServer], name: str, count: int, reference: str = "v1") -> None:
    """`count` manifest GETs, each on a new connection, spread over the servers and over 8 threads."""

    def pull(n: int) -> int:
        server = servers[n % len(servers)]
        return httpx.get(f"{server.url}/v2/{OWNER.alias}/{name}/manifests/{reference}").status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(pull, range(count))) == {200}


def test_workers_count_each_pull_once_and_sigterm_writes_what_is_pending(make_server: Any) -> None:
    """`--workers 2`, with an interval no write happens within: every count is in the workers' memory when
    SIGTERM comes, each worker writes its own, and after a restart each pull is counted exactly once."""
    server = make_server("workers = 2\ndownloads_flush_seconds = 10\n")
    ecr = client(server)
    ecr.create_repository(repositoryName="multi")
    amd, _ = push_image(ecr, "multi", None, architecture="amd64")
    arm, _ = push_image(ecr, "multi", None, architecture="arm64")
    index = index_manifest([(amd, "amd64", "linux"), (arm, "arm64", "linux")])
    ecr.put_image(repositoryName="multi", imageManifest=index.decode(), imageTag="v1")
    base = f"{server.url}/v2/{OWNER.alias}/multi/manifests"
    with httpx.Client() as http:
        for _ in range(2):  # two pulls as docker makes them: the index by tag, then one platform by digest
            assert http.get(f"{base}/v1", headers={"Accept": OCI_INDEX}).status_code == 200
            assert http.get(f"{base}/{digest_of(amd)}").status_code == 200
        assert http.head(f"{base}/v1").status_code == 200  # not a download
    pull_many([server], "multi", 40, f"{digest_of(arm)}")  # over new connections, so over both workers
    server.stop()  # SIGTERM, well within the 10 s interval
    server.start()
    image = page_json(server, f"/{OWNER.alias}/multi:v1")
    assert image["downloads"] == 2
    assert [(p["platform"], p["downloads"]) for p in image["platforms"]] == [("linux/amd64", 2), ("linux/arm64", 40)]
    assert image["repository"]["downloads"] == 44


def test_two_servers_on_one_database_count_each_pull_once(backend: Backend, tmp_path: Path) -> None:
    """Two `pier serve` processes sharing the metadata database (PostgreSQL, or one SQLite file)."""
    config = _write_config(tmp_path / "pier.toml", "downloads_flush_seconds = 1\n" + backend.config())
    shared = isinstance(backend, PostgresS3)
    first = PierServer(tmp_path / "one", config, owner_env()).start()
    second = PierServer(tmp_path / ("two" if shared else "one"), config, owner_env()).start()
    try:
        ecr = client(first)
        ecr.create_repository(repositoryName="shared")
        push_image(ecr, "shared", "v1")
        pull_many([first, second], "shared", 50)
        seen = wait_for(lambda: repository_downloads(second, OWNER.alias, "shared"), lambda n: n >= 50)
        assert seen == 50 and repository_downloads(first, OWNER.alias, "shared") == 50
        pull_many([first, second], "shared", 10)
        seen = wait_for(lambda: repository_downloads(first, OWNER.alias, "shared"), lambda n: n >= 60)
        assert seen == 60 and repository_downloads(second, OWNER.alias, "shared") == 60
    finally:
        first.stop()
        second.stop()
