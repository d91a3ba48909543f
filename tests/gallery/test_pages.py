"""The gallery in a real browser: search, filters, markdown, sanitising, copy buttons, tags; screenshots."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.conftest import OWNER
from tests.gallery.conftest import SECRET_POLICY, WEB_PULLS
from tests.gallery.helpers import page_json
from tests.server import PierServer

DOCS = Path(__file__).resolve().parents[2] / "docs"


def card_names(page: Any) -> list[str]:
    return [name.strip() for name in page.locator(".cards .card-name").all_inner_texts()]


def test_home_lists_most_downloaded_first_and_screenshot(page: Any, gallery_server: PierServer) -> None:
    page.goto(gallery_server.url + "/")
    assert card_names(page) == ["web", "db", "tools/cli"]  # web was pulled; then the newest push first
    web = page.locator(".card", has=page.locator(".card-name", has_text="web"))
    assert web.locator(".downloads").inner_text() == f"{2 * WEB_PULLS} downloads"
    assert web.locator(".badge.signed").is_visible()  # its latest tagged image (an index) has a cosign signature
    assert page.locator(".card", has=page.locator(".card-name", has_text="db")).locator(".badge.signed").count() == 0
    assert "Acme Corp" in page.locator(".cards").inner_text()
    assert page.locator(".card .badge.verified").count() == 3  # the owner is a verified publisher
    assert page.locator("select[name=sort]").input_value() == "downloads"
    page.screenshot(path=str(DOCS / "gallery-home.png"), full_page=True)


def test_sort_by_push_or_name_with_the_control_or_the_address(page: Any, gallery_server: PierServer) -> None:
    page.goto(gallery_server.url + "/?sort=pushed")
    assert card_names(page) == ["db", "web", "tools/cli"]  # db was pushed last; tools/cli never
    page.select_option("select[name=sort]", "name")
    expect(page).to_have_url(re.compile(r"sort=name"))  # set once the list is redrawn
    assert card_names(page) == ["db", "tools/cli", "web"]
    found = httpx.get(f"{gallery_server.url}/search", params={"sort": "downloads"}).json()
    assert [r["name"] for r in found["repositories"]] == ["web", "db", "tools/cli"] and found["sort"] == "downloads"
    assert [r["downloads"] for r in found["repositories"]] == [2 * WEB_PULLS, 0, 0]
    assert httpx.get(f"{gallery_server.url}/search", params={"sort": "size"}).status_code == 400
    assert httpx.get(f"{gallery_server.url}/", params={"sort": "size"}).status_code == 400


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
    latest = page.locator("table.tags tr[data-tag=latest]")
    assert latest.locator(".platform").all_inner_texts() == ["linux/amd64", "linux/arm64"]
    assert "OCI index" in latest.inner_text()
    assert latest.locator(".badge.signed").is_visible()
    single = page.locator("table.tags tr[data-tag='1.0']")
    assert single.locator(".platform").all_inner_texts() == ["linux/amd64"]
    assert single.locator(".badge.signed").count() == 0
    # Each row pulls its image by its full digest, and says how often it was pulled.
    tags = {t["tag"]: t for t in page_json(gallery_server, f"/{OWNER.alias}/web")["tags"]}
    pull = f"docker pull {gallery_server.host}/{OWNER.alias}/web@{tags['latest']['digest']}"
    assert latest.locator("code.digest").inner_text() == pull and len(tags["latest"]["digest"]) == 71
    assert latest.locator("td.number").inner_text() == str(WEB_PULLS)
    latest.locator("button.copy").click()
    assert page.evaluate("navigator.clipboard.readText()") == pull
    latest.locator("th a").click()
    expect(page).to_have_url(f"{gallery_server.url}/{OWNER.alias}/web:latest")


def test_usage_tab_has_commands_for_each_tool(page: Any, gallery_server: PierServer) -> None:
    page.goto(f"{gallery_server.url}/{OWNER.alias}/web")
    page.click("#tab-usage")
    image = f"{gallery_server.host}/{OWNER.alias}/web:latest"
    commands = {
        tool: page.locator(f"#usage [data-command={tool}] code").inner_text()
        for tool in ("docker", "podman", "crane", "oras", "aws")
    }
    assert commands == {
        "docker": f"docker pull {image}",
        "podman": f"podman pull --tls-verify=false {image}",
        "crane": f"crane pull --insecure {image} web.tar",
        "oras": f"oras pull --plain-http {image}",
        "aws": f"aws ecr-public describe-images --repository-name web --endpoint-url {gallery_server.url} "
        "--region us-east-1",
    }
    page.locator("#usage [data-command=aws] button.copy").click()
    assert page.evaluate("navigator.clipboard.readText()") == commands["aws"]
    assert page.locator("#usage pre code").inner_text().strip() == "docker run -p 80:80 owner-alias/web"  # usageText


def test_every_page_answers_json_at_its_path(gallery_server: PierServer) -> None:
    home = page_json(gallery_server, "/")
    assert home["sort"] == "downloads" and home["repositories"][0]["name"] == "web"
    assert home["repositories"][0] | {"downloads": 0} == {
        **home["repositories"][0],
        "downloads": 0,
        "signed": True,
        "verified": True,
        "displayName": "Acme Corp",
    }
    publisher = page_json(gallery_server, f"/{OWNER.alias}")
    assert (publisher["displayName"], publisher["verified"], publisher["downloads"]) == (
        "Acme Corp",
        True,
        2 * WEB_PULLS,
    )
    repository = page_json(gallery_server, f"/{OWNER.alias}/web")
    assert repository["name"] == "web" and repository["commands"]["docker"].startswith("docker pull ")
    assert [t["tag"] for t in repository["tags"]] == ["latest", "1.0"]  # newest first
    image = page_json(gallery_server, f"/{OWNER.alias}/web:latest")
    assert image["isIndex"] and [p["platform"] for p in image["platforms"]] == ["linux/amd64", "linux/arm64"]
    html = httpx.get(f"{gallery_server.url}/{OWNER.alias}/web:latest", headers={"Accept": "text/html"})
    assert html.headers["content-type"].startswith("text/html") and html.headers["vary"] == "Accept"
    browser_like = httpx.get(
        f"{gallery_server.url}/", headers={"Accept": "text/html,application/xhtml+xml,application/json;q=0.9"}
    )
    assert browser_like.headers["content-type"].startswith("text/html")
    missing = httpx.get(f"{gallery_server.url}/{OWNER.alias}/nothing", headers={"Accept": "application/json"})
    assert missing.status_code == 404 and missing.json()["message"]


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
