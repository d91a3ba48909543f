"""A server with a known catalogue, and headless Debian Chromium driven by Playwright."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api.test_catalog import tiny_png
from tests.backends import Backend
from tests.conftest import OWNER, _write_config, client, owner_env
from tests.gallery.helpers import COSIGN_SIGNATURE, page_json, push_artifact, push_rich_image, wait_for
from tests.images import digest_of, index_manifest, push_image
from tests.server import PierServer

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ABOUT = """# Web server

A **fast** web server for containers.

| Port | Purpose |
|------|---------|
| 80   | HTTP    |
| 443  | HTTPS   |

<script>document.title = "pwned"; window.pwned = true;</script>
<img src=x onerror="window.pwned = true">
"""
WEB_PULLS = 3
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
USAGE = "Run it:\n\n```sh\ndocker run -p 80:80 owner-alias/web\n```\n"
SECRET_POLICY = (
    '{"Statement": {"Sid": "private-sid-7731", "Effect": "Allow", "Principal": "*", "Action": "ecr-public:Describe*"}}'
)


@pytest.fixture(scope="session")
def gallery_server(tmp_path_factory: pytest.TempPathFactory, backend: Backend) -> Iterator[PierServer]:
    root = tmp_path_factory.mktemp("gallery")
    settings = "downloads_flush_seconds = 1\nverified = true\n" + backend.config()  # the owner is a verified publisher
    server = PierServer(root / "data", _write_config(root / "pier.toml", settings), owner_env()).start()
    ecr = client(server)
    ecr.put_registry_catalog_data(displayName="Acme Corp")
    ecr.create_repository(
        repositoryName="web",
        catalogData={
            "description": "Fast nginx-based web server",
            "architectures": ["x86-64", "ARM 64"],
            "operatingSystems": ["Linux"],
            "aboutText": ABOUT,
            "usageText": USAGE,
            "logoImageBlob": tiny_png(),
        },
        tags=[{"Key": "cost-centre", "Value": "private-tag-9921"}],
    )
    ecr.set_repository_policy(repositoryName="web", policyText=SECRET_POLICY)
    ecr.create_repository(
        repositoryName="tools/cli",
        catalogData={
            "description": "Command line helpers for Windows builds",
            "architectures": ["x86-64"],
            "operatingSystems": ["Windows"],
        },
    )
    ecr.create_repository(
        repositoryName="db",
        catalogData={
            "description": "A small SQL database that serves web apps",
            "architectures": ["ARM 64"],
            "operatingSystems": ["Linux"],
        },
    )
    push_image(ecr, "web", "1.0", layers=2)
    amd = push_rich_image(ecr, "web", None, architecture="amd64")
    arm = push_rich_image(ecr, "web", None, architecture="arm64")
    index = index_manifest([(amd, "amd64", "linux"), (arm, "arm64", "linux")])
    ecr.put_image(repositoryName="web", imageManifest=index.decode(), imageTag="latest")
    push_artifact(ecr, "web", index, COSIGN_SIGNATURE, b'{"critical": {"type": "cosign container image signature"}}')
    push_image(ecr, "db", "v3")
    for _ in range(WEB_PULLS):  # pulls of web:latest, as docker makes them: the index, then one platform
        httpx.get(f"{server.url}/v2/{OWNER.alias}/web/manifests/latest", headers={"Accept": OCI_INDEX})
        httpx.get(f"{server.url}/v2/{OWNER.alias}/web/manifests/{digest_of(amd)}")
    web = wait_for(lambda: page_json(server, f"/{OWNER.alias}/web")["downloads"], lambda n: n >= 2 * WEB_PULLS)
    assert web == 2 * WEB_PULLS
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Debian's chromium is not installed (scripts/test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, gallery_server: PierServer) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=gallery_server.url)
    opened = context.new_page()
    yield opened
    context.close()
