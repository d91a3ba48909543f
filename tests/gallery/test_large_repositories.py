"""A repository of 10,000 tags: its page lists 50 at a time (keyset), newest first or by name, with next links.
(How fast the first page renders is measured in bench/gallery.py, not here.)"""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import OWNER, client
from tests.gallery.helpers import page_json
from tests.images import OCI_MANIFEST, digest_of, push_image
from tests.oci.helpers import bearer
from tests.server import PierServer

TAGS, BATCH, PER_PAGE = 10_000, 1_000, 50


def seed_tags(server: PierServer, ecr: Any, name: str) -> list[list[str]]:
    """One image under TAGS tags: a PutImage, then /v2/ manifest PUTs with a thousand ?tag= each (one
    transaction per PUT). The tags of each PUT, in push order."""
    manifest, _ = push_image(ecr, name, "t00000")
    scope = f"repository:{OWNER.alias}/{name}:pull,push"
    headers = {**bearer(server, ecr, scope), "Content-Type": OCI_MANIFEST}
    url = f"{server.url}/v2/{OWNER.alias}/{name}/manifests/{digest_of(manifest)}"
    batches = [["t00000"]]
    with httpx.Client(timeout=120) as http:
        for first in range(1, TAGS, BATCH):
            tags = [f"t{i:05d}" for i in range(first, min(TAGS, first + BATCH))]
            response = http.put(url, params=[("tag", t) for t in tags], content=manifest, headers=headers)
            assert response.status_code == 201, response.text
            batches.append(tags)
    return batches


def walk(server: PierServer, path: str, sort: str, pages: int | None = None) -> list[str]:
    """The tags of the first `pages` pages (all of them without), following nextToken."""
    seen: list[str] = []
    token = None
    with httpx.Client(timeout=30, headers={"Accept": "application/json"}) as http:
        for _ in range(pages or TAGS):
            params = {"sort": sort, **({"nextToken": token} if token else {})}
            document = http.get(server.url + path, params=params).json()
            assert len(document["tags"]) == PER_PAGE or document["nextToken"] is None
            seen += [t["tag"] for t in document["tags"]]
            token = document["nextToken"]
            if token is None:
                break
    return seen


def test_ten_thousand_tags_paginate(page: Any, make_server: Any) -> None:
    server = make_server()
    ecr = client(server)
    ecr.create_repository(repositoryName="big")
    batches = seed_tags(server, ecr, "big")
    path = f"/{OWNER.alias}/big"
    # Newest first: the last PUT's tags (those of one push share its time: by name, descending), and so on back.
    newest_first = [tag for batch in reversed(batches) for tag in sorted(batch, reverse=True)]
    assert len(newest_first) == TAGS
    assert walk(server, path, "pushed") == newest_first
    assert walk(server, path, "name", pages=3) == sorted(newest_first)[: 3 * PER_PAGE]  # a plain keyset on the name

    page.goto(server.url + path)
    rows = page.locator("table.tags tbody tr")
    assert rows.count() == PER_PAGE
    assert page.locator("table.tags tbody th").first.inner_text().strip() == newest_first[0]
    page.click("[data-next-tags]")
    assert [t.strip() for t in page.locator("table.tags tbody th").all_inner_texts()] == newest_first[50:100]
    page.click("nav.sorts >> text=Name")
    assert "sort=name" in page.url and "nextToken" not in page.url  # a new order starts at its first page
    assert page.locator("table.tags tbody th").first.inner_text().strip() == "t00000"
    page.click("[data-next-tags]")
    assert page.locator("table.tags tbody th").first.inner_text().strip() == "t00050"
    # The image's own page names its first tags and how many more there are.
    image = page_json(server, f"{path}:t04321")
    assert image["tagCount"] == TAGS and len(image["tags"]) == PER_PAGE
    # A token is for its own listing only.
    first = page_json(server, path, sort="name")["nextToken"]
    assert httpx.get(server.url + path, params={"sort": "pushed", "nextToken": first}).status_code == 400
