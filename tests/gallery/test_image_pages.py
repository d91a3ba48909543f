"""Image pages: an index's platforms with their config, secrets masked everywhere, links, 404s; details of
images pushed before pier kept them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import expect
from sqlalchemy import text

from pier.storage.sql import open_engine
from tests.backends import Backend
from tests.conftest import OWNER, client
from tests.gallery.helpers import SECRET, SOURCE_URL, delete_blob, page_json, push_rich_image, wait_for
from tests.images import digest_of, index_manifest
from tests.server import PierServer

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_an_index_page_shows_each_platform_and_its_config(page: Any, gallery_server: PierServer) -> None:
    page.goto(f"{gallery_server.url}/{OWNER.alias}/web:latest")
    assert page.title() == f"{OWNER.alias}/web:latest · pier"
    sections = page.locator("section.image-platform")
    assert [s.get_attribute("data-platform") for s in sections.all()] == ["linux/amd64", "linux/arm64"]
    for section in sections.all():
        assert section.locator("[data-entrypoint]").inner_text() == '["/usr/sbin/nginx"]'
        assert section.locator("[data-cmd]").inner_text() == '["-g", "daemon off;"]'
        assert section.locator("[data-ports] code").all_inner_texts() == ["443/tcp", "80/tcp"]
        assert section.locator("[data-workdir]").inner_text() == "/srv/www"
        assert section.locator("[data-user]").inner_text() == "www-data"
        names, values = (section.locator(f"table.env tbody {cell}").all_inner_texts() for cell in ("th", "td"))
        env = dict(zip(names, values, strict=True))
        assert env["NGINX_VERSION"] == "1.27.0" and env["API_TOKEN"] == "********" and env["db_password"] == "********"
        assert section.locator("[data-label='org.opencontainers.image.licenses']").inner_text() == "Apache-2.0"
        assert section.locator("[data-label='org.opencontainers.image.revision']").inner_text() == "0f1e2d3c"
        source = section.locator("[data-label='org.opencontainers.image.source'] a")
        assert source.get_attribute("href") == SOURCE_URL
        assert source.get_attribute("rel") == "noopener noreferrer nofollow"
        assert section.locator("table.layers tbody tr").count() == 1
        assert section.locator("details.history summary").inner_text() == "History (3 steps)"
    # Only http(s) values are links: a javascript: label is text.
    assert page.locator("a[href^='javascript']").count() == 0
    assert page.locator("table.labels td", has_text="javascript:alert").count() == 2
    # The cosign signature refers to the index itself.
    signature = page.locator(".artifact[data-kind=signature]")
    assert signature.count() == 1 and "cosign" in signature.inner_text()
    assert page.locator("h1 + .badges .badge.signed").is_visible()
    page.locator("details.history").first.click()
    page.screenshot(path=str(DOCS / "gallery-image.png"), full_page=True)
    # A platform's own page, by digest.
    page.locator("section.image-platform").nth(1).locator("dd a").first.click()
    expect(page.locator("section.image-platform")).to_have_count(1)
    assert page.locator("section.image-platform").get_attribute("data-platform") == "linux/arm64"
    assert page.locator("[data-image-downloads]").inner_text() == "0"


def test_an_image_page_as_json(gallery_server: PierServer) -> None:
    document = page_json(gallery_server, f"/{OWNER.alias}/web:latest")
    amd = document["platforms"][0]
    assert amd["config"]["exposedPorts"] == ["443/tcp", "80/tcp"]
    assert {e["name"]: e["value"] for e in amd["config"]["env"]}["API_TOKEN"] == "********"
    assert amd["config"]["namedLabels"][0] == {
        "key": "org.opencontainers.image.source",
        "value": SOURCE_URL,
        "name": "Source",
    }
    assert [layer["mediaType"] for layer in amd["layers"]] == ["application/vnd.oci.image.layer.v1.tar+gzip"]
    assert amd["size"] > 0 and amd["downloads"] == 3  # the fixture pulled web:latest's amd64 image three times
    assert document["downloads"] == 3 and document["signed"] is True
    assert [a["kind"] for a in document["artifacts"]] == ["signature"]


def test_secret_looking_values_never_appear(gallery_server: PierServer) -> None:
    base = f"{gallery_server.url}/{OWNER.alias}/web"
    latest = page_json(gallery_server, f"/{OWNER.alias}/web:latest")
    paths = ["/", f"/{OWNER.alias}", f"/{OWNER.alias}/web", f"/{OWNER.alias}/web:latest"]
    paths += [f"/{OWNER.alias}/web@{p['digest']}" for p in latest["platforms"]]
    seen = 0
    for path in paths:
        for accept in ("text/html", "application/json"):
            body = httpx.get(gallery_server.url + path, headers={"Accept": accept}).text
            assert SECRET not in body, f"{path} ({accept}) shows a secret"
            seen += "API_TOKEN" in body
    assert seen >= 6  # the variables are there, by name, in the image pages' HTML and JSON
    assert SECRET not in httpx.get(f"{gallery_server.url}/search", params={"term": "web"}).text
    history = httpx.get(f"{base}:latest").text
    assert "ENV API_TOKEN=********" in history and "SIGNING_KEY=********" in history  # masked in history too


def test_unknown_tags_and_digests_are_404_pages(gallery_server: PierServer) -> None:
    base = f"{gallery_server.url}/{OWNER.alias}/web"
    for path in (":nope", "@sha256:" + "0" * 64, "@sha256:short", ":bad tag"):
        response = httpx.get(base + path)
        assert response.status_code == 404, path
        assert "Not found" in response.text and response.headers["content-type"].startswith("text/html")
        assert httpx.get(base + path, headers={"Accept": "application/json"}).status_code == 404
    assert httpx.get(f"{gallery_server.url}/{OWNER.alias}/nothing:latest").status_code == 404
    # A tag of another repository (web has latest, db has not) is not this one's.
    assert httpx.get(f"{gallery_server.url}/{OWNER.alias}/db:latest").status_code == 404


def test_images_pushed_before_details_were_kept_get_them_in_the_background(make_server: Any, backend: Backend) -> None:
    """Details are gathered at push time; an image without them (pushed by an older pier) gets them from the
    bounded pass the server runs at start. Pages never read a blob: they show the same once the blobs'
    bytes are gone."""
    server = make_server()
    ecr = client(server)
    ecr.create_repository(repositoryName="old")
    amd = push_rich_image(ecr, "old", None, architecture="amd64")
    arm = push_rich_image(ecr, "old", None, architecture="arm64")
    index = index_manifest([(amd, "amd64", "linux"), (arm, "arm64", "linux")])
    ecr.put_image(repositoryName="old", imageManifest=index.decode(), imageTag="v1")
    server.stop()
    engine = open_engine(database_url(server))
    with engine.begin() as connection:  # as a database migrated from before revision 0004 has it
        assert connection.execute(text("DELETE FROM image_details")).rowcount == 3
    engine.dispose()
    server.start()
    document = wait_for(
        lambda: page_json(server, f"/{OWNER.alias}/old:v1"),
        lambda d: not any(p["detailsPending"] for p in d["platforms"]),
    )
    assert [p["platform"] for p in document["platforms"]] == ["linux/amd64", "linux/arm64"]
    assert document["platforms"][1]["config"]["workingDir"] == "/srv/www"
    assert {e["name"]: e["value"] for e in document["platforms"][1]["config"]["env"]}["API_TOKEN"] == "********"
    tags = page_json(server, f"/{OWNER.alias}/old")["tags"]
    assert tags[0]["platforms"] == ["linux/amd64", "linux/arm64"] and tags[0]["digest"] == digest_of(index)
    for manifest in (amd, arm):
        for blob in [json.loads(manifest)["config"], *json.loads(manifest)["layers"]]:
            delete_blob(backend, server, blob["digest"])
    assert page_json(server, f"/{OWNER.alias}/old:v1") == document
    assert page_json(server, f"/{OWNER.alias}/old")["tags"] == tags
    assert httpx.get(f"{server.url}/{OWNER.alias}/old:v1").status_code == 200


def database_url(server: PierServer) -> str:
    assert server.config_file is not None
    for line in server.config_file.read_text().splitlines():
        if line.startswith("database_url"):
            return str(json.loads(line.partition("=")[2].strip()))
    return f"sqlite:///{server.data_dir / 'pier.db'}"
