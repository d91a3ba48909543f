"""Publisher pages: display name, repositories, downloads and their sum, and the verified mark pier.toml gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.backends import Backend
from tests.conftest import OTHER, OWNER, client, owner_env
from tests.gallery.helpers import page_json, repository_downloads, wait_for
from tests.images import push_image
from tests.server import Account, PierServer

PARTNER = Account("999988887777", "partner", "AKIAPARTNER000000009", "partner-secret-key-0123456789abcdef")


def account_table(account: Account, extra: str = "") -> str:
    return (
        f'[[accounts]]\nid = "{account.id}"\nalias = "{account.alias}"\naccess_key_id = "{account.access_key_id}"\n'
        f'secret_access_key = "{account.secret_access_key}"\n{extra}\n'
    )


def test_verified_publishers_have_the_badge_and_others_do_not(page: Any, backend: Backend, tmp_path: Path) -> None:
    config = tmp_path / "pier.toml"
    # The owner (the default account) is not verified; the partner is, by its [[accounts]] table.
    config.write_text(
        "downloads_flush_seconds = 1\n"
        + backend.config()
        + account_table(PARTNER, "verified = true")
        + account_table(OTHER, "verified = false")
    )
    server = PierServer(tmp_path / "data", config, owner_env()).start()
    try:
        partner = client(server, PARTNER)
        partner.put_registry_catalog_data(displayName="Partner Software Inc.")
        for name in ("agent", "collector"):
            partner.create_repository(repositoryName=name, catalogData={"description": f"The partner's {name}"})
            push_image(partner, name, "v1")
        owner = client(server)
        owner.create_repository(repositoryName="tool", catalogData={"description": "The owner's tool"})
        push_image(owner, "tool", "v1")
        for name, pulls in (("agent", 3), ("collector", 2)):
            for _ in range(pulls):
                assert httpx.get(f"{server.url}/v2/partner/{name}/manifests/v1").status_code == 200
        assert wait_for(lambda: repository_downloads(server, "partner", "collector"), lambda n: n >= 2) == 2
        wait_for(lambda: repository_downloads(server, "partner", "agent"), lambda n: n >= 3)

        page.goto(f"{server.url}/partner")
        assert page.locator("h1").inner_text().startswith("Partner Software Inc.")
        assert page.locator("h1 .badge.verified").inner_text() == "✓ Verified publisher"
        assert page.locator("[data-total-downloads]").get_attribute("data-total-downloads") == "5"
        cards = page.locator(".cards .card")
        assert [c.locator(".card-name").inner_text() for c in cards.all()] == ["agent", "collector"]
        assert [c.locator(".downloads").inner_text() for c in cards.all()] == ["3 downloads", "2 downloads"]
        assert cards.locator(".badge.verified").count() == 2
        page.screenshot(
            path=str(Path(__file__).resolve().parents[2] / "docs" / "gallery-publisher.png"), full_page=True
        )

        page.goto(f"{server.url}/{OWNER.alias}")
        assert page.locator(".badge.verified").count() == 0
        assert page.locator("[data-total-downloads]").get_attribute("data-total-downloads") == "0"
        page.goto(f"{server.url}/")  # on the home page, only the partner's cards carry the mark
        verified = page.locator(".card", has=page.locator(".badge.verified")).locator(".card-name")
        assert sorted(verified.all_inner_texts()) == ["agent", "collector"]

        publisher = page_json(server, "/partner")
        assert (publisher["displayName"], publisher["verified"], publisher["downloads"]) == (
            "Partner Software Inc.",
            True,
            5,
        )
        assert page_json(server, f"/{OWNER.alias}")["verified"] is False
        assert page_json(server, f"/{OTHER.alias}")["verified"] is False
        # DescribeRegistries says the same; nothing in the API sets it.
        assert partner.describe_registries()["registries"][0]["verified"] is True
        assert owner.describe_registries()["registries"][0]["verified"] is False
    finally:
        server.stop()


def test_the_default_account_is_verified_by_a_top_level_key(gallery_server: PierServer) -> None:
    """The session's gallery server says `verified = true` at the top level: the owner's; its other accounts
    ([[accounts]] without the key) are not."""
    assert page_json(gallery_server, f"/{OWNER.alias}")["verified"] is True
    assert page_json(gallery_server, f"/{OTHER.alias}")["verified"] is False
    assert all(card["verified"] for card in page_json(gallery_server, "/")["repositories"])
