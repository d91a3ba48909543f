"""A server with a known catalogue, and headless Debian Chromium driven by Playwright."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.test_catalog import tiny_png
from tests.backends import Backend
from tests.conftest import _write_config, client, owner_env
from tests.images import index_manifest, push_image
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
USAGE = "Run it:\n\n```sh\ndocker run -p 80:80 owner-alias/web\n```\n"
SECRET_POLICY = (
    '{"Statement": {"Sid": "private-sid-7731", "Effect": "Allow", "Principal": "*", "Action": "ecr-public:Describe*"}}'
)


@pytest.fixture(scope="session")
def gallery_server(tmp_path_factory: pytest.TempPathFactory, backend: Backend) -> Iterator[PierServer]:
    root = tmp_path_factory.mktemp("gallery")
    server = PierServer(root / "data", _write_config(root / "pier.toml", backend.config()), owner_env()).start()
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
    amd, _ = push_image(ecr, "web", None, architecture="amd64")
    arm, _ = push_image(ecr, "web", None, architecture="arm64")
    index = index_manifest([(amd, "amd64", "linux"), (arm, "arm64", "linux")])
    ecr.put_image(repositoryName="web", imageManifest=index.decode(), imageTag="latest")
    push_image(ecr, "web", "1.0", layers=2)
    push_image(ecr, "db", "v3")
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
