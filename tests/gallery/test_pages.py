"""The gallery in a real browser: search, filters, markdown, sanitising, copy buttons, tags; screenshots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.conftest import OWNER
from tests.gallery.conftest import SECRET_POLICY
from tests.server import PierServer

DOCS = Path(__file__).resolve().parents[2] / "docs"


def card_names(page: Any) -> list[str]:
    return [name.strip() for name in page.locator(".cards .card-name").all_inner_texts()]


def test_home_lists_newest_pushes_first_and_screenshot(page: Any, gallery_server: PierServer) -> None:
    page.goto(gallery_server.url + "/")
    assert card_names(page) == ["db", "web", "tools/cli"]  # db was pushed last; tools/cli never
    assert "Acme Corp" in page.locator(".cards").inner_text()
    page.screenshot(path=str(DOCS / "gallery-home.png"), full_page=True)


def test_search_finds_a_word_of_the_description_as_you_type(page: Any, gallery_server: PierServer) -> None:
    page.goto(gallery_server.url + "/")
    page.fill("#q", "sql")
    expect(page.locator(".cards .card")).to_have_count(1)
    assert card_names(page) == ["db"]
    assert "q=sql" in page.url  # the address bar follows, so the result can be shared


def test_name_matches_rank_above_description_matches(gallery_server: PierServer) -> None:
    found = httpx.get(f"{gallery_server.url}/search", params={"term": "web"}).json()["repositories"]
    assert [r["name"] for r in found] == ["web", "db"]  # "db" only mentions web apps in its description


def test_badge_filter_narrows_the_list(page: Any, gallery_server: PierServer) -> None:
    page.goto(gallery_server.url + "/")
    page.check("input[name=operatingSystem][value=Windows]")
    expect(page.locator(".cards .card")).to_have_count(1)
    assert card_names(page) == ["tools/cli"]
    page.uncheck("input[name=operatingSystem][value=Windows]")
    page.check("input[name=architecture][value='ARM 64']")
    expect(page.locator(".cards .card")).to_have_count(2)
    assert sorted(card_names(page)) == ["db", "web"]


def test_repository_page_renders_markdown_safely(page: Any, gallery_server: PierServer) -> None:
    page.goto(f"{gallery_server.url}/{OWNER.alias}/web")
    about = page.locator("#about")
    assert about.locator("table th").all_inner_texts() == ["Port", "Purpose"]
    assert about.locator("strong").inner_text() == "fast"
    assert "<script>" in about.inner_text()  # shown as text
    assert page.title() == f"{OWNER.alias}/web · pier"
    assert page.evaluate("window.pwned === undefined")
    page.click("#tab-usage")
    assert page.locator("#usage pre code").inner_text().strip() == "docker run -p 80:80 owner-alias/web"
    assert page.locator("#about").is_hidden()
    page.click("#tab-about")
    page.screenshot(path=str(DOCS / "gallery-repository.png"), full_page=True)


def test_copy_button_copies_the_pull_command(page: Any, gallery_server: PierServer) -> None:
    page.goto(f"{gallery_server.url}/{OWNER.alias}/web")
    page.click("text=Copy pull command")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == f"docker pull {gallery_server.host}/{OWNER.alias}/web:latest"


def test_tag_list_shows_a_multi_arch_image(page: Any, gallery_server: PierServer) -> None:
    page.goto(f"{gallery_server.url}/{OWNER.alias}/web")
    latest = page.locator("table.tags tr", has=page.locator("th", has_text="latest"))
    assert latest.locator(".platform").all_inner_texts() == ["linux/amd64", "linux/arm64"]
    assert "OCI index" in latest.inner_text()
    single = page.locator("table.tags tr", has=page.locator("th", has_text="1.0"))
    assert single.locator(".platform").all_inner_texts() == ["linux/amd64"]


def test_pages_read_without_javascript_and_on_a_phone(browser: Any, gallery_server: PierServer) -> None:
    context = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(f"{gallery_server.url}/?q=windows")
    assert card_names(page) == ["tools/cli"]  # the form works without script
    page.goto(f"{gallery_server.url}/{OWNER.alias}/web")
    assert page.locator("#about").is_visible() and page.locator("#usage").is_visible()
    assert page.locator("[role=tablist]").is_hidden()  # tabs only appear when script can drive them
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing overflows sideways
    page.screenshot(path=str(DOCS / "gallery-phone.png"), full_page=True)
    context.close()


def test_nothing_private_is_shown(gallery_server: PierServer) -> None:
    html = httpx.get(f"{gallery_server.url}/{OWNER.alias}/web").text + httpx.get(f"{gallery_server.url}/").text
    html += httpx.get(f"{gallery_server.url}/search", params={"term": "web"}).text
    for private in (
        "private-sid-7731",
        SECRET_POLICY,
        "private-tag-9921",
        "cost-centre",
        OWNER.id,
        OWNER.access_key_id,
    ):
        assert private not in html


def test_registry_page_and_missing_pages(gallery_server: PierServer) -> None:
    registry = httpx.get(f"{gallery_server.url}/{OWNER.alias}")
    assert registry.status_code == 200 and "Acme Corp" in registry.text
    assert httpx.get(f"{gallery_server.url}/nobody").status_code == 404
    assert httpx.get(f"{gallery_server.url}/{OWNER.alias}/missing").status_code == 404
    assert httpx.get(f"{gallery_server.url}/{OWNER.alias}/web").headers["content-security-policy"]


def test_search_endpoint_paginates_and_checks_its_input(gallery_server: PierServer) -> None:
    url = f"{gallery_server.url}/search"
    first = httpx.get(url, params={"maxResults": 2}).json()
    assert len(first["repositories"]) == 2 and first["nextToken"]
    rest = httpx.get(url, params={"maxResults": 2, "nextToken": first["nextToken"]}).json()
    names = [r["name"] for r in first["repositories"] + rest["repositories"]]
    assert sorted(names) == ["db", "tools/cli", "web"] and rest["nextToken"] is None
    assert httpx.get(url, params={"maxResults": 0}).status_code == 400
    assert httpx.get(url, params={"architecture": "sparc"}).status_code == 400
    assert httpx.get(url, params={"nextToken": "forged"}).status_code == 400


def test_the_index_follows_catalog_changes(gallery_server: PierServer) -> None:
    from tests.conftest import client

    ecr = client(gallery_server)
    ecr.create_repository(repositoryName="reindexed", catalogData={"description": "zebra"})
    search = f"{gallery_server.url}/search"
    assert [r["name"] for r in httpx.get(search, params={"term": "zeb"}).json()["repositories"]] == ["reindexed"]
    ecr.put_repository_catalog_data(
        repositoryName="reindexed", catalogData={"description": "okapi", "operatingSystems": ["Windows"]}
    )
    assert httpx.get(search, params={"term": "zebra"}).json()["repositories"] == []
    found = httpx.get(search, params={"term": "okapi", "operatingSystem": "Windows"}).json()["repositories"]
    assert [r["name"] for r in found] == ["reindexed"]
    ecr.delete_repository(repositoryName="reindexed")
    assert httpx.get(search, params={"term": "okapi"}).json()["repositories"] == []
